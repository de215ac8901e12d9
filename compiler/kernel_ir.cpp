#include "compiler/kernel_ir.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ir/hash.h"

namespace smelt::compiler {
namespace {

using Range = std::pair<int64_t, int64_t>;
constexpr Range kBoolRange{0, 1};

bool is_iconst(const Kernel& k, int32_t e) { return k.exprs[e].kind == KOp::kIConst; }

}  // namespace

// ---- hashing and printing ------------------------------------------------------------------

size_t KernelBuilder::ExprHash::operator()(const KExpr& e) const {
  uint64_t h = ir::hash_combine(static_cast<uint64_t>(e.kind), static_cast<uint64_t>(e.dtype));
  h = ir::hash_combine(h, static_cast<uint64_t>(e.op));
  h = ir::hash_combine(h, static_cast<uint64_t>(static_cast<uint32_t>(e.a)));
  h = ir::hash_combine(h, static_cast<uint64_t>(static_cast<uint32_t>(e.b)));
  h = ir::hash_combine(h, static_cast<uint64_t>(static_cast<uint32_t>(e.c)));
  h = ir::hash_combine(h, static_cast<uint64_t>(static_cast<uint32_t>(e.slot)));
  h = ir::hash_combine(h, static_cast<uint64_t>(e.value_int));
  return ir::hash_combine(h, ir::hash_double(e.value_float));
}

uint64_t Kernel::hash() const {
  uint64_t h = ir::hash_combine(0x6b65726e /* "kern" */, domain.size());
  for (int64_t d : domain) h = ir::hash_combine(h, static_cast<uint64_t>(d));
  h = ir::hash_combine(h, static_cast<uint64_t>(num_outer));
  h = ir::hash_combine(h, static_cast<uint64_t>(reduce));
  h = ir::hash_combine(h, static_cast<uint64_t>(reduce_dtype));
  h = ir::hash_combine(h, static_cast<uint64_t>(reduce_value));
  h = ir::hash_combine(h, stages.size());
  for (const KStage& st : stages) {
    h = ir::hash_combine(h, static_cast<uint64_t>(st.op));
    h = ir::hash_combine(h, static_cast<uint64_t>(st.dtype));
    h = ir::hash_combine(h, static_cast<uint64_t>(st.value));
  }
  KernelBuilder::ExprHash eh;
  for (const KExpr& e : exprs) h = ir::hash_combine(h, eh(e));
  for (const KInput& in : inputs) {
    h = ir::hash_combine(h, static_cast<uint64_t>(in.dtype));
    h = ir::hash_combine(h, static_cast<uint64_t>(in.numel));
  }
  for (const KOutput& out : outputs) {
    h = ir::hash_combine(h, static_cast<uint64_t>(out.dtype));
    h = ir::hash_combine(h, static_cast<uint64_t>(out.value));
    h = ir::hash_combine(h, static_cast<uint64_t>(out.index));
    h = ir::hash_combine(h, static_cast<uint64_t>(out.numel));
  }
  // Hashed only when present, so every other kernel keeps the hash (and disk cache entry) it had.
  for (const auto& [slot, output] : in_place) {
    h = ir::hash_combine(h, 0x696e706c /* "inpl" */);
    h = ir::hash_combine(h, static_cast<uint64_t>(slot));
    h = ir::hash_combine(h, static_cast<uint64_t>(output));
  }
  return h;
}

bool can_compute_in_place(const Kernel& k, int32_t slot, int32_t output) {
  if (slot < 0 || slot >= static_cast<int32_t>(k.inputs.size()) || output < 0 ||
      output >= static_cast<int32_t>(k.outputs.size())) {
    return false;
  }
  if (k.reduce != ReduceOp::kNone || !k.stages.empty() ||
      k.num_outer != static_cast<int>(k.domain.size())) {
    return false;
  }
  const KInput& in = k.inputs[slot];
  const KOutput& out = k.outputs[output];
  if (in.dtype != out.dtype || in.numel != out.numel) return false;
  for (const KExpr& e : k.exprs) {
    if (e.kind == KOp::kLoad && e.slot == slot && e.a != out.index) return false;
  }
  return true;
}

namespace {

const char* reduce_name(ReduceOp r) {
  switch (r) {
    case ReduceOp::kNone:
      return "none";
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kProd:
      return "prod";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kArgMax:
      return "argmax";
    case ReduceOp::kArgMin:
      return "argmin";
  }
  return "?";
}

std::string expr_text(const KExpr& e) {
  auto v = [](int32_t x) { return absl::StrCat("e", x); };
  switch (e.kind) {
    case KOp::kLoopVar:
      return absl::StrCat("i", e.value_int);
    case KOp::kIConst:
      return absl::StrCat(e.value_int);
    case KOp::kIAdd:
      return absl::StrCat(v(e.a), " + ", v(e.b));
    case KOp::kIMul:
      return absl::StrCat(v(e.a), " * ", v(e.b));
    case KOp::kIDiv:
      return absl::StrCat(v(e.a), " / ", v(e.b));
    case KOp::kIMod:
      return absl::StrCat(v(e.a), " % ", v(e.b));
    case KOp::kILt:
      return absl::StrCat(v(e.a), " < ", v(e.b));
    case KOp::kAnd:
      return absl::StrCat(v(e.a), " && ", v(e.b));
    case KOp::kLoad:
      return absl::StrCat("in", e.slot, "[", v(e.a), "]");
    case KOp::kConst:
      return is_floating(e.dtype) ? absl::StrFormat("%.9g", e.value_float)
                                  : absl::StrCat(e.value_int);
    case KOp::kAcc:
      return "acc";
    case KOp::kStage:
      return absl::StrCat("stage", e.value_int);
    case KOp::kApply: {
      std::string s = absl::StrCat(ir::op_name(e.op), "(", v(e.a));
      if (e.b >= 0) absl::StrAppend(&s, ", ", v(e.b));
      if (e.c >= 0) absl::StrAppend(&s, ", ", v(e.c));
      return s + ")";
    }
    case KOp::kSelect:
      return absl::StrCat(v(e.a), " ? ", v(e.b), " : ", v(e.c));
  }
  return "?";
}

}  // namespace

std::string Kernel::to_string() const {
  std::string s = absl::StrCat("kernel ", name, " domain=[", absl::StrJoin(domain, ", "), "]");
  if (reduce != ReduceOp::kNone) {
    absl::StrAppend(&s, " reduce=", reduce_name(reduce), "(e", reduce_value, ") over axes ",
                    num_outer, "..", domain.size() - 1, " acc:", dtype_name(reduce_dtype));
  }
  for (size_t st = 0; st < stages.size(); ++st) {
    absl::StrAppend(&s, " stage", st, "=", reduce_name(stages[st].op), "(e", stages[st].value, ")");
  }
  if (row_outputs()) absl::StrAppend(&s, " rows over axes ", num_outer, "..", domain.size() - 1);
  absl::StrAppend(&s, "\n");
  for (size_t k = 0; k < inputs.size(); ++k) {
    absl::StrAppend(&s, "  in", k, ": ", dtype_name(inputs[k].dtype), "[", inputs[k].numel, "]\n");
  }
  for (size_t k = 0; k < exprs.size(); ++k) {
    absl::StrAppend(&s, "  e", k, ": ", dtype_name(exprs[k].dtype), " = ", expr_text(exprs[k]),
                    "\n");
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    absl::StrAppend(&s, "  out", k, ": ", dtype_name(outputs[k].dtype), "[", outputs[k].numel,
                    "] at e", outputs[k].index, " = e", outputs[k].value, "\n");
  }
  for (const auto& [slot, output] : in_place) {
    absl::StrAppend(&s, "  out", output, " in place of in", slot, "\n");
  }
  return s;
}

// ---- building with simplification -----------------------------------------------------------

int32_t KernelBuilder::intern(const KExpr& e, Range range) {
  auto [it, inserted] = interned_.try_emplace(e, static_cast<int32_t>(k_.exprs.size()));
  if (inserted) {
    k_.exprs.push_back(e);
    ranges_.push_back(range);
  }
  return it->second;
}

int32_t KernelBuilder::loop_var(int axis) {
  KExpr e{.kind = KOp::kLoopVar, .dtype = DType::Int64, .value_int = axis};
  return intern(e, {0, std::max<int64_t>(k_.domain[axis] - 1, 0)});
}

int32_t KernelBuilder::iconst(int64_t v) {
  KExpr e{.kind = KOp::kIConst, .dtype = DType::Int64, .value_int = v};
  return intern(e, {v, v});
}

void KernelBuilder::collect_terms(int32_t e, std::vector<int32_t>& terms, int64_t& constant) const {
  std::vector<int32_t> stack{e};
  while (!stack.empty()) {
    int32_t x = stack.back();
    stack.pop_back();
    const KExpr& ex = k_.exprs[x];
    if (ex.kind == KOp::kIAdd) {
      stack.push_back(ex.b);
      stack.push_back(ex.a);
    } else if (ex.kind == KOp::kIConst) {
      constant += ex.value_int;
    } else {
      terms.push_back(x);
    }
  }
}

std::pair<int64_t, int32_t> KernelBuilder::split_coefficient(int32_t e) const {
  const KExpr& ex = k_.exprs[e];
  if (ex.kind == KOp::kIMul && is_iconst(k_, ex.b)) return {k_.exprs[ex.b].value_int, ex.a};
  return {1, e};
}

int32_t KernelBuilder::sum_of(const std::vector<int32_t>& terms, int64_t constant) {
  int32_t acc = -1;
  for (int32_t t : terms) {
    if (acc < 0) {
      acc = t;
      continue;
    }
    KExpr e{.kind = KOp::kIAdd, .dtype = DType::Int64, .a = acc, .b = t};
    acc =
        intern(e, {ranges_[acc].first + ranges_[t].first, ranges_[acc].second + ranges_[t].second});
  }
  if (acc < 0) return iconst(constant);
  if (constant == 0) return acc;
  KExpr e{.kind = KOp::kIAdd, .dtype = DType::Int64, .a = acc, .b = iconst(constant)};
  return intern(e, {ranges_[acc].first + constant, ranges_[acc].second + constant});
}

int32_t KernelBuilder::add(int32_t a, int32_t b) {
  // Flatten both sides into terms + constant, merge terms over the same expression
  // (x*2 + x*3 -> x*5), and rebuild in a canonical order so equal sums intern to one entry.
  std::vector<int32_t> terms;
  int64_t constant = 0;
  collect_terms(a, terms, constant);
  collect_terms(b, terms, constant);
  std::vector<std::pair<int32_t, int64_t>> by_base;  // (rest, coefficient)
  auto add_term = [&by_base](int32_t rest, int64_t coef) {
    auto it = std::find_if(by_base.begin(), by_base.end(),
                           [rest](const auto& p) { return p.first == rest; });
    if (it == by_base.end()) {
      by_base.emplace_back(rest, coef);
    } else {
      it->second += coef;
    }
  };
  for (int32_t t : terms) {
    auto [coef, rest] = split_coefficient(t);
    add_term(rest, coef);
  }
  // k c (x / c) + k (x % c) = k x for any x (division truncates, the remainder has x's sign):
  // an index split by a reshape and joined again, where the range rules in div/mod could not
  // see that x is a multiple plus a remainder (x an index held within a concat's operand).
  for (bool merged = true; merged;) {
    merged = false;
    for (size_t m = 0; m < by_base.size() && !merged; ++m) {
      const KExpr& em = k_.exprs[by_base[m].first];
      if (em.kind != KOp::kIMod || !is_iconst(k_, em.b) || by_base[m].second == 0) continue;
      const int64_t c = k_.exprs[em.b].value_int;
      for (size_t d = 0; d < by_base.size(); ++d) {
        const KExpr& ed = k_.exprs[by_base[d].first];
        if (ed.kind != KOp::kIDiv || ed.a != em.a || ed.b != em.b ||
            by_base[d].second != by_base[m].second * c) {
          continue;
        }
        const int32_t x = em.a;
        const int64_t k = by_base[m].second;
        by_base.erase(by_base.begin() + static_cast<std::ptrdiff_t>(std::max(m, d)));
        by_base.erase(by_base.begin() + static_cast<std::ptrdiff_t>(std::min(m, d)));
        add_term(x, k);
        merged = true;
        break;
      }
    }
  }
  std::sort(by_base.begin(), by_base.end());
  std::vector<int32_t> rebuilt;
  for (auto [rest, coef] : by_base) {
    if (coef == 0) continue;
    rebuilt.push_back(coef == 1 ? rest : mul(rest, iconst(coef)));
  }
  return sum_of(rebuilt, constant);
}

int32_t KernelBuilder::mul(int32_t a, int32_t b) {
  if (is_iconst(k_, a) && !is_iconst(k_, b)) std::swap(a, b);
  if (is_iconst(k_, b)) {
    const int64_t c = k_.exprs[b].value_int;
    if (is_iconst(k_, a)) return iconst(k_.exprs[a].value_int * c);
    if (c == 0) return iconst(0);
    if (c == 1) return a;
    const KExpr& ea = k_.exprs[a];
    // Distribute constants over sums so that div/mod can see each term's coefficient.
    if (ea.kind == KOp::kIAdd) return add(mul(ea.a, b), mul(ea.b, b));
    if (ea.kind == KOp::kIMul && is_iconst(k_, ea.b)) {
      return mul(ea.a, iconst(k_.exprs[ea.b].value_int * c));
    }
    auto [lo, hi] = ranges_[a];
    KExpr e{.kind = KOp::kIMul, .dtype = DType::Int64, .a = a, .b = b};
    return intern(e, {std::min(lo * c, hi * c), std::max(lo * c, hi * c)});
  }
  auto [alo, ahi] = ranges_[a];
  auto [blo, bhi] = ranges_[b];
  const int64_t p[] = {alo * blo, alo * bhi, ahi * blo, ahi * bhi};
  KExpr e{.kind = KOp::kIMul, .dtype = DType::Int64, .a = std::min(a, b), .b = std::max(a, b)};
  return intern(e, {*std::min_element(p, p + 4), *std::max_element(p, p + 4)});
}

int32_t KernelBuilder::div(int32_t a, int64_t d) {
  if (d == 1) return a;
  auto [lo, hi] = ranges_[a];
  if (lo >= 0 && hi < d) return iconst(0);
  if (is_iconst(k_, a)) return iconst(k_.exprs[a].value_int / d);
  const KExpr& ea = k_.exprs[a];
  if (ea.kind == KOp::kIDiv && is_iconst(k_, ea.b)) {
    return div(ea.a, k_.exprs[ea.b].value_int * d);  // (x / c) / d == x / (c * d) for x >= 0
  }
  // (sum of multiples of d) + rest, with 0 <= rest < d:  -> (multiples / d) + 0.
  // (sum of multiples of d) + rest, with rest >= 0:      -> (multiples / d) + rest / d.
  std::vector<int32_t> terms;
  int64_t constant = 0;
  collect_terms(a, terms, constant);
  std::vector<int32_t> multiples, rest;
  int64_t multiple_const = constant - constant % d;
  for (int32_t t : terms) {
    auto [coef, base] = split_coefficient(t);
    if (coef % d == 0) {
      multiples.push_back(mul(base, iconst(coef / d)));
    } else {
      rest.push_back(t);
    }
  }
  if (!multiples.empty() || multiple_const != 0) {
    int32_t r = sum_of(rest, constant % d);
    if (ranges_[r].first >= 0) {
      return add(sum_of(multiples, multiple_const / d), div(r, d));
    }
  }
  KExpr e{.kind = KOp::kIDiv, .dtype = DType::Int64, .a = a, .b = iconst(d)};
  return intern(e, {lo / d, hi / d});
}

int32_t KernelBuilder::mod(int32_t a, int64_t d) {
  if (d == 1) return iconst(0);
  auto [lo, hi] = ranges_[a];
  if (lo >= 0 && hi < d) return a;
  if (is_iconst(k_, a)) return iconst(k_.exprs[a].value_int % d);
  const KExpr& ea = k_.exprs[a];
  if (ea.kind == KOp::kIMod && is_iconst(k_, ea.b) && k_.exprs[ea.b].value_int % d == 0) {
    return mod(ea.a, d);  // (x % (k*d)) % d == x % d
  }
  // Drop terms that are multiples of d, when what is left stays non-negative.
  std::vector<int32_t> terms;
  int64_t constant = 0;
  collect_terms(a, terms, constant);
  std::vector<int32_t> rest;
  bool dropped = constant % d != constant;
  for (int32_t t : terms) {
    auto [coef, base] = split_coefficient(t);
    if (coef % d == 0) {
      dropped = true;
    } else {
      rest.push_back(t);
    }
  }
  if (dropped) {
    int32_t r = sum_of(rest, constant % d);
    if (ranges_[r].first >= 0) return mod(r, d);
  }
  KExpr e{.kind = KOp::kIMod, .dtype = DType::Int64, .a = a, .b = iconst(d)};
  // The remainder keeps the dividend's sign (C++'s and LLVM's srem): a dividend that may be
  // negative gives a remainder that may be, and a load indexed by it must stay guarded.
  return intern(e, {lo >= 0 ? 0 : std::max(lo, -(d - 1)), hi <= 0 ? 0 : std::min(d - 1, hi)});
}

int32_t KernelBuilder::lt(int32_t a, int32_t b) {
  if (ranges_[a].second < ranges_[b].first) return constant(DType::Bool, 1);
  if (ranges_[a].first >= ranges_[b].second) return constant(DType::Bool, 0);
  KExpr e{.kind = KOp::kILt, .dtype = DType::Bool, .a = a, .b = b};
  return intern(e, kBoolRange);
}

int32_t KernelBuilder::logical_and(int32_t a, int32_t b) {
  auto is_const = [&](int32_t x, int64_t v) {
    return k_.exprs[x].kind == KOp::kConst && k_.exprs[x].value_int == v;
  };
  if (is_const(a, 1)) return b;
  if (is_const(b, 1)) return a;
  if (is_const(a, 0) || is_const(b, 0)) return constant(DType::Bool, 0);
  if (a == b) return a;
  KExpr e{.kind = KOp::kAnd, .dtype = DType::Bool, .a = std::min(a, b), .b = std::max(a, b)};
  return intern(e, kBoolRange);
}

int32_t KernelBuilder::load(int32_t slot, int32_t index) {
  KExpr e{.kind = KOp::kLoad, .dtype = k_.inputs[slot].dtype, .a = index, .slot = slot};
  return intern(e, {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
}

int32_t KernelBuilder::constant(DType dtype, double value) {
  KExpr e{.kind = KOp::kConst, .dtype = dtype};
  if (is_floating(dtype)) {
    e.value_float = value;
  } else {
    e.value_int = dtype == DType::Bool ? (value != 0) : static_cast<int64_t>(value);
  }
  Range r = is_floating(dtype)
                ? Range{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}
                : Range{e.value_int, e.value_int};
  return intern(e, r);
}

int32_t KernelBuilder::acc() {
  KExpr e{.kind = KOp::kAcc, .dtype = k_.reduce_dtype};
  return intern(e, {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
}

int32_t KernelBuilder::stage(int s) {
  KExpr e{.kind = KOp::kStage, .dtype = k_.stages[s].dtype, .value_int = s};
  return intern(e, {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
}

int32_t KernelBuilder::apply(ir::OpCode op, DType dtype, int32_t a, int32_t b, int32_t c) {
  KExpr e{.kind = KOp::kApply, .dtype = dtype, .op = op, .a = a, .b = b, .c = c};
  return intern(e, {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
}

void KernelBuilder::narrow_under(int32_t cond, int32_t x, Range& r) const {
  const KExpr& ec = k_.exprs[cond];
  if (ec.kind == KOp::kAnd) {
    narrow_under(ec.a, x, r);
    narrow_under(ec.b, x, r);
  } else if (ec.kind == KOp::kILt && ec.a == x && is_iconst(k_, ec.b)) {
    r.second = std::min(r.second, k_.exprs[ec.b].value_int - 1);  // x < c
  } else if (ec.kind == KOp::kILt && ec.b == x && is_iconst(k_, ec.a)) {
    r.first = std::max(r.first, k_.exprs[ec.a].value_int + 1);  // c < x
  }
}

int32_t KernelBuilder::select(int32_t cond, int32_t a, int32_t b) {
  const KExpr& ec = k_.exprs[cond];
  if (ec.kind == KOp::kConst) return ec.value_int != 0 ? a : b;
  if (a == b) return a;
  // Where cond bounds `a` itself (lo <= a < hi), a is only taken within those bounds.
  Range ra = ranges_[a];
  if (k_.exprs[a].dtype == DType::Int64) narrow_under(cond, a, ra);
  KExpr e{.kind = KOp::kSelect, .dtype = k_.exprs[a].dtype, .a = cond, .b = a, .c = b};
  return intern(e, {std::min(ra.first, ranges_[b].first), std::max(ra.second, ranges_[b].second)});
}

namespace {

// Whether axes a and a + 1 of `k` can be one loop (see coalesce_axes).
bool mergeable(const Kernel& k, int a) {
  // The coefficients of loop variables a and a + 1 in each Int64 expression, where it is affine
  // in them; a load's value counts as independent of both (its own index is checked below).
  struct Coef {
    bool affine = true;
    int64_t ca = 0, cb = 0;
    bool zero() const { return affine && ca == 0 && cb == 0; }
  };
  const int64_t inner = k.domain[a + 1];
  std::vector<Coef> c(k.exprs.size());
  auto walks_as_one = [&](int32_t index) {
    const Coef& x = c[index];
    return x.affine && x.ca == inner * x.cb;
  };
  for (size_t i = 0; i < k.exprs.size(); ++i) {
    const KExpr& e = k.exprs[i];
    Coef& r = c[i];
    switch (e.kind) {
      case KOp::kLoopVar:
        r.ca = e.value_int == a ? 1 : 0;
        r.cb = e.value_int == a + 1 ? 1 : 0;
        break;
      case KOp::kIConst:
        break;
      case KOp::kIAdd:
        r.affine = c[e.a].affine && c[e.b].affine;
        r.ca = c[e.a].ca + c[e.b].ca;
        r.cb = c[e.a].cb + c[e.b].cb;
        break;
      case KOp::kIMul: {
        const KExpr& x = k.exprs[e.a];
        const KExpr& y = k.exprs[e.b];
        if (y.kind == KOp::kIConst || x.kind == KOp::kIConst) {
          const Coef& v = y.kind == KOp::kIConst ? c[e.a] : c[e.b];
          const int64_t m = y.kind == KOp::kIConst ? y.value_int : x.value_int;
          r = Coef{v.affine, v.ca * m, v.cb * m};
        } else if (!c[e.a].zero() || !c[e.b].zero()) {
          return false;
        }
        break;
      }
      case KOp::kLoad:
        if (!walks_as_one(e.a)) return false;
        break;
      default:
        // Anything else that reads the variables (div, mod, a pad's bounds test, a value made
        // from an index) would see them apart.
        for (int32_t op : {e.a, e.b, e.c}) {
          if (op >= 0 && !c[op].zero()) return false;
        }
        break;
    }
  }
  for (const KOutput& o : k.outputs) {
    if (!walks_as_one(o.index)) return false;
  }
  return true;
}

}  // namespace

int coalesce_axes(Kernel& k) {
  int merges = 0;
  for (int a = 0; a + 1 < static_cast<int>(k.domain.size());) {
    if (a + 1 == k.num_outer || !mergeable(k, a)) {
      ++a;
      continue;
    }
    // i_a * (extent(a + 1) * s) + i_(a+1) * s = v * s with v = i_a * extent(a + 1) + i_(a+1):
    // a's variable becomes 0, a + 1's the merged one, and later axes move down by one.
    k.domain[a] *= k.domain[a + 1];
    k.domain.erase(k.domain.begin() + a + 1);
    if (a + 1 < k.num_outer) --k.num_outer;
    for (KExpr& e : k.exprs) {
      if (e.kind != KOp::kLoopVar) continue;
      if (e.value_int == a) {
        e.kind = KOp::kIConst;
        e.value_int = 0;
      } else if (e.value_int > a) {
        --e.value_int;
      }
    }
    ++merges;
  }
  return merges;
}

}  // namespace smelt::compiler
