// Every elementwise IR op, on every dtype it accepts, compiled by the LLVM code generator and
// compared with the reference evaluator (ir/ops/elementwise.cpp) element by element: bit for bit
// (NaN matches NaN, and the sign of zero counts) for all but the transcendental functions, which
// are approximations and must be within a few ULPs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "tests/codegen/codegen_testing.h"

namespace smelt::compiler {
namespace {

using ir::OpCode;
using ir::RefTensor;
using testing::ref;
using testing::ref_int;
using testing::run_kernel;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Values that find the edges: signed zeros, the integer ranges' borders (for casts), huge,
// denormal (in float) and special values.
std::vector<double> float_values() {
  return {0.0,   -0.0,   1.0,          -1.0,         0.5,           -2.5,          3.75,   1e10,
          -1e10, 7.0,    2147483647.0, 2147483648.0, -2147483648.0, -2147483649.0, 9.3e18, -9.3e18,
          1e-40, 3.4e38, 1e300,        kInf,         -kInf,         kNaN,          -0.75,  100.5};
}
// Moderate arguments for the transcendental functions, plus their special values.
std::vector<double> math_values() {
  return {0.0,    -0.0,  1.0,   -1.0, 0.5,   -2.5, 3.75,    10.0, -10.0, 20.0, 88.0,
          -100.0, 700.0, 1e-40, 1e-8, -1e-8, 0.1,  123.456, kInf, -kInf, kNaN};
}
std::vector<int64_t> int_values(DType t) {
  std::vector<int64_t> v = {0, 1, -1, 2, -7, 100, 12345, -99999, 2147483647, -2147483647 - 1};
  if (t == DType::Int64) {
    v.push_back(std::numeric_limits<int64_t>::max());
    v.push_back(std::numeric_limits<int64_t>::min());
    v.push_back(int64_t{1} << 40);
    v.push_back(-(int64_t{1} << 40) + 3);
  }
  return v;
}

RefTensor values_of(DType t, bool math = false) {
  if (is_floating(t)) return ref(t, math ? math_values() : float_values());
  if (t == DType::Bool) return ref_int(t, {0, 1});
  return ref_int(t, int_values(t));
}

// `t` repeated, then its first element once more: odd lengths exercise the vector remainder.
RefTensor repeat(const RefTensor& t, int times) {
  RefTensor r = RefTensor::zeros(t.dtype, {t.numel() * times + 1});
  for (int64_t k = 0; k < r.numel(); ++k) {
    const int64_t src = k % t.numel();
    if (t.floating())
      r.f[k] = t.f[src];
    else
      r.i[k] = t.i[src];
  }
  return r;
}

// Every (a, b) pair of elements of `t`, plus one: two operand tensors.
std::pair<RefTensor, RefTensor> all_pairs(const RefTensor& t) {
  const int64_t m = t.numel();
  RefTensor a = RefTensor::zeros(t.dtype, {m * m + 1}), b = a;
  for (int64_t k = 0; k < m * m + 1; ++k) {
    const int64_t x = (k / m) % m, y = k % m;
    if (t.floating()) {
      a.f[k] = t.f[x];
      b.f[k] = t.f[y];
    } else {
      a.i[k] = t.i[x];
      b.i[k] = t.i[y];
    }
  }
  return {a, b};
}

// out[i] = op(in0[i], ...) over a 1-d domain.
Kernel map_kernel(OpCode op, DType out, const std::vector<DType>& ins, int64_t n) {
  Kernel k;
  k.name = absl::StrCat("map_", ir::op_name(op));
  k.domain = {n};
  k.num_outer = 1;
  for (DType t : ins) k.inputs.push_back({t, n});
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);
  std::vector<int32_t> x;
  for (size_t s = 0; s < ins.size(); ++s) x.push_back(b.load(static_cast<int32_t>(s), i));
  x.resize(3, -1);
  const int32_t r = b.apply(op, out, x[0], x[1], x[2]);
  k.outputs.push_back({out, r, i, n});
  return k;
}

RefTensor reference(OpCode op, DType out, const std::vector<const RefTensor*>& in,
                    const ir::Attrs& attrs = {}) {
  absl::StatusOr<RefTensor> r = ir::op_def(op).ref_eval(in, attrs, ir::TypeInfo{out, in[0]->shape});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : RefTensor::zeros(out, in[0]->shape);
}

// Distance in units in the last place of `t` (0 for equal values, NaN pairs and equal infs).
double ulps(double a, double b, DType t) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : kInf;
  if (a == b) return 0;
  if (std::isinf(a) || std::isinf(b)) return kInf;
  auto ordered = [&](double v) -> int64_t {
    if (t == DType::Float32) {
      int32_t i = std::bit_cast<int32_t>(static_cast<float>(v));
      return i < 0 ? std::numeric_limits<int32_t>::min() - int64_t{i} : i;
    }
    int64_t i = std::bit_cast<int64_t>(v);
    return i < 0 ? std::numeric_limits<int64_t>::min() - i : i;
  };
  return std::fabs(static_cast<double>(ordered(a)) - static_cast<double>(ordered(b)));
}

bool is_math(OpCode op) {
  return op == OpCode::Exp || op == OpCode::Log || op == OpCode::Tanh || op == OpCode::Sigmoid ||
         op == OpCode::Sin || op == OpCode::Cos || op == OpCode::Pow;
}

// Compiled vs reference: exact (and the sign of zero) unless `op` is transcendental.
void expect_matches(OpCode op, const RefTensor& got, const RefTensor& want,
                    const std::vector<const RefTensor*>& in, const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel());
  int failures = 0;
  for (int64_t k = 0; k < got.numel() && failures < 8; ++k) {
    bool ok;
    if (!got.floating()) {
      ok = got.i[k] == want.i[k];
    } else if (is_math(op)) {
      ok = ulps(got.f[k], want.f[k], got.dtype) <= 4;
    } else {
      ok = (std::isnan(got.f[k]) && std::isnan(want.f[k])) ||
           (got.f[k] == want.f[k] && std::signbit(got.f[k]) == std::signbit(want.f[k]));
    }
    if (!ok) {
      ++failures;
      std::string args;
      for (const RefTensor* t : in) {
        absl::StrAppend(&args, args.empty() ? "" : ", ",
                        t->floating() ? absl::StrCat(t->f[k]) : absl::StrCat(t->i[k]));
      }
      ADD_FAILURE() << what << "(" << args << "): got "
                    << (got.floating() ? absl::StrCat(got.f[k]) : absl::StrCat(got.i[k]))
                    << ", reference "
                    << (want.floating() ? absl::StrCat(want.f[k]) : absl::StrCat(want.i[k]));
    }
  }
}

struct OpCase {
  OpCode op;
  std::vector<DType> dtypes;  // operand dtypes it accepts
  bool bool_result = false;
};

const std::vector<DType> kAll = {DType::Bool, DType::Int32, DType::Int64, DType::Float32,
                                 DType::Float64};
const std::vector<DType> kNumeric = {DType::Int32, DType::Int64, DType::Float32, DType::Float64};
const std::vector<DType> kFloat = {DType::Float32, DType::Float64};

TEST(ElementwiseOps, Unary) {
  const std::vector<OpCase> cases = {
      {OpCode::Neg, kNumeric},
      {OpCode::Abs, kNumeric},
      {OpCode::Sign, kNumeric},
      {OpCode::Relu, kNumeric},
      {OpCode::Exp, kFloat},
      {OpCode::Log, kFloat},
      {OpCode::Sqrt, kFloat},
      {OpCode::Rsqrt, kFloat},
      {OpCode::Tanh, kFloat},
      {OpCode::Sigmoid, kFloat},
      {OpCode::Sin, kFloat},
      {OpCode::Cos, kFloat},
      {OpCode::Floor, kFloat},
      {OpCode::Ceil, kFloat},
      {OpCode::Round, kFloat},
      {OpCode::Trunc, kFloat},
      {OpCode::LogicalNot, {DType::Bool}},
      {OpCode::Copy, kAll},
  };
  for (const OpCase& c : cases) {
    for (DType t : c.dtypes) {
      const RefTensor x = repeat(values_of(t, is_math(c.op)), 3);
      const Kernel k = map_kernel(c.op, t, {t}, x.numel());
      std::vector<testing::HostBuffer> out = run_kernel(k, {x});
      expect_matches(c.op, out[0].to_ref(), reference(c.op, t, {&x}), {&x},
                     absl::StrCat(ir::op_name(c.op), ":", dtype_name(t)));
    }
  }
}

TEST(ElementwiseOps, Binary) {
  const std::vector<OpCase> cases = {
      {OpCode::Add, kAll},
      {OpCode::Sub, kNumeric},
      {OpCode::Mul, kAll},
      {OpCode::Div, kFloat},
      {OpCode::Pow, kFloat},
      {OpCode::Maximum, kAll},
      {OpCode::Minimum, kAll},
      {OpCode::Eq, kAll, true},
      {OpCode::Ne, kAll, true},
      {OpCode::Lt, kAll, true},
      {OpCode::Le, kAll, true},
      {OpCode::Gt, kAll, true},
      {OpCode::Ge, kAll, true},
      {OpCode::LogicalAnd, {DType::Bool}, true},
      {OpCode::LogicalOr, {DType::Bool}, true},
  };
  for (const OpCase& c : cases) {
    for (DType t : c.dtypes) {
      auto [a, b] = all_pairs(values_of(t, is_math(c.op)));
      const DType out = c.bool_result ? DType::Bool : t;
      const Kernel k = map_kernel(c.op, out, {t, t}, a.numel());
      std::vector<testing::HostBuffer> got = run_kernel(k, {a, b});
      expect_matches(c.op, got[0].to_ref(), reference(c.op, out, {&a, &b}), {&a, &b},
                     absl::StrCat(ir::op_name(c.op), ":", dtype_name(t)));
    }
  }
}

TEST(ElementwiseOps, Where) {
  for (DType t : kAll) {
    auto [a, b] = all_pairs(values_of(t));
    RefTensor cond = RefTensor::zeros(DType::Bool, a.shape);
    for (int64_t k = 0; k < cond.numel(); ++k) cond.i[k] = (k * 7 / 3) % 2;
    const Kernel k = map_kernel(OpCode::Where, t, {DType::Bool, t, t}, a.numel());
    std::vector<testing::HostBuffer> got = run_kernel(k, {cond, a, b});
    expect_matches(OpCode::Where, got[0].to_ref(), reference(OpCode::Where, t, {&cond, &a, &b}),
                   {&cond, &a, &b}, absl::StrCat("where:", dtype_name(t)));
  }
}

TEST(ElementwiseOps, CastEveryPair) {
  for (DType from : kAll) {
    // Floats get the range borders; integers their extremes; and both some ordinary values.
    const RefTensor x = repeat(values_of(from), 2);
    for (DType to : kAll) {
      Kernel k = map_kernel(OpCode::Cast, to, {from}, x.numel());
      ir::Attrs attrs{{"dtype", to}};
      std::vector<testing::HostBuffer> got = run_kernel(k, {x});
      expect_matches(OpCode::Cast, got[0].to_ref(), reference(OpCode::Cast, to, {&x}, attrs), {&x},
                     absl::StrCat("cast ", dtype_name(from), "->", dtype_name(to)));
    }
  }
}

// A chain of ops in one kernel, with a constant operand of each dtype.
TEST(ElementwiseOps, FusedChainWithConstants) {
  const int64_t n = 1001;
  Kernel k;
  k.name = "chain";
  k.domain = {n};
  k.num_outer = 1;
  k.inputs = {{DType::Float32, n}, {DType::Int32, n}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);
  const int32_t x = b.load(0, i), m = b.load(1, i);
  // y = relu(x * 2.5 - 1) + float(m * 3); z = y > 4 ? y : -y
  const int32_t y = b.apply(
      OpCode::Add, DType::Float32,
      b.apply(OpCode::Relu, DType::Float32,
              b.apply(OpCode::Sub, DType::Float32,
                      b.apply(OpCode::Mul, DType::Float32, x, b.constant(DType::Float32, 2.5)),
                      b.constant(DType::Float32, 1))),
      b.apply(OpCode::Cast, DType::Float32,
              b.apply(OpCode::Mul, DType::Int32, m, b.constant(DType::Int32, 3))));
  const int32_t z = b.select(b.apply(OpCode::Gt, DType::Bool, y, b.constant(DType::Float32, 4)), y,
                             b.apply(OpCode::Neg, DType::Float32, y));
  k.outputs = {{DType::Float32, z, i, n}};
  std::vector<float> xs(n);
  std::vector<int32_t> ms(n);
  RefTensor rx = RefTensor::zeros(DType::Float32, {n}), rm = RefTensor::zeros(DType::Int32, {n});
  for (int64_t j = 0; j < n; ++j) {
    xs[j] = static_cast<float>(j % 17) * 0.37f - 2.0f;
    ms[j] = static_cast<int32_t>(j % 5) - 2;
    rx.f[j] = xs[j];
    rm.i[j] = ms[j];
  }
  std::vector<testing::HostBuffer> got = run_kernel(k, {rx, rm});
  const RefTensor out = got[0].to_ref();
  for (int64_t j = 0; j < n; ++j) {
    float v = xs[j] * 2.5f - 1.0f;
    v = (v > 0 ? v : 0.0f) + static_cast<float>(ms[j] * 3);
    const float want = v > 4 ? v : -v;
    ASSERT_EQ(static_cast<float>(out.f[j]), want) << "at " << j;
  }
}

}  // namespace
}  // namespace smelt::compiler
