#include "compiler/codegen/llvm/emit_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/BasicBlock.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/BLAKE3.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "runtime/cpu_jit_module.h"

// The one switch between vecmath.h's straight-line polynomials (1) and LLVM's math intrinsics
// (0: scalar libm calls, which keep a loop from vectorizing; a way to tell a vecmath bug from a
// code generator bug). See emit_math().
#define SMELT_CODEGEN_VECMATH 1
#if SMELT_CODEGEN_VECMATH
#include "compiler/codegen/llvm/vecmath.h"
#endif

namespace smelt::compiler {
namespace {

using ir::OpCode;

// ---- what each elementwise op accepts and gives (mirrors ir/ops/elementwise.cpp) -------------

enum class Accepts : uint8_t { kAny, kNumeric, kFloating, kBool };
enum class Result : uint8_t {
  kSame,        // the operands' dtype
  kBool,        // comparisons and logic
  kCastTarget,  // cast: any dtype
  kWhere,       // where(cond, a, b): a's dtype
};
struct ApplyRule {
  int arity;
  Accepts accepts;
  Result result;
};

std::optional<ApplyRule> apply_rule(OpCode op) {
  switch (op) {
    case OpCode::Neg:
    case OpCode::Abs:
    case OpCode::Sign:
    case OpCode::Relu:
      return ApplyRule{1, Accepts::kNumeric, Result::kSame};
    case OpCode::Exp:
    case OpCode::Log:
    case OpCode::Sqrt:
    case OpCode::Rsqrt:
    case OpCode::Floor:
    case OpCode::Ceil:
    case OpCode::Round:
    case OpCode::Trunc:
    case OpCode::Tanh:
    case OpCode::Sigmoid:
    case OpCode::Sin:
    case OpCode::Cos:
      return ApplyRule{1, Accepts::kFloating, Result::kSame};
    case OpCode::LogicalNot:
      return ApplyRule{1, Accepts::kBool, Result::kSame};
    case OpCode::Cast:
      return ApplyRule{1, Accepts::kAny, Result::kCastTarget};
    case OpCode::Copy:
      return ApplyRule{1, Accepts::kAny, Result::kSame};
    case OpCode::Add:
    case OpCode::Mul:
    case OpCode::Maximum:
    case OpCode::Minimum:
      return ApplyRule{2, Accepts::kAny, Result::kSame};
    case OpCode::Sub:
      return ApplyRule{2, Accepts::kNumeric, Result::kSame};
    case OpCode::Div:
    case OpCode::Pow:
      return ApplyRule{2, Accepts::kFloating, Result::kSame};
    case OpCode::Eq:
    case OpCode::Ne:
    case OpCode::Lt:
    case OpCode::Le:
    case OpCode::Gt:
    case OpCode::Ge:
      return ApplyRule{2, Accepts::kAny, Result::kBool};
    case OpCode::LogicalAnd:
    case OpCode::LogicalOr:
      return ApplyRule{2, Accepts::kBool, Result::kBool};
    case OpCode::Where:
      return ApplyRule{3, Accepts::kAny, Result::kWhere};
    default:
      return std::nullopt;
  }
}

bool accepts(Accepts a, DType t) {
  switch (a) {
    case Accepts::kAny:
      return true;
    case Accepts::kNumeric:
      return t != DType::Bool;
    case Accepts::kFloating:
      return is_floating(t);
    case Accepts::kBool:
      return t == DType::Bool;
  }
  return false;
}

bool is_arg_reduce(ReduceOp r) { return r == ReduceOp::kArgMax || r == ReduceOp::kArgMin; }

// ---- levels: where in the loop nest each expression is computed ------------------------------
//
// Levels are doubled so that "after the reduction" fits between two loops: level 2*(a+1) is the
// body of the loop over axis a, level 0 the function entry, and level 2*num_outer+1 the point
// after the reduced loops, where the accumulator is final. An expression is computed once at the
// level of its deepest operand (the loop-invariant code motion LLVM would otherwise have to
// prove), so a broadcast operand is loaded once per row, not once per element.

struct Placement {
  std::vector<int> level;        // per expression
  std::vector<bool> uses_acc;    // depends on kAcc
  std::vector<int> last_stage;   // the latest stage it reads (-1: none)
  std::vector<bool> for_reduce;  // reachable from the reduced value (unless its extent is empty)
  std::vector<bool> for_output;  // reachable from an output's value or index
  std::vector<bool> for_stages;  // reachable from a stage's value (unless the extent is empty)
  std::vector<std::vector<bool>> for_stage;  // per stage: reachable from its value
  bool needed(size_t i) const { return for_reduce[i] || for_output[i] || for_stages[i]; }
};

// Marks `roots` and everything they reach. Operands come before their users, so one backward
// sweep does it.
// `given` (if >= 0) is a value supplied from elsewhere: it is marked, its operands are not.
std::vector<bool> cone(const Kernel& k, const std::vector<int32_t>& roots, int32_t given = -1) {
  std::vector<bool> in(k.exprs.size(), false);
  for (int32_t r : roots) in[r] = true;
  for (size_t i = k.exprs.size(); i-- > 0;) {
    if (!in[i] || static_cast<int32_t>(i) == given) continue;
    const KExpr& e = k.exprs[i];
    for (int32_t op : {e.a, e.b, e.c}) {
      if (op >= 0) in[op] = true;
    }
  }
  return in;
}

Placement place(const Kernel& k, bool reduced_empty) {
  const size_t n = k.exprs.size();
  Placement p;
  p.level.assign(n, 0);
  p.uses_acc.assign(n, false);
  p.last_stage.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const KExpr& e = k.exprs[i];
    if (e.kind == KOp::kLoopVar) {
      p.level[i] = 2 * (static_cast<int>(e.value_int) + 1);
    } else if (e.kind == KOp::kAcc) {
      p.level[i] = 2 * k.num_outer + 1;
      p.uses_acc[i] = true;
    } else if (e.kind == KOp::kStage) {
      p.level[i] = 2 * k.num_outer + 1;  // known after its sweep, like the accumulator
      p.last_stage[i] = static_cast<int>(e.value_int);
    }
    for (int32_t op : {e.a, e.b, e.c}) {
      if (op < 0) continue;
      p.level[i] = std::max(p.level[i], p.level[op]);
      p.uses_acc[i] = p.uses_acc[i] || p.uses_acc[op];
      p.last_stage[i] = std::max(p.last_stage[i], p.last_stage[op]);
    }
  }
  p.for_stages.assign(n, false);
  for (const KStage& st : k.stages) {
    p.for_stage.push_back(reduced_empty ? std::vector<bool>(n, false) : cone(k, {st.value}));
    for (size_t i = 0; i < n; ++i) p.for_stages[i] = p.for_stages[i] || p.for_stage.back()[i];
  }
  std::vector<int32_t> outputs;
  for (const KOutput& o : k.outputs) {
    outputs.push_back(o.value);
    outputs.push_back(o.index);
  }
  p.for_output = cone(k, outputs);
  p.for_reduce = k.reduce != ReduceOp::kNone && !reduced_empty ? cone(k, {k.reduce_value})
                                                               : std::vector<bool>(n, false);
  return p;
}

// Whether each expression depends on the loop variable of `axis`.
std::vector<bool> depends_on_axis(const Kernel& k, int axis) {
  std::vector<bool> dep(k.exprs.size(), false);
  for (size_t i = 0; i < k.exprs.size(); ++i) {
    const KExpr& e = k.exprs[i];
    dep[i] = e.kind == KOp::kLoopVar && e.value_int == axis;
    for (int32_t op : {e.a, e.b, e.c}) dep[i] = dep[i] || (op >= 0 && dep[op]);
  }
  return dep;
}

// The coefficient of `axis`'s loop variable in each Int64 expression, where the expression is
// affine in it (c * i + terms without i); nullopt elsewhere.
std::vector<std::optional<int64_t>> axis_strides(const Kernel& k, int axis) {
  const std::vector<bool> dep = depends_on_axis(k, axis);
  std::vector<std::optional<int64_t>> c(k.exprs.size());
  for (size_t i = 0; i < k.exprs.size(); ++i) {
    const KExpr& e = k.exprs[i];
    if (!dep[i]) {
      c[i] = 0;
      continue;
    }
    switch (e.kind) {
      case KOp::kLoopVar:
        c[i] = 1;
        break;
      case KOp::kIAdd:
        if (c[e.a] && c[e.b]) c[i] = *c[e.a] + *c[e.b];
        break;
      case KOp::kIMul:
        if (k.exprs[e.b].kind == KOp::kIConst && c[e.a]) c[i] = *c[e.a] * k.exprs[e.b].value_int;
        if (k.exprs[e.a].kind == KOp::kIConst && c[e.b]) c[i] = *c[e.b] * k.exprs[e.a].value_int;
        break;
      default:
        break;  // div, mod, select over the axis: not affine
    }
  }
  return c;
}

// The tile size of an outer-vectorized reduction (see emit_tiled_reduction): a few vectors.
constexpr int64_t kReductionTile = 32;

// Row kernels' prefetching (see find_prefetch_targets): the points of a chunk of the last sweep's
// innermost loop, which vectorizes as a whole (the vectorizer keeps no loop with a prefetch in
// it), and how many rows ahead the prefetches reach. Measured on the 2-vCPU AVX-512 VM with a
// hand-written [4096, 1024] row softmax (bench/RESULTS.md "Softmax, session 6"): 1 to 4 rows
// ahead gain alike (-24 %), 6 rows less; prefetching inside the exp sweep instead gains no more.
constexpr int64_t kPrefetchChunk = 64;
constexpr int64_t kPrefetchRows = 2;

// Whether a reduction should run "outer-vectorized": the reduced value's loads do not walk
// memory contiguously along the innermost reduced axis (so vectorizing the reduction itself would
// gather), but some load does along the innermost outer axis, as in a sum over the rows of a
// row-major matrix. Then computing a tile of neighbouring outputs together, one reduced point at
// a time, turns the strided reduction into contiguous vector loads, with each output's additions
// in the same order as before.
bool outer_vectorized(const Kernel& k, const Placement& p) {
  const int rank = static_cast<int>(k.domain.size());
  const int no = k.num_outer;
  if (k.reduce == ReduceOp::kNone || no == 0 || rank == no || !k.stages.empty()) return false;
  if (k.domain[no - 1] < 4) return false;
  const auto inner = axis_strides(k, rank - 1);
  const auto outer = axis_strides(k, no - 1);
  bool inner_contiguous = false, outer_contiguous = false;
  for (size_t i = 0; i < k.exprs.size(); ++i) {
    const KExpr& e = k.exprs[i];
    if (e.kind != KOp::kLoad || !p.for_reduce[i]) continue;
    inner_contiguous = inner_contiguous || inner[e.a] == 1;
    outer_contiguous = outer_contiguous || outer[e.a] == 1;
  }
  return outer_contiguous && !inner_contiguous;
}

// ---- the parallel range (see emit_kernel.h) -----------------------------------------------------

// Leading outer axes are flattened into the parallel range until it has this many points, so
// that a domain like [2, 1M] splits into as many chunks as there are threads.
constexpr int64_t kMinParallelPoints = 256;
// A reduction with at most kMaxSplitOutputs outputs (a full reduction has one) and at least
// kSplitMinPoints reduced points per output is split into parts (one chunk per output would
// leave threads idle); each part reduces at least kPointsPerPart points, and there are at most
// kMaxParts per output, so the final combine is negligible. The part count depends only on the
// kernel, never on the thread count, so results are reproducible everywhere.
constexpr int64_t kMaxSplitOutputs = 8;
constexpr int64_t kSplitMinPoints = int64_t{1} << 15;
constexpr int64_t kPointsPerPart = int64_t{1} << 14;
constexpr int64_t kMaxParts = 64;

int64_t reduced_points(const Kernel& k) {
  int64_t n = 1;
  for (size_t a = k.num_outer; a < k.domain.size(); ++a) n *= k.domain[a];
  return n;
}

int64_t outer_points(const Kernel& k) {
  int64_t n = 1;
  for (int a = 0; a < k.num_outer; ++a) n *= k.domain[a];
  return n;
}

// The number of parts of each output of a split reduction; 1: not split. Outer-vectorized
// (column) reductions are not split: their outputs are their vector lanes.
int64_t split_parts(const Kernel& k) {
  // Row kernels keep each row on one thread: its later sweeps read it from that core's cache.
  if (k.reduce == ReduceOp::kNone || !k.stages.empty()) return 1;
  const int64_t outputs = outer_points(k), n = reduced_points(k);
  if (outputs < 1 || outputs > kMaxSplitOutputs || n < kSplitMinPoints) return 1;
  if (k.num_outer > 0 && outer_vectorized(k, place(k, /*reduced_empty=*/false))) return 1;
  return std::min(kMaxParts, n / kPointsPerPart);
}

// The scratch block: one completion counter per output (the first 64-byte line, or more), then
// one 8-byte slot per part for its partial result, then (argmax/argmin) one per part for its
// position. Part p of output o is range point o * parts + p.
int64_t scratch_header(const Kernel& k) { return (8 * outer_points(k) + 63) / 64 * 64; }

// A row kernel that stores its rows (softmax): the outputs are usually made of the last
// stage's value (exp(x - max)). Its sweep then also stores that value into such an output, and
// the storing sweep reads it back from there (from cache) instead of computing it again: one
// exp per element instead of two. Returns that output's slot, or -1.
int reused_output(const Kernel& k, const Placement& p) {
  if (!k.row_outputs()) return -1;
  const int32_t v = k.stages.back().value;
  const int inner = 2 * static_cast<int>(k.domain.size());  // the innermost loop's body
  // Only a computed value is worth a store and a load; it must vary with the innermost point.
  if (k.exprs[v].kind != KOp::kApply || p.level[v] != inner || !p.for_output[v]) return -1;
  for (size_t o = 0; o < k.outputs.size(); ++o) {
    const KOutput& out = k.outputs[o];
    // Lowering stores a row kernel's output once per domain point, so its index is one-to-one.
    if (out.dtype == k.exprs[v].dtype && out.dtype != DType::Bool && p.level[out.index] == inner) {
      return static_cast<int>(o);
    }
  }
  return -1;
}

// ---- the kernel digest ------------------------------------------------------------------------

class ByteWriter {
 public:
  void put(int64_t v) { bytes_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void put(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    put(static_cast<int64_t>(bits));
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// Every field of the kernel but its name, exactly (doubles by their bits).
std::string kernel_bytes(const Kernel& k) {
  ByteWriter w;
  w.put(static_cast<int64_t>(k.domain.size()));
  for (int64_t d : k.domain) w.put(d);
  w.put(static_cast<int64_t>(k.num_outer));
  w.put(static_cast<int64_t>(k.reduce));
  w.put(static_cast<int64_t>(k.reduce_dtype));
  w.put(static_cast<int64_t>(k.reduce_value));
  w.put(static_cast<int64_t>(k.stages.size()));
  for (const KStage& st : k.stages) {
    w.put(static_cast<int64_t>(st.op));
    w.put(static_cast<int64_t>(st.dtype));
    w.put(static_cast<int64_t>(st.value));
  }
  w.put(static_cast<int64_t>(k.exprs.size()));
  for (const KExpr& e : k.exprs) {
    w.put(static_cast<int64_t>(e.kind));
    w.put(static_cast<int64_t>(e.dtype));
    w.put(static_cast<int64_t>(e.op));
    w.put(static_cast<int64_t>(e.a));
    w.put(static_cast<int64_t>(e.b));
    w.put(static_cast<int64_t>(e.c));
    w.put(static_cast<int64_t>(e.slot));
    w.put(e.value_int);
    w.put(e.value_float);
  }
  w.put(static_cast<int64_t>(k.inputs.size()));
  for (const KInput& in : k.inputs) {
    w.put(static_cast<int64_t>(in.dtype));
    w.put(in.numel);
  }
  w.put(static_cast<int64_t>(k.outputs.size()));
  for (const KOutput& o : k.outputs) {
    w.put(static_cast<int64_t>(o.dtype));
    w.put(static_cast<int64_t>(o.value));
    w.put(static_cast<int64_t>(o.index));
    w.put(o.numel);
  }
  // Only when present, so every other kernel keeps its symbol (and its disk cache entries).
  if (!k.in_place.empty()) {
    w.put(static_cast<int64_t>(k.in_place.size()));
    for (const auto& [slot, output] : k.in_place) {
      w.put(static_cast<int64_t>(slot));
      w.put(static_cast<int64_t>(output));
    }
  }
  return w.bytes();
}

// ---- math -------------------------------------------------------------------------------------

// exp, log, tanh, sigmoid, sin, cos and pow of a float or double (scalar or vector) value.
// `non_positive`: exp's argument is known to be <= 0 or NaN (vecmath.h); `normalized`: also
// that its results feed only their row's normalization (vecmath.h's emit_exp_normalized).
llvm::Value* emit_math(llvm::IRBuilder<>& b, OpCode op, llvm::Value* x, llvm::Value* y,
                       bool non_positive = false, bool normalized = false) {
#if SMELT_CODEGEN_VECMATH
  switch (op) {
    case OpCode::Exp:
      return normalized ? llvm_codegen::emit_exp_normalized(b, x)
                        : llvm_codegen::emit_exp(b, x, non_positive);
    case OpCode::Log:
      return llvm_codegen::emit_log(b, x);
    case OpCode::Tanh:
      return llvm_codegen::emit_tanh(b, x);
    case OpCode::Sigmoid:
      return llvm_codegen::emit_sigmoid(b, x);
    case OpCode::Sin:
      return llvm_codegen::emit_sin(b, x);
    case OpCode::Cos:
      return llvm_codegen::emit_cos(b, x);
    case OpCode::Pow:
      return llvm_codegen::emit_pow(b, x, y);
    default:
      return nullptr;
  }
#else
  switch (op) {
    case OpCode::Exp:
      return b.CreateUnaryIntrinsic(llvm::Intrinsic::exp, x);
    case OpCode::Log:
      return b.CreateUnaryIntrinsic(llvm::Intrinsic::log, x);
    case OpCode::Tanh:
      return b.CreateUnaryIntrinsic(llvm::Intrinsic::tanh, x);
    case OpCode::Sigmoid: {
      llvm::Value* one = llvm::ConstantFP::get(x->getType(), 1.0);
      llvm::Value* e = b.CreateUnaryIntrinsic(llvm::Intrinsic::exp, b.CreateFNeg(x));
      return b.CreateFDiv(one, b.CreateFAdd(one, e));
    }
    case OpCode::Sin:
      return b.CreateUnaryIntrinsic(llvm::Intrinsic::sin, x);
    case OpCode::Cos:
      return b.CreateUnaryIntrinsic(llvm::Intrinsic::cos, x);
    case OpCode::Pow:
      return b.CreateBinaryIntrinsic(llvm::Intrinsic::pow, x, y);
    default:
      return nullptr;
  }
#endif
}

// ---- the emitter ------------------------------------------------------------------------------

// Emits one kernel as two functions: `symbol`, the ABI entry (see emit_kernel.h), which loads the
// buffer pointers and calls `symbol.body`, whose pointer parameters carry noalias and align 64.
// The body is always inlined; the inliner turns its noalias parameters into alias scopes, so the
// vectorizer needs no runtime overlap checks between inputs and outputs.
class KernelEmitter {
 public:
  KernelEmitter(const Kernel& k, llvm::Module& m)
      : k_(k),
        m_(m),
        ctx_(m.getContext()),
        b_(ctx_),
        i64_(llvm::Type::getInt64Ty(ctx_)),
        flat_(parallel_axes(k)),
        parts_(split_parts(k)) {}

  void emit(const std::string& symbol) {
    llvm::Function* body = emit_body(symbol + ".body");
    emit_entry(symbol, body);
  }

 private:
  llvm::Type* reg_type(DType t) const {
    switch (t) {
      case DType::Bool:
        return llvm::Type::getInt1Ty(ctx_);
      case DType::Int32:
        return llvm::Type::getInt32Ty(ctx_);
      case DType::Int64:
        return i64_;
      case DType::Float32:
        return llvm::Type::getFloatTy(ctx_);
      case DType::Float64:
        return llvm::Type::getDoubleTy(ctx_);
    }
    return nullptr;
  }
  // Bool is one byte (0 or 1) in memory.
  llvm::Type* mem_type(DType t) const {
    return t == DType::Bool ? llvm::Type::getInt8Ty(ctx_) : reg_type(t);
  }
  llvm::Value* i64c(int64_t v) const { return llvm::ConstantInt::get(i64_, v, /*isSigned=*/true); }

  // The constant `v` (integral dtypes wrap; Bool is v != 0) or `f` (floating dtypes).
  llvm::Constant* constant(DType t, int64_t v, double f) const {
    switch (t) {
      case DType::Bool:
        return llvm::ConstantInt::get(reg_type(t), v != 0 ? 1 : 0);
      case DType::Int32:
        return llvm::ConstantInt::get(reg_type(t), static_cast<uint32_t>(static_cast<int32_t>(v)));
      case DType::Int64:
        return llvm::ConstantInt::get(i64_, static_cast<uint64_t>(v));
      case DType::Float32:
      case DType::Float64:
        return llvm::ConstantFP::get(reg_type(t), f);
    }
    return nullptr;
  }
  // The smallest and largest value of `t` (floats: -inf and inf; Bool: false and true).
  llvm::Constant* lowest(DType t) const {
    switch (t) {
      case DType::Bool:
        return constant(t, 0, 0);
      case DType::Int32:
        return constant(t, std::numeric_limits<int32_t>::min(), 0);
      case DType::Int64:
        return constant(t, std::numeric_limits<int64_t>::min(), 0);
      default:
        return constant(t, 0, -std::numeric_limits<double>::infinity());
    }
  }
  llvm::Constant* highest(DType t) const {
    switch (t) {
      case DType::Bool:
        return constant(t, 1, 0);
      case DType::Int32:
        return constant(t, std::numeric_limits<int32_t>::max(), 0);
      case DType::Int64:
        return constant(t, std::numeric_limits<int64_t>::max(), 0);
      default:
        return constant(t, 0, std::numeric_limits<double>::infinity());
    }
  }

  // ---- functions and loops --------------------------------------------------------------------

  llvm::Function* emit_body(const std::string& name) {
    const size_t num_in = k_.inputs.size(), num_out = k_.outputs.size();
    const bool split = parts_ > 1;
    reuse_ = reused_output(k_, place(k_, /*reduced_empty=*/false));
    std::vector<llvm::Type*> params(num_in + num_out + (split ? 1 : 0),
                                    llvm::PointerType::get(ctx_, 0));
    params.push_back(i64_);
    params.push_back(i64_);
    auto* fn_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), params, false);
    fn_ = llvm::Function::Create(fn_type, llvm::Function::InternalLinkage, name, m_);
    fn_->addFnAttr(llvm::Attribute::AlwaysInline);
    fn_->addFnAttr(llvm::Attribute::NoUnwind);
    // Outputs computed in place read their input through their own pointer (Kernel::in_place).
    std::vector<bool> read_back(num_out, false);
    if (reuse_ >= 0) read_back[reuse_] = true;
    for (const auto& [slot, o] : k_.in_place) read_back[o] = true;
    for (size_t p = 0; p < num_in + num_out; ++p) {
      const unsigned arg = static_cast<unsigned>(p);
      fn_->addParamAttr(arg, llvm::Attribute::NoAlias);
      fn_->addParamAttr(arg, llvm::Attribute::NoCapture);
      fn_->addParamAttr(arg, llvm::Attribute::getWithAlignment(ctx_, llvm::Align(64)));
      // An output that holds a stage's values until they are final is read back (reused_output).
      if (p < num_in || !read_back[p - num_in]) {
        fn_->addParamAttr(arg, p < num_in ? llvm::Attribute::ReadOnly : llvm::Attribute::WriteOnly);
      }
      llvm::Argument* a = fn_->getArg(arg);
      a->setName(p < num_in ? absl::StrCat("in", p) : absl::StrCat("out", p - num_in));
      ptrs_.push_back(a);
    }
    for (const auto& [slot, o] : k_.in_place) ptrs_[slot] = ptrs_[num_in + o];
    const unsigned num_ptrs = static_cast<unsigned>(num_in + num_out + (split ? 1 : 0));
    if (split) {
      fn_->addParamAttr(num_ptrs - 1, llvm::Attribute::NoAlias);
      fn_->addParamAttr(num_ptrs - 1, llvm::Attribute::NoCapture);
      scratch_ = fn_->getArg(num_ptrs - 1);
      scratch_->setName("scratch");
    }
    begin_ = fn_->getArg(num_ptrs);
    end_ = fn_->getArg(num_ptrs + 1);
    begin_->setName("begin");
    end_->setName("end");

    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", fn_));
    const int rank = static_cast<int>(k_.domain.size());
    const int no = k_.num_outer;
    for (int a = 0; a < no; ++a) {
      if (k_.domain[a] == 0) {  // no output point: nothing to do (and nothing may be loaded)
        b_.CreateRetVoid();
        return fn_;
      }
    }
    bool reduced_empty = false;
    for (int a = no; a < rank; ++a) reduced_empty = reduced_empty || k_.domain[a] == 0;
    const bool reduce = k_.reduce != ReduceOp::kNone;
    placement_ = place(k_, reduced_empty);
    vals_.assign(k_.exprs.size(), nullptr);
    loop_vars_.assign(rank, nullptr);
    const bool tiled = !reduced_empty && outer_vectorized(k_, placement_);
    if (reduce) make_accumulators(tiled ? kReductionTile : 1);
    for (const KStage& st : k_.stages) {
      stage_types_.push_back(reg_type(st.dtype));
      stage_ptrs_.push_back(b_.CreateAlloca(stage_types_.back(), nullptr, "stage"));
      stage_nan_ptrs_.push_back(b_.CreateAlloca(b_.getInt1Ty(), nullptr, "saw_nan"));
    }
    emit_level(0);

    // Nothing runs for an empty range; below, every loop over the range has at least one point.
    llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx_, "done", fn_);
    llvm::BasicBlock* work = llvm::BasicBlock::Create(ctx_, "work", fn_, done);
    b_.CreateCondBr(b_.CreateICmpSLT(begin_, end_), work, done);
    b_.SetInsertPoint(work);
    if (!k_.stages.empty()) {
      emit_row_nest(reduced_empty);
    } else if (split) {
      emit_split_reduction();
    } else if (tiled) {
      emit_tiled_reduction();
    } else {
      emit_loop_nest(reduced_empty);
    }
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
    b_.CreateRetVoid();
    return fn_;
  }

  // The loop nest as kernel_ir.h describes it: outer loops, then (reductions) the accumulator's
  // initialization, the reduced loops and the epilogue, then the stores.
  void emit_loop_nest(bool reduced_empty) {
    const int rank = static_cast<int>(k_.domain.size());
    const int no = k_.num_outer;
    const bool reduce = k_.reduce != ReduceOp::kNone;
    std::vector<Loop> loops;
    if (flat_ > 0) open_flat_loops(loops, 0, flat_, begin_, end_);
    for (int a = flat_; a <= rank; ++a) {
      if (reduce && a == no) {
        init_accumulators();
        if (reduced_empty) break;
      }
      if (a == rank) break;
      loops.push_back(open_loop(absl::StrCat("axis", a), i64c(0), i64c(k_.domain[a])));
      loop_vars_[a] = loops.back().var;
      emit_level(2 * (a + 1));
    }
    if (reduce) {
      if (!reduced_empty) {
        combine();
        while (static_cast<int>(loops.size()) > no) {
          close_loop(loops.back());
          loops.pop_back();
        }
      }
      emit_level(2 * no + 1);
    }
    emit_stores();
    while (!loops.empty()) {
      close_loop(loops.back());
      loops.pop_back();
    }
  }

  // A row kernel (kernel_ir.h): per outer point, one sweep over the reduced axes per stage, then
  // the main reduction's sweep and the stores, or a last sweep that stores every point. Each
  // sweep is its own loop nest, so a value that depends on a reduced loop variable is computed
  // again in every sweep that needs it (the row is then in cache); values that depend only on
  // the outer point and the stages are computed once, right after the stage they need.
  void emit_row_nest(bool reduced_empty) {
    const int no = k_.num_outer;
    const int after = 2 * no + 1;
    if (!reduced_empty) find_prefetch_targets();
    std::vector<Loop> loops;
    if (flat_ > 0) open_flat_loops(loops, 0, flat_, begin_, end_);
    for (int a = flat_; a < no; ++a) {
      loops.push_back(open_loop(absl::StrCat("axis", a), i64c(0), i64c(k_.domain[a])));
      loop_vars_[a] = loops.back().var;
      emit_level(2 * (a + 1));
    }
    const size_t num_in = k_.inputs.size();
    const KOutput* held = reuse_ >= 0 ? &k_.outputs[reuse_] : nullptr;
    llvm::Type* held_type = held != nullptr ? mem_type(held->dtype) : nullptr;
    for (size_t s = 0; s < k_.stages.size(); ++s) {
      const KStage& st = k_.stages[s];
      b_.CreateStore(identity(st.op, st.dtype), stage_ptrs_[s]);
      if (!reduced_empty) {
        const bool hold = held != nullptr && s + 1 == k_.stages.size();
        std::vector<bool> want = placement_.for_stage[s];
        if (hold) {
          const std::vector<bool> index = cone(k_, {held->index});
          for (size_t i = 0; i < want.size(); ++i) want[i] = want[i] || index[i];
        }
        // A float max/min stage takes the plain vector max/min (vmaxps: one instruction, where
        // the NaN-propagating llvm.maximum takes six on x86) and notes NaNs on the side; the
        // stage is NaN after the sweep if any value was. (Which zero a row of -0 and +0 gives is
        // unspecified, as in the reference evaluator, which keeps the first.)
        const bool extreme =
            is_floating(st.dtype) && (st.op == ReduceOp::kMax || st.op == ReduceOp::kMin);
        const bool track_nan = extreme && !nan_reaches_through_sum(static_cast<int>(s));
        llvm::Value* saw_nan = stage_nan_ptrs_[s];
        if (track_nan) b_.CreateStore(b_.getFalse(), saw_nan);
        sweep(want, [&] {
          llvm::Value* acc = b_.CreateLoad(stage_types_[s], stage_ptrs_[s], "stage");
          llvm::Value* x = vals_[st.value];
          if (extreme) {
            llvm::IRBuilder<>::FastMathFlagGuard guard(b_);
            llvm::FastMathFlags fmf;
            fmf.setNoNaNs();
            fmf.setNoSignedZeros();
            b_.setFastMathFlags(fmf);
            const auto id =
                st.op == ReduceOp::kMax ? llvm::Intrinsic::maxnum : llvm::Intrinsic::minnum;
            b_.CreateStore(b_.CreateBinaryIntrinsic(id, acc, x), stage_ptrs_[s]);
            b_.clearFastMathFlags();
            if (track_nan) {
              llvm::Value* seen = b_.CreateLoad(b_.getInt1Ty(), saw_nan);
              b_.CreateStore(b_.CreateOr(seen, b_.CreateFCmpUNO(x, x)), saw_nan);
            }
          } else {
            b_.CreateStore(combine_values(st.op, st.dtype, acc, x), stage_ptrs_[s]);
          }
          if (hold) {
            b_.CreateAlignedStore(
                vals_[st.value],
                b_.CreateInBoundsGEP(held_type, ptrs_[num_in + reuse_], vals_[held->index]),
                llvm::Align(dtype_size(held->dtype)));
          }
        });
        if (track_nan) {
          llvm::Value* acc = b_.CreateLoad(stage_types_[s], stage_ptrs_[s], "stage");
          llvm::Value* nan = llvm::ConstantFP::getNaN(stage_types_[s]);
          b_.CreateStore(b_.CreateSelect(b_.CreateLoad(b_.getInt1Ty(), saw_nan), nan, acc),
                         stage_ptrs_[s]);
        }
      }
      // What the outputs and later sweeps need of this stage, once per outer point.
      for (size_t i = 0; i < k_.exprs.size(); ++i) {
        if (placement_.needed(i) && placement_.level[i] == after && vals_[i] == nullptr &&
            !placement_.uses_acc[i] && placement_.last_stage[i] <= static_cast<int>(s)) {
          vals_[i] = emit_expr(k_.exprs[i]);
        }
      }
    }
    if (k_.reduce != ReduceOp::kNone) {
      init_accumulators();
      if (!reduced_empty) sweep(placement_.for_reduce, [&] { combine(); });
      for (size_t i = 0; i < k_.exprs.size(); ++i) {
        if (placement_.needed(i) && placement_.level[i] == after && vals_[i] == nullptr) {
          vals_[i] = emit_expr(k_.exprs[i]);
        }
      }
      emit_stores();
    } else if (!reduced_empty && held != nullptr) {
      // The last stage's value comes back from the output that holds it: what does not depend
      // on it first (the index among them), then that load, then the rest.
      const int32_t v = k_.stages.back().value;
      std::vector<int32_t> roots;
      for (const KOutput& o : k_.outputs) roots.insert(roots.end(), {o.value, o.index});
      std::vector<bool> want = cone(k_, roots, v), later(k_.exprs.size(), false);
      want[v] = false;  // loaded, not computed
      for (size_t i = 0; i < k_.exprs.size(); ++i) {
        const KExpr& e = k_.exprs[i];
        later[i] = static_cast<int32_t>(i) == v;
        for (int32_t op : {e.a, e.b, e.c}) later[i] = later[i] || (op >= 0 && later[op]);
      }
      sweep(
          want, [&] { emit_stores(); }, &later,
          [&] {
            vals_[v] = b_.CreateAlignedLoad(
                held_type,
                b_.CreateInBoundsGEP(held_type, ptrs_[num_in + reuse_], vals_[held->index]),
                llvm::Align(dtype_size(held->dtype)), "held");
          },
          /*prefetch=*/true);
    } else if (!reduced_empty) {
      sweep(
          placement_.for_output, [&] { emit_stores(); }, nullptr, {}, /*prefetch=*/true);
    }
    while (!loops.empty()) {
      close_loop(loops.back());
      loops.pop_back();
    }
  }

  // One loop nest over the reduced axes that computes the expressions `want` marks, then `body`.
  // Values computed inside are out of scope after it, so they are forgotten.
  // With `later`: in the innermost loop, the wanted expressions it does not mark come first,
  // then `between()`, then those it marks.
  //
  // With `prefetch`, the innermost loop runs in chunks of kPrefetchChunk points where it can (see
  // find_prefetch_targets), and each chunk first prefetches the same part of the rows
  // kPrefetchRows outer points ahead.
  template <typename F>
  void sweep(const std::vector<bool>& want, F body, const std::vector<bool>* later = nullptr,
             const std::function<void()>& between = {}, bool prefetch = false) {
    const int rank = static_cast<int>(k_.domain.size());
    const int no = k_.num_outer;
    const bool chunked = prefetch && !prefetch_targets_.empty();
    std::vector<Loop> loops;
    for (int a = no; a < rank; ++a) {
      if (chunked && a + 1 == rank) {
        loops.push_back(open_loop(absl::StrCat("axis", a, ".chunk"), i64c(0), i64c(k_.domain[a]),
                                  kPrefetchChunk));
        emit_prefetches(loops.back().var);
        llvm::Value* stop = b_.CreateAdd(loops.back().var, i64c(kPrefetchChunk), "", true, true);
        loops.push_back(open_loop(absl::StrCat("axis", a), loops.back().var, stop));
      } else {
        loops.push_back(open_loop(absl::StrCat("axis", a), i64c(0), i64c(k_.domain[a])));
      }
      loop_vars_[a] = loops.back().var;
      const bool split = later != nullptr && a + 1 == rank;
      for (int pass = 0; pass < (split ? 2 : 1); ++pass) {
        if (pass == 1) between();
        for (size_t i = 0; i < k_.exprs.size(); ++i) {
          if (want[i] && placement_.level[i] == 2 * (a + 1) &&
              (!split || (*later)[i] == (pass == 1))) {
            vals_[i] = emit_expr(k_.exprs[i]);
          }
        }
      }
    }
    body();
    while (!loops.empty()) {
      close_loop(loops.back());
      loops.pop_back();
    }
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (placement_.level[i] > 2 * no + 1) vals_[i] = nullptr;
    }
  }

  // A row's first sweep reads it from memory; the hardware prefetchers do not run ahead into the
  // next row's page while the later sweeps compute from L1, so each row started with a burst of
  // misses. The last sweep (a map, so chunking it costs no extra horizontal reductions) prefetches
  // the rows kPrefetchRows ahead of every load that walks its row contiguously (stride 1 along
  // the innermost reduced axis) and whose rows lie a fixed stride apart along the innermost outer
  // axis. Only where that reduced extent is a whole number of chunks (at least two); addresses
  // past the end of an input are fine, since a prefetch never faults.
  void find_prefetch_targets() {
    prefetch_targets_.clear();
    const int rank = static_cast<int>(k_.domain.size());
    const int no = k_.num_outer;
    if (no == 0 || rank == no) return;
    const int64_t extent = k_.domain[rank - 1];
    if (extent % kPrefetchChunk != 0 || extent < 2 * kPrefetchChunk) return;
    const std::vector<std::optional<int64_t>> inner = axis_strides(k_, rank - 1);
    const std::vector<std::optional<int64_t>> outer = axis_strides(k_, no - 1);
    for (const KExpr& e : k_.exprs) {
      if (e.kind != KOp::kLoad || inner[e.a] != 1 || !outer[e.a] || *outer[e.a] == 0 ||
          !plain_index(e.a)) {
        continue;
      }
      PrefetchTarget t{e.a, e.slot, e.dtype, *outer[e.a]};
      if (std::find(prefetch_targets_.begin(), prefetch_targets_.end(), t) ==
          prefetch_targets_.end()) {
        prefetch_targets_.push_back(t);
      }
    }
  }

  // Whether Int64 expression i is index arithmetic over loop variables (no loaded index).
  bool plain_index(int32_t i) const {
    const KExpr& e = k_.exprs[i];
    switch (e.kind) {
      case KOp::kLoopVar:
      case KOp::kIConst:
        return true;
      case KOp::kIAdd:
      case KOp::kIMul:
      case KOp::kIDiv:
      case KOp::kIMod:
        return plain_index(e.a) && plain_index(e.b);
      default:
        return false;
    }
  }

  // Index expression i (plain_index) with axis `axis`'s loop variable replaced by `at`.
  llvm::Value* emit_index_at(int32_t i, int axis, llvm::Value* at) {
    const KExpr& e = k_.exprs[i];
    switch (e.kind) {
      case KOp::kLoopVar:
        return e.value_int == axis ? at : loop_vars_[e.value_int];
      case KOp::kIConst:
        return i64c(e.value_int);
      default:
        break;
    }
    llvm::Value* a = emit_index_at(e.a, axis, at);
    llvm::Value* b = emit_index_at(e.b, axis, at);
    switch (e.kind) {
      case KOp::kIAdd:
        return b_.CreateAdd(a, b);
      case KOp::kIMul:
        return b_.CreateMul(a, b);
      case KOp::kIDiv:
        return b_.CreateUDiv(a, b);
      default:
        return b_.CreateURem(a, b);
    }
  }

  // The prefetches of the chunk that starts at innermost index `start` (see sweep).
  void emit_prefetches(llvm::Value* start) {
    const int rank = static_cast<int>(k_.domain.size());
    for (const PrefetchTarget& t : prefetch_targets_) {
      llvm::Value* index =
          b_.CreateAdd(emit_index_at(t.index, rank - 1, start), i64c(kPrefetchRows * t.row_stride));
      // Not inbounds: the address may lie past the input's end.
      llvm::Value* p = b_.CreateGEP(mem_type(t.dtype), ptrs_[t.slot], index);
      const int64_t bytes = kPrefetchChunk * static_cast<int64_t>(dtype_size(t.dtype));
      for (int64_t off = 0; off < bytes; off += 64) {
        b_.CreateIntrinsic(llvm::Intrinsic::prefetch, {p->getType()},
                           {b_.CreateGEP(b_.getInt8Ty(), p, i64c(off)), b_.getInt32(0),
                            b_.getInt32(3), b_.getInt32(1)});
      }
    }
  }

  // An outer-vectorized reduction (see outer_vectorized): the innermost outer axis o runs in tiles
  // of up to kReductionTile points, each with its own accumulator slot:
  //
  //   for each tile of axis o:
  //     for t in tile: acc[t] = identity
  //     for each reduced point:
  //       for t in tile: acc[t] = combine(acc[t], value at (o = tile + t))   <- vectorizes
  //     for t in tile: out[...] = epilogue(acc[t])
  //
  // Each output still combines its values in the reduced loops' order, so the result is the
  // same as the plain loop nest's, bit for bit.
  void emit_tiled_reduction() {
    const int rank = static_cast<int>(k_.domain.size());
    const int no = k_.num_outer;
    const int o = no - 1;
    const std::vector<bool> dep_o = depends_on_axis(k_, o);
    std::vector<Loop> loops;
    // Axes before o are flattened into the range (parallel_axes stops before o); when o is
    // axis 0, the range is its tiles'.
    const int flat = o == 0 ? 0 : flat_;
    if (flat > 0) open_flat_loops(loops, 0, flat, begin_, end_);
    for (int a = flat; a < o; ++a) {
      loops.push_back(open_loop(absl::StrCat("axis", a), i64c(0), i64c(k_.domain[a])));
      loop_vars_[a] = loops.back().var;
      emit_level(2 * (a + 1));
    }
    const bool split = o == 0;
    llvm::Value* stop = split ? end_ : i64c(k_.domain[o]);
    Loop tile =
        open_loop(absl::StrCat("axis", o, ".tile"), split ? begin_ : i64c(0), stop, kReductionTile);
    llvm::Value* count = b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, i64c(kReductionTile),
                                                  b_.CreateSub(stop, tile.var), nullptr, "count");
    // Opens `for t in [0, count)` with axis o's variable and the accumulator slot of point t.
    auto open_tile_loop = [&](const char* name) {
      Loop t = open_loop(name, i64c(0), count);
      loop_vars_[o] = b_.CreateAdd(tile.var, t.var, absl::StrCat("i", o), true, true);
      point_accumulators(t.var);
      return t;
    };

    Loop init = open_tile_loop("init");
    init_accumulators();
    close_loop(init);

    std::vector<Loop> reduced;
    for (int a = no; a < rank; ++a) {
      reduced.push_back(open_loop(absl::StrCat("axis", a), i64c(0), i64c(k_.domain[a])));
      loop_vars_[a] = reduced.back().var;
      emit_level(2 * (a + 1), &dep_o);
    }
    Loop step = open_tile_loop("combine");
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (placement_.for_reduce[i] && dep_o[i]) vals_[i] = emit_expr(k_.exprs[i]);
    }
    combine();
    close_loop(step);
    while (!reduced.empty()) {
      close_loop(reduced.back());
      reduced.pop_back();
    }

    Loop post = open_tile_loop("store");
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (placement_.for_output[i] && (dep_o[i] || placement_.uses_acc[i])) {
        vals_[i] = emit_expr(k_.exprs[i]);
      }
    }
    emit_stores();
    close_loop(post);

    close_loop(tile);
    while (!loops.empty()) {
      close_loop(loops.back());
      loops.pop_back();
    }
  }

  struct Loop {
    llvm::BasicBlock* header;
    llvm::BasicBlock* exit;
    llvm::PHINode* var;
    llvm::Value* end;
    int64_t step;
  };

  // Opens the loops of axes [first, first + count) over the points [lo, hi) of their row-major
  // flattening (lo < hi): each axis runs from the begin point's index while every outer index
  // is at the begin point's, to the last point's while every outer index is at the last
  // point's, and over its whole extent otherwise. The innermost loop keeps unit steps and
  // loop-invariant bounds, so it vectorizes as a plain loop does.
  void open_flat_loops(std::vector<Loop>& loops, int first, int count, llvm::Value* lo,
                       llvm::Value* hi) {
    std::vector<int64_t> stride(count, 1);
    for (int j = count - 2; j >= 0; --j) stride[j] = stride[j + 1] * k_.domain[first + j + 1];
    llvm::Value* last = b_.CreateSub(hi, i64c(1), "last", true, true);
    auto digit = [&](llvm::Value* x, int j) {
      llvm::Value* q = stride[j] == 1 ? x : b_.CreateUDiv(x, i64c(stride[j]));
      return j == 0 ? q : b_.CreateURem(q, i64c(k_.domain[first + j]));
    };
    llvm::Value* at_lo = nullptr;
    llvm::Value* at_last = nullptr;
    for (int j = 0; j < count; ++j) {
      const int a = first + j;
      llvm::Value* lo_j = digit(lo, j);
      llvm::Value* last_j = digit(last, j);
      llvm::Value* stop_j = b_.CreateAdd(last_j, i64c(1), "", true, true);
      llvm::Value* start = j == 0 ? lo_j : b_.CreateSelect(at_lo, lo_j, i64c(0));
      llvm::Value* stop = j == 0 ? stop_j : b_.CreateSelect(at_last, stop_j, i64c(k_.domain[a]));
      loops.push_back(open_loop(absl::StrCat("axis", a), start, stop));
      llvm::Value* var = loops.back().var;
      loop_vars_[a] = var;
      if (j + 1 < count) {
        llvm::Value* eq_lo = b_.CreateICmpEQ(var, lo_j);
        llvm::Value* eq_last = b_.CreateICmpEQ(var, last_j);
        at_lo = j == 0 ? eq_lo : b_.CreateAnd(at_lo, eq_lo);
        at_last = j == 0 ? eq_last : b_.CreateAnd(at_last, eq_last);
      }
      emit_level(2 * (a + 1));
    }
  }

  // A split reduction (see emit_kernel.h); range point r is part p = r % parts of output
  // o = r / parts:
  //
  //   for r in [begin, end):
  //     acc = identity; for each point of part p's share of o's reduced range: combine
  //     scratch.partial[r] = acc
  //   for each output o that [begin, end) touches:
  //     if (scratch.counter[o] += its parts in [begin, end)) == parts:  <- completed o's last part
  //       acc = identity; for q in [0, parts): combine(scratch.partial[o * parts + q])
  //       epilogue; store
  //
  // The counters' acquire-release adds order every part's partial store before the combine.
  void emit_split_reduction() {
    const int rank = static_cast<int>(k_.domain.size());
    const int no = k_.num_outer;
    const int64_t n = reduced_points(k_);
    const bool arg = is_arg_reduce(k_.reduce);
    const int64_t header = scratch_header(k_), total = outer_points(k_) * parts_;
    llvm::Type* i8 = b_.getInt8Ty();
    auto at = [&](llvm::Value* byte_offset) {
      return b_.CreateInBoundsGEP(i8, scratch_, byte_offset);
    };
    auto slot = [&](llvm::Value* r, int64_t table) {
      return at(b_.CreateAdd(i64c(header + 8 * total * table),
                             b_.CreateMul(r, i64c(8), "", true, true), "", true, true));
    };
    // Sets the outer loop variables to output o's indices and computes what depends on them.
    auto enter_output = [&](llvm::Value* o) {
      int64_t stride = 1;
      for (int a = no - 1; a >= 0; --a) {
        llvm::Value* q = stride == 1 ? o : b_.CreateUDiv(o, i64c(stride));
        loop_vars_[a] = a == 0 ? q : b_.CreateURem(q, i64c(k_.domain[a]));
        stride *= k_.domain[a];
      }
      for (int a = 0; a < no; ++a) emit_level(2 * (a + 1));
    };

    Loop part = open_loop("part", begin_, end_);
    llvm::Value* o = b_.CreateUDiv(part.var, i64c(parts_), "o");
    llvm::Value* p = b_.CreateURem(part.var, i64c(parts_), "p");
    enter_output(o);
    init_accumulators();
    // Part p reduces points [p*n/parts, (p+1)*n/parts): never empty, as parts <= n.
    llvm::Value* lo = b_.CreateUDiv(b_.CreateMul(p, i64c(n), "", true, true), i64c(parts_));
    llvm::Value* next = b_.CreateAdd(p, i64c(1), "", true, true);
    llvm::Value* hi = b_.CreateUDiv(b_.CreateMul(next, i64c(n), "", true, true), i64c(parts_));
    std::vector<Loop> loops;
    open_flat_loops(loops, no, rank - no, lo, hi);
    combine();
    while (!loops.empty()) {
      close_loop(loops.back());
      loops.pop_back();
    }
    b_.CreateAlignedStore(b_.CreateLoad(acc_type_, acc_ptr_), slot(part.var, 0), llvm::Align(8));
    if (arg) {
      b_.CreateAlignedStore(b_.CreateLoad(i64_, best_index_ptr_), slot(part.var, 1),
                            llvm::Align(8));
    }
    close_loop(part);

    llvm::Value* first_o = b_.CreateUDiv(begin_, i64c(parts_));
    llvm::Value* last_o = b_.CreateUDiv(b_.CreateSub(end_, i64c(1)), i64c(parts_));
    Loop out = open_loop("output", first_o, b_.CreateAdd(last_o, i64c(1)));
    llvm::Value* o_begin = b_.CreateMul(out.var, i64c(parts_));
    llvm::Value* o_end = b_.CreateAdd(o_begin, i64c(parts_));
    llvm::Value* done_parts =
        b_.CreateSub(b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, end_, o_end),
                     b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, begin_, o_begin));
    llvm::Value* counter = at(b_.CreateMul(out.var, i64c(8)));
    llvm::Value* before = b_.CreateAtomicRMW(llvm::AtomicRMWInst::Add, counter, done_parts,
                                             llvm::Align(8), llvm::AtomicOrdering::AcquireRelease);
    llvm::Value* last = b_.CreateICmpEQ(b_.CreateAdd(before, done_parts), i64c(parts_));
    llvm::BasicBlock* finish = llvm::BasicBlock::Create(ctx_, "finish", fn_);
    llvm::BasicBlock* after = llvm::BasicBlock::Create(ctx_, "finish.end", fn_);
    b_.CreateCondBr(last, finish, after);
    b_.SetInsertPoint(finish);
    // Back to zero, so a caller may run the kernel again on the same scratch.
    b_.CreateAlignedStore(i64c(0), counter, llvm::Align(8));
    init_accumulators();
    Loop q = open_loop("partial", i64c(0), i64c(parts_));
    llvm::Value* r = b_.CreateAdd(o_begin, q.var, "", true, true);
    llvm::Value* x = b_.CreateAlignedLoad(acc_type_, slot(r, 0), llvm::Align(8));
    // Positions are within the whole reduced range already; argmax/argmin's combine keeps the
    // earlier of equal values, and the parts are combined in order, so ties and NaNs resolve as
    // in one pass.
    combine_with(
        x, [&] { return arg ? b_.CreateAlignedLoad(i64_, slot(r, 1), llvm::Align(8)) : nullptr; });
    close_loop(q);
    enter_output(out.var);
    emit_level(2 * no + 1);
    emit_stores();
    b_.CreateBr(after);
    b_.SetInsertPoint(after);
    close_loop(out);
  }

  void emit_entry(const std::string& symbol, llvm::Function* body) {
    auto* ptr = llvm::PointerType::get(ctx_, 0);
    auto* fn_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr, i64_, i64_}, false);
    auto* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, symbol, m_);
    fn->addFnAttr(llvm::Attribute::NoUnwind);
    // LLVM's tuning for Intel's AVX-512 cores vectorizes 256 bits wide by default (to dodge the
    // clock drop of 512-bit code on older parts). Kernels are long vector loops over L2/L3- or
    // memory-resident data, where the wider vectors halve the instructions per element; on CPUs
    // without AVX-512 this is only an upper bound and changes nothing.
    fn->addFnAttr("prefer-vector-width", "512");
    fn->addParamAttr(0, llvm::Attribute::NoCapture);
    fn->addParamAttr(0, llvm::Attribute::ReadOnly);
    fn->getArg(0)->setName("buffers");
    fn->getArg(1)->setName("begin");
    fn->getArg(2)->setName("end");
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", fn));
    std::vector<llvm::Value*> args;
    const size_t num = k_.inputs.size() + k_.outputs.size() + (parts_ > 1 ? 1 : 0);
    for (size_t p = 0; p < num; ++p) {
      llvm::Value* slot = b_.CreateConstInBoundsGEP1_64(ptr, fn->getArg(0), p);
      args.push_back(b_.CreateAlignedLoad(ptr, slot, llvm::Align(8)));
    }
    args.push_back(fn->getArg(1));
    args.push_back(fn->getArg(2));
    b_.CreateCall(body, args);
    b_.CreateRetVoid();
  }

  // Opens `for (i = start; i < end; i += step)` in bottom-tested form (the shape LoopRotate
  // would produce). Every loop has at least one iteration: constant trip counts are at least 1
  // (empty domains returned early), and the range's loops run only for a non-empty range.
  Loop open_loop(const std::string& name, llvm::Value* start, llvm::Value* end, int64_t step = 1) {
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    Loop l;
    l.header = llvm::BasicBlock::Create(ctx_, name, fn_);
    l.exit = llvm::BasicBlock::Create(ctx_, name + ".end", fn_);
    l.end = end;
    l.step = step;
    b_.CreateBr(l.header);
    b_.SetInsertPoint(l.header);
    l.var = b_.CreatePHI(i64_, 2, name.rfind("axis", 0) == 0 ? "i" + name.substr(4) : name);
    l.var->addIncoming(start, pre);
    return l;
  }

  void close_loop(Loop& l) {
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    llvm::Value* next = b_.CreateAdd(l.var, i64c(l.step), "", /*HasNUW=*/true, /*HasNSW=*/true);
    b_.CreateCondBr(b_.CreateICmpSLT(next, l.end), l.header, l.exit);
    l.var->addIncoming(next, latch);
    l.exit->moveAfter(latch);
    b_.SetInsertPoint(l.exit);
  }

  // ---- expressions ------------------------------------------------------------------------------

  // Emits the needed expressions of `level`, but those `skip` marks.
  void emit_level(int level, const std::vector<bool>* skip = nullptr) {
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (placement_.needed(i) && placement_.level[i] == level && !(skip && (*skip)[i])) {
        vals_[i] = emit_expr(k_.exprs[i]);
      }
    }
  }

  llvm::Value* emit_expr(const KExpr& e) {
    auto v = [&](int32_t x) { return vals_[x]; };
    switch (e.kind) {
      case KOp::kLoopVar:
        return loop_vars_[e.value_int];
      case KOp::kIConst:
        return i64c(e.value_int);
      // Index arithmetic stays far from 2^63 (it addresses real buffers), so nsw holds; it
      // lets scalar evolution see through the address computations.
      case KOp::kIAdd:
        return b_.CreateAdd(v(e.a), v(e.b), "", false, /*HasNSW=*/true);
      case KOp::kIMul:
        return b_.CreateMul(v(e.a), v(e.b), "", false, /*HasNSW=*/true);
      // Operands are non-negative and divisors positive (kernel_ir.h), so unsigned division
      // is exact and cheaper than signed.
      case KOp::kIDiv:
        return b_.CreateUDiv(v(e.a), v(e.b));
      case KOp::kIMod:
        return b_.CreateURem(v(e.a), v(e.b));
      case KOp::kILt:
        return b_.CreateICmpSLT(v(e.a), v(e.b));
      case KOp::kAnd:
        return b_.CreateAnd(v(e.a), v(e.b));
      case KOp::kLoad: {
        llvm::Type* t = mem_type(e.dtype);
        llvm::Value* p = b_.CreateInBoundsGEP(t, ptrs_[e.slot], v(e.a));
        llvm::Value* x = b_.CreateAlignedLoad(t, p, llvm::Align(dtype_size(e.dtype)));
        return e.dtype == DType::Bool ? b_.CreateICmpNE(x, llvm::ConstantInt::get(t, 0)) : x;
      }
      case KOp::kConst:
        return constant(e.dtype, e.value_int, e.value_float);
      case KOp::kAcc:
        return is_arg_reduce(k_.reduce) ? b_.CreateLoad(i64_, best_index_ptr_, "acc")
                                        : b_.CreateLoad(acc_type_, acc_ptr_, "acc");
      case KOp::kStage:
        return b_.CreateLoad(stage_types_[e.value_int], stage_ptrs_[e.value_int], "stage");
      case KOp::kApply:
        return emit_apply(e);
      case KOp::kSelect:
        return b_.CreateSelect(v(e.a), v(e.b), v(e.c));
    }
    return nullptr;
  }

  llvm::Value* fconst(llvm::Type* t, double v) { return llvm::ConstantFP::get(t, v); }

  // Whether expression x is a - m with m a max stage of a itself (softmax's x - max(x)): then
  // x <= 0 or NaN at every point of the row, since the stage saw every a of the row.
  bool below_row_max(int32_t x) const {
    const KExpr& d = k_.exprs[x];
    if (d.kind != KOp::kApply || d.op != OpCode::Sub || !is_floating(d.dtype)) return false;
    const KExpr& m = k_.exprs[d.b];
    if (m.kind != KOp::kStage) return false;
    const KStage& st = k_.stages[m.value_int];
    return st.op == ReduceOp::kMax && st.value == d.a;
  }

  // Whether expression x is e^(a - max a) (exp_below_row_max) that only a sum stage and
  // divisions by that stage read (softmax; log_softmax takes the log of the sum): then each value
  // matters only relative to the row's sum, which e^0 = 1 bounds from below, and the cheaper
  // exp of vecmath.h's emit_exp_normalized applies.
  bool normalized_exp(std::ptrdiff_t x) const {
    if (x < 0 || x >= static_cast<std::ptrdiff_t>(k_.exprs.size())) return false;
    const int32_t i = static_cast<int32_t>(x);
    if (!exp_below_row_max(i)) return false;
    int sum_stage = -1;
    for (size_t s = 0; s < k_.stages.size(); ++s) {
      if (k_.stages[s].value != i) continue;
      if (k_.stages[s].op != ReduceOp::kSum || sum_stage >= 0) return false;
      sum_stage = static_cast<int>(s);
    }
    if (sum_stage < 0) return false;
    for (const KExpr& e : k_.exprs) {
      if (e.a != i && e.b != i && e.c != i) continue;
      const bool divided = e.kind == KOp::kApply && e.op == OpCode::Div && e.a == i && e.b != i &&
                           k_.exprs[e.b].kind == KOp::kStage &&
                           k_.exprs[e.b].value_int == sum_stage;
      if (!divided) return false;
    }
    for (const KOutput& o : k_.outputs) {
      if (o.value == i) return false;
    }
    return k_.reduce_value != i;  // a main reduction of the values themselves: not a normalization
  }

  // Whether max stage `s` may skip its NaN flag (emit_row_nest) because a NaN in its row reaches
  // everything that depends on it anyway: the stage's only reader is d = a - max a, d's only
  // reader is e = e^d, and e feeds only its row's sum and divisions by it (normalized_exp), as in
  // softmax. A NaN a makes that d and e NaN, hence the sum and every e / sum NaN, as a NaN
  // stage would have made them; the stage's value for the other elements no longer matters.
  bool nan_reaches_through_sum(int s) const {
    if (k_.stages[s].op != ReduceOp::kMax) return false;
    int32_t d = -1;
    for (size_t j = 0; j < k_.exprs.size(); ++j) {
      const KExpr& e = k_.exprs[j];
      if (e.kind == KOp::kStage && e.value_int == s) {
        // Every reader of this stage expression must be one d = a - max a.
        const int32_t m = static_cast<int32_t>(j);
        for (size_t u = 0; u < k_.exprs.size(); ++u) {
          const KExpr& r = k_.exprs[u];
          if (r.a != m && r.b != m && r.c != m) continue;
          if (!below_row_max(static_cast<int32_t>(u)) || r.b != m || r.a == m) return false;
          if (d >= 0 && d != static_cast<int32_t>(u)) return false;
          d = static_cast<int32_t>(u);
        }
        for (const KOutput& o : k_.outputs) {
          if (o.value == m) return false;
        }
      }
    }
    if (d < 0) return false;
    for (const KOutput& o : k_.outputs) {
      if (o.value == d) return false;
    }
    for (const KStage& st : k_.stages) {
      if (st.value == d) return false;
    }
    int32_t exp = -1;
    for (size_t u = 0; u < k_.exprs.size(); ++u) {
      const KExpr& r = k_.exprs[u];
      if (r.a != d && r.b != d && r.c != d) continue;
      if (exp >= 0 || !normalized_exp(static_cast<std::ptrdiff_t>(u))) return false;
      exp = static_cast<int32_t>(u);
    }
    return exp >= 0 && k_.reduce_value != d;
  }

  // Whether expression x is e^(a - max a) with the max a stage of a (below_row_max): in [+0, 1]
  // or NaN.
  bool exp_below_row_max(int32_t x) const {
    const KExpr& e = k_.exprs[x];
    return e.kind == KOp::kApply && e.op == OpCode::Exp && below_row_max(e.a);
  }

  // Whether operand `x` of expression `e` (an element of k_.exprs) is the same at every point of
  // the loop that computes e: it is placed at a lower level, and e sits in a loop body.
  bool invariant_in_its_loop(const KExpr& e, int32_t x) const {
    const auto self = &e - k_.exprs.data();
    if (self < 0 || self >= static_cast<std::ptrdiff_t>(k_.exprs.size())) return false;
    const int at = placement_.level[self];
    return is_floating(e.dtype) && at >= 2 && at % 2 == 0 && placement_.level[x] < at;
  }

  // a / s for a divisor s that the loop does not change (softmax's 1 / sum, layer norm's
  // 1 / std, x / 3): a division costs ~5-10 cycles per vector here, so the loop multiplies by
  // r = 1 / s (computed once, LICM hoists it) and refines the product by one Newton step: with
  // r = RN(1/s) and q = RN(a r), e = a - q s is exact (one fma) and RN(q + e r) = RN(a / s)
  // (Markstein's theorem), the correctly rounded quotient that fdiv gives. The theorem needs r
  // normal, so the branch on |s|'s range keeps fdiv for 0, inf, NaN and extreme s; it is
  // loop-invariant, and LLVM's loop unswitching (O3) turns it into one loop of each kind. In the
  // fast loop the refined quotient is NaN only where a is inf or NaN (then q is a / s) or where
  // a r overflows (then q = inf, and a / s overflows too or lies within an ulp of the overflow
  // threshold), and a zero takes q's sign; quotients in the subnormal range may differ from
  // fdiv's by a unit in the last place.
  //
  // `unsigned_finite`: a is known to be finite and not -0, or NaN (softmax's e^(x - max x), in
  // [+0, 1]). Then the select is dead: a zero quotient comes out of the fmas with the right sign
  // (+0 r + (+-0) and -0 s + (+0) are +0 or the sign of a r, as fdiv's), q cannot overflow (|a r|
  // <= 2^125), and a NaN a stays NaN.
  llvm::Value* divide_by_invariant(llvm::Value* a, llvm::Value* s, bool unsigned_finite) {
    llvm::Type* ty = a->getType();
    const bool f64 = ty->isDoubleTy();
    llvm::Value* r = b_.CreateFDiv(fconst(ty, 1), s, "recip");
    llvm::Value* mag = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, s);
    llvm::Value* normal_recip =
        b_.CreateAnd(b_.CreateFCmpOGE(mag, fconst(ty, f64 ? 0x1p-1021 : 0x1p-125)),
                     b_.CreateFCmpOLE(mag, fconst(ty, f64 ? 0x1p1021 : 0x1p125)));
    llvm::BasicBlock* fast = llvm::BasicBlock::Create(ctx_, "div.recip", fn_);
    llvm::BasicBlock* exact = llvm::BasicBlock::Create(ctx_, "div.exact", fn_);
    llvm::BasicBlock* join = llvm::BasicBlock::Create(ctx_, "div.join", fn_);
    b_.CreateCondBr(normal_recip, fast, exact);
    b_.SetInsertPoint(fast);
    llvm::Value* q = b_.CreateFMul(a, r);
    llvm::Value* err = b_.CreateIntrinsic(llvm::Intrinsic::fma, {ty}, {b_.CreateFNeg(q), s, a});
    llvm::Value* refined = b_.CreateIntrinsic(llvm::Intrinsic::fma, {ty}, {err, r, q});
    // ueq: NaN (above) or zero, where q = a r carries the quotient's sign (the fma sum makes
    // +0 of -0 / s).
    llvm::Value* quotient =
        unsigned_finite ? refined
                        : b_.CreateSelect(b_.CreateFCmpUEQ(refined, fconst(ty, 0)), q, refined);
    b_.CreateBr(join);
    b_.SetInsertPoint(exact);
    llvm::Value* divided = b_.CreateFDiv(a, s);
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
    llvm::PHINode* phi = b_.CreatePHI(ty, 2, "quotient");
    phi->addIncoming(quotient, fast);
    phi->addIncoming(divided, exact);
    return phi;
  }

  // One elementwise IR op, with the reference evaluator's scalar semantics
  // (ir/ops/elementwise.cpp): integer arithmetic wraps, Bool arithmetic saturates to 0/1 (add
  // and maximum are "or", mul and minimum "and"), NaN propagates through maximum/minimum/relu.
  llvm::Value* emit_apply(const KExpr& e) {
    const DType t = k_.exprs[e.a].dtype;
    llvm::Value* x = vals_[e.a];
    llvm::Value* y = e.b >= 0 ? vals_[e.b] : nullptr;
    llvm::Type* ty = x->getType();
    const bool fp = is_floating(t);
    const bool bl = t == DType::Bool;
    switch (e.op) {
      case OpCode::Neg:
        return fp ? b_.CreateFNeg(x) : b_.CreateSub(llvm::ConstantInt::get(ty, 0), x);
      case OpCode::Abs:
        return fp ? b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)
                  : b_.CreateBinaryIntrinsic(llvm::Intrinsic::abs, x, b_.getFalse());
      case OpCode::Sign: {
        // (0 < x) - (x < 0): 0 for NaN and both zeros.
        llvm::Value* pos = fp ? b_.CreateFCmpOGT(x, fconst(ty, 0)) : b_.CreateICmpSGT(x, zero(ty));
        llvm::Value* neg = fp ? b_.CreateFCmpOLT(x, fconst(ty, 0)) : b_.CreateICmpSLT(x, zero(ty));
        llvm::Value* one = fp ? fconst(ty, 1) : llvm::ConstantInt::get(ty, 1);
        llvm::Value* minus_one = fp ? fconst(ty, -1) : llvm::ConstantInt::getSigned(ty, -1);
        return b_.CreateSelect(pos, one, b_.CreateSelect(neg, minus_one, zero(ty)));
      }
      case OpCode::Exp:
      case OpCode::Log:
      case OpCode::Tanh:
      case OpCode::Sigmoid:
      case OpCode::Sin:
      case OpCode::Cos:
      case OpCode::Pow:
        return emit_math(b_, e.op, x, y, e.op == OpCode::Exp && below_row_max(e.a),
                         e.op == OpCode::Exp && normalized_exp(&e - k_.exprs.data()));
      case OpCode::Sqrt:
        return b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x);
      case OpCode::Floor:
        return b_.CreateUnaryIntrinsic(llvm::Intrinsic::floor, x);
      case OpCode::Ceil:
        return b_.CreateUnaryIntrinsic(llvm::Intrinsic::ceil, x);
      case OpCode::Round:
        return b_.CreateUnaryIntrinsic(llvm::Intrinsic::roundeven, x);
      case OpCode::Trunc:
        return b_.CreateUnaryIntrinsic(llvm::Intrinsic::trunc, x);
      case OpCode::Rsqrt: {
        // Float32 goes through double, like the reference: 1 / sqrt(x) rounded twice in float
        // is off by one ULP for some x.
        llvm::Type* wide = t == DType::Float32 ? b_.getDoubleTy() : ty;
        llvm::Value* w = b_.CreateFPExt(x, wide);
        llvm::Value* r =
            b_.CreateFDiv(fconst(wide, 1), b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, w));
        return b_.CreateFPTrunc(r, ty);
      }
      case OpCode::Relu:
        // ugt: x > 0 or unordered, so NaN stays NaN.
        return fp ? b_.CreateSelect(b_.CreateFCmpUGT(x, fconst(ty, 0)), x, fconst(ty, 0))
                  : b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, x, zero(ty));
      case OpCode::LogicalNot:
        return b_.CreateNot(x);
      case OpCode::Cast:
        return emit_cast(x, t, e.dtype);
      case OpCode::Copy:
        return x;
      case OpCode::Add:
        return fp ? b_.CreateFAdd(x, y) : bl ? b_.CreateOr(x, y) : b_.CreateAdd(x, y);
      case OpCode::Sub:
        return fp ? b_.CreateFSub(x, y) : b_.CreateSub(x, y);
      case OpCode::Mul:
        return fp ? b_.CreateFMul(x, y) : bl ? b_.CreateAnd(x, y) : b_.CreateMul(x, y);
      case OpCode::Div:
        return invariant_in_its_loop(e, e.b) ? divide_by_invariant(x, y, exp_below_row_max(e.a))
                                             : b_.CreateFDiv(x, y);
      case OpCode::Maximum:
      case OpCode::Minimum: {
        const bool max = e.op == OpCode::Maximum;
        if (bl) return max ? b_.CreateOr(x, y) : b_.CreateAnd(x, y);
        if (!fp) {
          return b_.CreateBinaryIntrinsic(max ? llvm::Intrinsic::smax : llvm::Intrinsic::smin, x,
                                          y);
        }
        // NaN if either is NaN, else the larger (smaller); ties give y, as the reference does.
        llvm::Value* pick =
            b_.CreateSelect(max ? b_.CreateFCmpOGT(x, y) : b_.CreateFCmpOLT(x, y), x, y);
        return b_.CreateSelect(b_.CreateFCmpUNO(x, y), b_.CreateFAdd(x, y), pick);
      }
      case OpCode::Eq:
        return fp ? b_.CreateFCmpOEQ(x, y) : b_.CreateICmpEQ(x, y);
      case OpCode::Ne:
        return fp ? b_.CreateFCmpUNE(x, y) : b_.CreateICmpNE(x, y);
      case OpCode::Lt:
        return fp ? b_.CreateFCmpOLT(x, y) : bl ? b_.CreateICmpULT(x, y) : b_.CreateICmpSLT(x, y);
      case OpCode::Le:
        return fp ? b_.CreateFCmpOLE(x, y) : bl ? b_.CreateICmpULE(x, y) : b_.CreateICmpSLE(x, y);
      case OpCode::Gt:
        return fp ? b_.CreateFCmpOGT(x, y) : bl ? b_.CreateICmpUGT(x, y) : b_.CreateICmpSGT(x, y);
      case OpCode::Ge:
        return fp ? b_.CreateFCmpOGE(x, y) : bl ? b_.CreateICmpUGE(x, y) : b_.CreateICmpSGE(x, y);
      case OpCode::LogicalAnd:
        return b_.CreateAnd(x, y);
      case OpCode::LogicalOr:
        return b_.CreateOr(x, y);
      case OpCode::Where:
        return b_.CreateSelect(x, y, vals_[e.c]);
      default:
        return nullptr;  // check_kernel admits no other op
    }
  }

  llvm::Value* zero(llvm::Type* t) { return llvm::Constant::getNullValue(t); }

  // cast: float -> integer truncates toward zero, and NaN, infinities and values outside the
  // target's range give its minimum (x86's cvtt* result; plain fptosi would be poison there).
  // Anything -> Bool is x != 0 (NaN is true); Bool -> number is 0 or 1; integers wrap.
  llvm::Value* emit_cast(llvm::Value* x, DType from, DType to) {
    if (from == to) return x;
    llvm::Type* t = reg_type(to);
    if (is_floating(from)) {
      if (is_floating(to)) return b_.CreateFPCast(x, t);
      if (to == DType::Bool) return b_.CreateFCmpUNE(x, fconst(x->getType(), 0));
      const int bits = to == DType::Int32 ? 32 : 64;
      const double limit = std::ldexp(1.0, bits - 1);  // 2^31 or 2^63, exact in float and double
      // Every x in (min - 1, min) also truncates to min, so [-limit, limit) is the whole range
      // where the result is not min anyway.
      llvm::Value* in_range = b_.CreateAnd(b_.CreateFCmpOGE(x, fconst(x->getType(), -limit)),
                                           b_.CreateFCmpOLT(x, fconst(x->getType(), limit)));
      return b_.CreateSelect(in_range, b_.CreateFPToSI(x, t), lowest(to));
    }
    if (from == DType::Bool) return is_floating(to) ? b_.CreateUIToFP(x, t) : b_.CreateZExt(x, t);
    if (is_floating(to)) return b_.CreateSIToFP(x, t);  // one rounding, even Int64 -> Float32
    if (to == DType::Bool) return b_.CreateICmpNE(x, zero(x->getType()));
    return b_.CreateSExtOrTrunc(x, t);
  }

  // ---- reduction --------------------------------------------------------------------------------

  // The accumulator lives in allocas (SROA turns a single one into phis), which keeps the loop
  // nest simple: no phi has to be threaded through every reduced loop. `count` slots: one per
  // point of a tile in an outer-vectorized reduction, else one.
  void make_accumulators(int64_t count) {
    const bool arg = is_arg_reduce(k_.reduce);
    acc_type_ = reg_type(arg ? k_.exprs[k_.reduce_value].dtype : k_.reduce_dtype);
    acc_base_ = b_.CreateAlloca(acc_type_, i64c(count), arg ? "best" : "acc");
    if (arg) best_index_base_ = b_.CreateAlloca(i64_, i64c(count), "best_index");
    point_accumulators(i64c(0));
  }

  // Points the accumulator at slot `t`.
  void point_accumulators(llvm::Value* t) {
    const bool first =
        llvm::isa<llvm::ConstantInt>(t) && llvm::cast<llvm::ConstantInt>(t)->isZero();
    acc_ptr_ = first ? acc_base_ : b_.CreateInBoundsGEP(acc_type_, acc_base_, t);
    if (best_index_base_ != nullptr) {
      best_index_ptr_ = first ? best_index_base_ : b_.CreateInBoundsGEP(i64_, best_index_base_, t);
    }
  }

  // The value a reduction starts from (an argmax/argmin's best value starts as a max/min's).
  llvm::Constant* identity(ReduceOp op, DType t) const {
    switch (op) {
      case ReduceOp::kSum:
        return constant(t, 0, 0.0);
      case ReduceOp::kProd:
        return constant(t, 1, 1.0);
      case ReduceOp::kMax:
      case ReduceOp::kArgMax:
        return lowest(t);
      case ReduceOp::kMin:
      case ReduceOp::kArgMin:
        return highest(t);
      case ReduceOp::kNone:
        break;
    }
    return nullptr;
  }

  void init_accumulators() {
    const DType t = is_arg_reduce(k_.reduce) ? k_.exprs[k_.reduce_value].dtype : k_.reduce_dtype;
    if (k_.reduce == ReduceOp::kNone) return;
    b_.CreateStore(identity(k_.reduce, t), acc_ptr_);
    if (best_index_ptr_ != nullptr) b_.CreateStore(i64c(0), best_index_ptr_);
  }

  // acc combined with x by a sum, product, max or min of dtype t.
  llvm::Value* combine_values(ReduceOp op, DType t, llvm::Value* acc, llvm::Value* x) {
    const bool fp = is_floating(t), bl = t == DType::Bool;
    // reassoc lets the vectorizer keep one partial sum per lane (no nnan/ninf: NaN and inf
    // still propagate); contract lets it fuse a product into the sum.
    llvm::IRBuilder<>::FastMathFlagGuard guard(b_);
    llvm::FastMathFlags fmf;
    fmf.setAllowReassoc();
    fmf.setAllowContract();
    switch (op) {
      case ReduceOp::kSum:
        if (fp) b_.setFastMathFlags(fmf);
        return fp ? b_.CreateFAdd(acc, x) : bl ? b_.CreateOr(acc, x) : b_.CreateAdd(acc, x);
      case ReduceOp::kProd:
        if (fp) b_.setFastMathFlags(fmf);
        return fp ? b_.CreateFMul(acc, x) : bl ? b_.CreateAnd(acc, x) : b_.CreateMul(acc, x);
      case ReduceOp::kMax:
        return fp   ? b_.CreateMaximum(acc, x)  // NaN-propagating
               : bl ? b_.CreateOr(acc, x)
                    : b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, acc, x);
      case ReduceOp::kMin:
        return fp   ? b_.CreateMinimum(acc, x)
               : bl ? b_.CreateAnd(acc, x)
                    : b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, acc, x);
      default:
        return nullptr;  // argmax/argmin: combine_with
    }
  }

  void combine() {
    combine_with(vals_[k_.reduce_value], [&] { return reduced_position(); });
  }

  // Combines `x` into the accumulator; `position()` gives x's position within the reduced range
  // (argmax/argmin only).
  template <typename Position>
  void combine_with(llvm::Value* x, Position position) {
    llvm::Value* acc = b_.CreateLoad(acc_type_, acc_ptr_, "acc");
    const DType t = k_.exprs[k_.reduce_value].dtype;
    if (k_.reduce == ReduceOp::kNone) return;
    if (!is_arg_reduce(k_.reduce)) {
      b_.CreateStore(combine_values(k_.reduce, t, acc, x), acc_ptr_);
      return;
    }
    // x replaces the best so far when strictly better (ties keep the first); a NaN is better
    // than any number, and nothing is better than a NaN.
    const bool max = k_.reduce == ReduceOp::kArgMax;
    llvm::Value* better;
    if (is_floating(t)) {
      better = b_.CreateAnd(b_.CreateFCmpORD(acc, acc),
                            max ? b_.CreateFCmpUGT(x, acc) : b_.CreateFCmpULT(x, acc));
    } else if (t == DType::Bool) {
      better = max ? b_.CreateICmpUGT(x, acc) : b_.CreateICmpULT(x, acc);
    } else {
      better = max ? b_.CreateICmpSGT(x, acc) : b_.CreateICmpSLT(x, acc);
    }
    llvm::Value* best_index = b_.CreateLoad(i64_, best_index_ptr_, "best_index");
    b_.CreateStore(b_.CreateSelect(better, position(), best_index), best_index_ptr_);
    b_.CreateStore(b_.CreateSelect(better, x, acc), acc_ptr_);
  }

  // The row-major position of the current point within the reduced axes.
  llvm::Value* reduced_position() {
    const int rank = static_cast<int>(k_.domain.size());
    llvm::Value* pos = i64c(0);
    int64_t stride = 1;
    for (int a = rank - 1; a >= k_.num_outer; --a) {
      llvm::Value* term =
          stride == 1 ? loop_vars_[a] : b_.CreateMul(loop_vars_[a], i64c(stride), "", true, true);
      pos = a == rank - 1 ? term : b_.CreateAdd(pos, term, "", true, true);
      stride *= k_.domain[a];
    }
    return pos;
  }

  void emit_stores() {
    const size_t num_in = k_.inputs.size();
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      const KOutput& out = k_.outputs[o];
      llvm::Type* t = mem_type(out.dtype);
      llvm::Value* p = b_.CreateInBoundsGEP(t, ptrs_[num_in + o], vals_[out.index]);
      llvm::Value* x = vals_[out.value];
      if (out.dtype == DType::Bool) x = b_.CreateZExt(x, t);
      b_.CreateAlignedStore(x, p, llvm::Align(dtype_size(out.dtype)));
    }
  }

  const Kernel& k_;
  llvm::Module& m_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  llvm::Type* i64_;
  llvm::Function* fn_ = nullptr;
  std::vector<llvm::Value*> ptrs_;  // inputs, then outputs
  llvm::Value* begin_ = nullptr;
  llvm::Value* end_ = nullptr;
  const int flat_;                  // parallel_axes(k_)
  const int64_t parts_;             // split_parts(k_)
  llvm::Value* scratch_ = nullptr;  // a split reduction's scratch block
  Placement placement_;
  std::vector<llvm::Value*> vals_;
  std::vector<llvm::Value*> loop_vars_;
  llvm::Type* acc_type_ = nullptr;          // the accumulator's (argmax/argmin: the value's)
  llvm::Value* acc_base_ = nullptr;         // its slots (argmax/argmin: the best value)
  llvm::Value* best_index_base_ = nullptr;  // argmax/argmin: the best value's position
  llvm::Value* acc_ptr_ = nullptr;          // the slot of the output being computed
  llvm::Value* best_index_ptr_ = nullptr;
  std::vector<llvm::Type*> stage_types_;  // row kernels: each stage's accumulator
  std::vector<llvm::Value*> stage_ptrs_;
  std::vector<llvm::Value*> stage_nan_ptrs_;  // float max/min stages: a NaN was seen
  int reuse_ = -1;                            // reused_output(k_)
  // Row kernels: the loads whose next rows the last sweep prefetches (find_prefetch_targets).
  struct PrefetchTarget {
    int32_t index;       // the load's index expression
    int32_t slot;        // its input
    DType dtype;         // the element type
    int64_t row_stride;  // elements between neighbouring points of the innermost outer axis
    friend bool operator==(const PrefetchTarget&, const PrefetchTarget&) = default;
  };
  std::vector<PrefetchTarget> prefetch_targets_;
};

// Sets the host's triple and data layout, which the JIT requires of every module it adds.
absl::Status set_host_target(llvm::Module& m) {
  absl::StatusOr<llvm::TargetMachine*> tm = runtime::host_target_machine();
  if (!tm.ok()) return tm.status();
  m.setTargetTriple((*tm)->getTargetTriple().str());
  m.setDataLayout((*tm)->createDataLayout());
  return absl::OkStatus();
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------

int parallel_axes(const Kernel& k) {
  const int no = k.num_outer;
  if (no == 0 || split_parts(k) > 1) return 0;
  bool reduced_empty = false;
  for (size_t a = no; a < k.domain.size(); ++a) reduced_empty = reduced_empty || k.domain[a] == 0;
  // An outer-vectorized reduction tiles its last outer axis: only the axes before it flatten.
  int limit = no;
  if (!reduced_empty && outer_vectorized(k, place(k, reduced_empty))) limit = std::max(1, no - 1);
  int m = 1;
  int64_t points = k.domain[0];
  while (m < limit && points < kMinParallelPoints) points *= k.domain[m++];
  return m;
}

int64_t parallel_extent(const Kernel& k) {
  const int64_t parts = split_parts(k);
  if (parts > 1) return outer_points(k) * parts;
  const int m = parallel_axes(k);
  if (m == 0) return 1;
  int64_t points = 1;
  for (int a = 0; a < m; ++a) points *= k.domain[a];
  return points;
}

int64_t parallel_grain(const Kernel& k) {
  const int m = parallel_axes(k);
  if (m == 0 || split_parts(k) > 1) return 1;
  int64_t inner = 1;
  for (size_t a = m; a < k.domain.size(); ++a) inner *= std::max<int64_t>(k.domain[a], 1);
  return std::max<int64_t>(1, kMinChunkPoints / inner);
}

int64_t kernel_scratch_bytes(const Kernel& k) {
  const int64_t parts = split_parts(k);
  if (parts <= 1) return 0;
  return scratch_header(k) + 8 * outer_points(k) * parts * (is_arg_reduce(k.reduce) ? 2 : 1);
}

std::string kernel_symbol(const Kernel& k) {
  auto digest = llvm::BLAKE3::hash<16>(llvm::arrayRefFromStringRef(kernel_bytes(k)));
  return absl::StrCat("smelt_", llvm::toHex(digest, /*LowerCase=*/true));
}

absl::Status check_kernel(const Kernel& k) {
  auto bad = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("kernel ", k.name, ": ", parts...));
  };
  const int rank = static_cast<int>(k.domain.size());
  if (k.num_outer < 0 || k.num_outer > rank) {
    return bad("num_outer ", k.num_outer, " is not within 0..", rank, " (the domain's rank)");
  }
  for (int a = 0; a < rank; ++a) {
    if (k.domain[a] < 0) return bad("domain axis ", a, " has negative extent ", k.domain[a]);
  }
  const bool reduce = k.reduce != ReduceOp::kNone;
  const bool staged = !k.stages.empty();
  if (!reduce && !staged && k.num_outer != rank) {
    return bad("a kernel without a reduction must have num_outer == rank (", k.num_outer, " vs ",
               rank, ")");
  }
  if (staged && k.num_outer == rank) return bad("a row kernel needs reduced axes");
  const int32_t n = static_cast<int32_t>(k.exprs.size());
  // The latest stage each expression reads (-1: none), to check that stages read only earlier ones.
  std::vector<int> last_stage(n, -1);
  for (int32_t i = 0; i < n; ++i) {
    const KExpr& e = k.exprs[i];
    if (e.kind == KOp::kStage) last_stage[i] = static_cast<int>(e.value_int);
    for (int32_t op : {e.a, e.b, e.c}) {
      if (op >= 0 && op < i) last_stage[i] = std::max(last_stage[i], last_stage[op]);
    }
  }
  for (size_t st = 0; st < k.stages.size(); ++st) {
    const KStage& stage = k.stages[st];
    if (stage.op == ReduceOp::kNone || is_arg_reduce(stage.op)) {
      return bad("stage ", st, " must be a sum, prod, max or min");
    }
    if (stage.value < 0 || stage.value >= n) return bad("stage ", st, " reduces no expression");
    if (k.exprs[stage.value].dtype != stage.dtype) {
      return bad("stage ", st, " is ", dtype_name(stage.dtype), " but reduces e", stage.value,
                 " of dtype ", dtype_name(k.exprs[stage.value].dtype));
    }
    if (last_stage[stage.value] >= static_cast<int>(st)) {
      return bad("stage ", st, " reads stage ", last_stage[stage.value], ", which is not earlier");
    }
  }
  if (reduce) {
    if (k.reduce_value < 0 || k.reduce_value >= n) {
      return bad("reduce_value e", k.reduce_value, " is not an expression");
    }
    const DType v = k.exprs[k.reduce_value].dtype;
    if (is_arg_reduce(k.reduce) ? k.reduce_dtype != DType::Int64 : k.reduce_dtype != v) {
      return bad("the accumulator dtype ", dtype_name(k.reduce_dtype), " does not fit a ",
                 is_arg_reduce(k.reduce) ? "argmax/argmin (needs i64)" : "reduction of",
                 is_arg_reduce(k.reduce) ? "" : absl::StrCat(" ", dtype_name(v), " values"));
    }
  }
  for (int32_t i = 0; i < n; ++i) {
    const KExpr& e = k.exprs[i];
    auto ebad = [&](auto&&... parts) { return bad("e", i, ": ", parts...); };
    auto operand = [&](int32_t x, const char* which) -> absl::Status {
      if (x < 0 || x >= i) {
        return ebad("operand ", which, " (e", x, ") is not an earlier expression");
      }
      return absl::OkStatus();
    };
    auto need = [&](int32_t x, DType t, const char* which) -> absl::Status {
      if (absl::Status s = operand(x, which); !s.ok()) return s;
      if (k.exprs[x].dtype != t) {
        return ebad("operand ", which, " (e", x, ") is ", dtype_name(k.exprs[x].dtype), ", not ",
                    dtype_name(t));
      }
      return absl::OkStatus();
    };
    auto own = [&](DType t) -> absl::Status {
      if (e.dtype != t) return ebad("has dtype ", dtype_name(e.dtype), ", not ", dtype_name(t));
      return absl::OkStatus();
    };
    absl::Status s;
    switch (e.kind) {
      case KOp::kLoopVar:
        if (e.value_int < 0 || e.value_int >= rank)
          return ebad("loop variable of no axis ", e.value_int);
        s = own(DType::Int64);
        break;
      case KOp::kIConst:
        s = own(DType::Int64);
        break;
      case KOp::kIAdd:
      case KOp::kIMul:
      case KOp::kIDiv:
      case KOp::kIMod:
        s = own(DType::Int64);
        if (s.ok()) s = need(e.a, DType::Int64, "a");
        if (s.ok()) s = need(e.b, DType::Int64, "b");
        if (s.ok() && (e.kind == KOp::kIDiv || e.kind == KOp::kIMod) &&
            k.exprs[e.b].kind == KOp::kIConst && k.exprs[e.b].value_int <= 0) {
          return ebad("divides by ", k.exprs[e.b].value_int);
        }
        break;
      case KOp::kILt:
        s = own(DType::Bool);
        if (s.ok()) s = need(e.a, DType::Int64, "a");
        if (s.ok()) s = need(e.b, DType::Int64, "b");
        break;
      case KOp::kAnd:
        s = own(DType::Bool);
        if (s.ok()) s = need(e.a, DType::Bool, "a");
        if (s.ok()) s = need(e.b, DType::Bool, "b");
        break;
      case KOp::kLoad:
        if (e.slot < 0 || e.slot >= static_cast<int32_t>(k.inputs.size())) {
          return ebad("loads input slot ", e.slot, " of ", k.inputs.size());
        }
        s = own(k.inputs[e.slot].dtype);
        if (s.ok()) s = need(e.a, DType::Int64, "index");
        break;
      case KOp::kConst:
        break;
      case KOp::kAcc:
        if (!reduce) return ebad("reads the accumulator of a kernel without a reduction");
        s = own(k.reduce_dtype);
        break;
      case KOp::kStage:
        if (e.value_int < 0 || e.value_int >= static_cast<int64_t>(k.stages.size())) {
          return ebad("reads stage ", e.value_int, " of ", k.stages.size());
        }
        s = own(k.stages[e.value_int].dtype);
        break;
      case KOp::kSelect:
        s = need(e.a, DType::Bool, "condition");
        if (s.ok()) s = need(e.b, e.dtype, "b");
        if (s.ok()) s = need(e.c, e.dtype, "c");
        break;
      case KOp::kApply: {
        std::optional<ApplyRule> rule = apply_rule(e.op);
        if (!rule) return ebad(ir::op_name(e.op), " is not an elementwise op");
        const int32_t ops[] = {e.a, e.b, e.c};
        const char* names[] = {"a", "b", "c"};
        for (int j = 0; j < 3; ++j) {
          if (j < rule->arity) {
            if (s = operand(ops[j], names[j]); !s.ok()) return s;
          } else if (ops[j] >= 0) {
            return ebad(ir::op_name(e.op), " takes ", rule->arity, " operands");
          }
        }
        const int32_t first = rule->result == Result::kWhere ? e.b : e.a;
        if (rule->result == Result::kWhere && k.exprs[e.a].dtype != DType::Bool) {
          return ebad("where: condition is ", dtype_name(k.exprs[e.a].dtype), ", not bool");
        }
        const DType t = k.exprs[first].dtype;
        for (int j = rule->result == Result::kWhere ? 2 : 1; j < rule->arity; ++j) {
          if (k.exprs[ops[j]].dtype != t) {
            return ebad(ir::op_name(e.op), ": operand dtypes ", dtype_name(t), " and ",
                        dtype_name(k.exprs[ops[j]].dtype), " differ");
          }
        }
        if (!accepts(rule->accepts, t)) {
          return ebad(ir::op_name(e.op), " has no rule for ", dtype_name(t), " operands");
        }
        if (rule->result == Result::kBool) {
          s = own(DType::Bool);
        } else if (rule->result != Result::kCastTarget) {
          s = own(t);
        }
        break;
      }
      default:
        return ebad("unknown expression kind ", static_cast<int>(e.kind));
    }
    if (!s.ok()) return s;
  }
  for (size_t p = 0; p < k.in_place.size(); ++p) {
    const auto [slot, o] = k.in_place[p];
    if (!can_compute_in_place(k, slot, o)) {
      return bad("out", o, " cannot be computed in place of in", slot);
    }
    for (size_t q = 0; q < p; ++q) {
      if (k.in_place[q].first == slot || k.in_place[q].second == o) {
        return bad("in", slot, " or out", o, " is in two in-place pairs");
      }
    }
  }
  for (size_t o = 0; o < k.outputs.size(); ++o) {
    const KOutput& out = k.outputs[o];
    if (out.value < 0 || out.value >= n || out.index < 0 || out.index >= n) {
      return bad("out", o, " refers to no expression");
    }
    if (k.exprs[out.value].dtype != out.dtype) {
      return bad("out", o, " is ", dtype_name(out.dtype), " but stores e", out.value, " of dtype ",
                 dtype_name(k.exprs[out.value].dtype));
    }
    if (k.exprs[out.index].dtype != DType::Int64) return bad("out", o, ": index is not i64");
  }
  const Placement p = place(k, /*reduced_empty=*/false);
  if (reduce && p.uses_acc[k.reduce_value]) {
    return bad("the reduced value e", k.reduce_value, " reads the accumulator");
  }
  for (size_t st = 0; st < k.stages.size(); ++st) {
    if (p.uses_acc[k.stages[st].value]) return bad("stage ", st, " reads the accumulator");
  }
  const int after_reduction = 2 * k.num_outer + 1;
  for (size_t o = 0; o < k.outputs.size() && reduce; ++o) {
    for (int32_t x : {k.outputs[o].value, k.outputs[o].index}) {
      if (p.level[x] > after_reduction) {
        return bad("out", o, " uses e", x, ", which depends on a reduced loop variable");
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// A module with the functions of `kernels` (already checked), in their order.
absl::StatusOr<runtime::JitModulePtr> build_module(const std::string& name,
                                                   absl::Span<const Kernel* const> kernels,
                                                   absl::Span<const std::string> symbols) {
  runtime::JitModulePtr jm = runtime::make_jit_module(name);
  if (absl::Status s = set_host_target(*jm->module); !s.ok()) return s;
  for (size_t i = 0; i < kernels.size(); ++i) {
    KernelEmitter(*kernels[i], *jm->module).emit(symbols[i]);
  }
  return jm;
}

}  // namespace

absl::StatusOr<std::vector<runtime::KernelFn>> jit_kernels(absl::Span<const Kernel* const> kernels,
                                                           runtime::CpuJit& jit) {
  if (kernels.empty()) return std::vector<runtime::KernelFn>{};
  std::vector<std::string> symbol_of(kernels.size());
  std::vector<std::pair<std::string, const Kernel*>> unique;  // by symbol
  for (size_t i = 0; i < kernels.size(); ++i) {
    if (absl::Status s = check_kernel(*kernels[i]); !s.ok()) return s;
    symbol_of[i] = kernel_symbol(*kernels[i]);
    unique.emplace_back(symbol_of[i], kernels[i]);
  }
  // Sorted and deduplicated, so the same set of kernels is the same module in any order.
  std::sort(unique.begin(), unique.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  unique.erase(std::unique(unique.begin(), unique.end(),
                           [](const auto& x, const auto& y) { return x.first == y.first; }),
               unique.end());
  std::vector<std::string> symbols;
  std::vector<const Kernel*> module_kernels;
  for (const auto& [symbol, kernel] : unique) {
    symbols.push_back(symbol);
    module_kernels.push_back(kernel);
  }
  const std::string key =
      absl::StrCat("smelt-cpu-kernels v", kCpuCodegenVersion, ": ", absl::StrJoin(symbols, " "));
  absl::StatusOr<std::vector<void*>> addrs = jit.compile(key, symbols, [&] {
    return build_module(symbols.size() == 1 ? symbols[0] : "smelt_kernels", module_kernels,
                        symbols);
  });
  if (!addrs.ok()) return addrs.status();
  std::vector<runtime::KernelFn> fns(kernels.size());
  for (size_t i = 0; i < kernels.size(); ++i) {
    const size_t u =
        std::lower_bound(symbols.begin(), symbols.end(), symbol_of[i]) - symbols.begin();
    fns[i] = reinterpret_cast<runtime::KernelFn>((*addrs)[u]);
  }
  return fns;
}

absl::StatusOr<runtime::KernelFn> jit_kernel(const Kernel& k, runtime::CpuJit& jit) {
  const Kernel* one[] = {&k};
  absl::StatusOr<std::vector<runtime::KernelFn>> fns = jit_kernels(one, jit);
  if (!fns.ok()) return fns.status();
  return (*fns)[0];
}

std::string emit_llvm_text(const Kernel& k, bool optimized) {
  std::string text;
  for (absl::string_view line : absl::StrSplit(k.to_string(), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&text, "; ", line, "\n");
  }
  if (absl::Status s = check_kernel(k); !s.ok()) {
    return absl::StrCat(text, "; error: ", s.message(), "\n");
  }
  const std::string symbol = kernel_symbol(k);
  const Kernel* one[] = {&k};
  absl::StatusOr<runtime::JitModulePtr> jm = build_module(symbol, one, {symbol});
  if (!jm.ok()) return absl::StrCat(text, "; error: ", jm.status().message(), "\n");
  llvm::Module& m = *(*jm)->module;
  if (optimized) {
    absl::StatusOr<llvm::TargetMachine*> tm = runtime::host_target_machine();
    if (!tm.ok()) return absl::StrCat(text, "; error: ", tm.status().message(), "\n");
    runtime::optimize_module(m, **tm);
  }
  llvm::raw_string_ostream os(text);
  m.print(os, nullptr);
  return os.str();
}

}  // namespace smelt::compiler
