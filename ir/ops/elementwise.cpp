// Elementwise ops: unary math, cast/copy, binary arithmetic, comparisons, logic and where.
//
// The IR is explicit: every operand of a binary or ternary op has the same shape and (except
// where's condition) the same dtype; the frontend inserts expand and cast to broadcast and
// promote. Each op's meaning is one small struct: `f` on doubles (floating dtypes) and `i` on
// int64 (integral dtypes and Bool as 0/1). Integer arithmetic wraps like two's-complement
// hardware: it is computed in uint64 (no signed-overflow UB) and stored with RefTensor::set_int,
// which wraps Int32 and clamps Bool to 0/1 (so Bool add/maximum is "or", mul/minimum is "and").
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

// Which operand dtypes an op accepts.
enum class Accepts : uint8_t {
  kAny,       // every dtype
  kNumeric,   // every dtype but Bool
  kFloating,  // Float32, Float64
  kBool,      // Bool only
};

absl::Status check_accepts(OpCode op, Accepts accepts, DType dtype) {
  switch (accepts) {
    case Accepts::kAny:
      return absl::OkStatus();
    case Accepts::kNumeric:
      if (dtype != DType::Bool) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(op_name(op), ": needs a numeric (non-bool) dtype, got bool"));
    case Accepts::kFloating:
      if (is_floating(dtype)) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(op_name(op), ": needs a floating dtype, got ", dtype_name(dtype)));
    case Accepts::kBool:
      if (dtype == DType::Bool) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(op_name(op), ": needs bool operands, got ", dtype_name(dtype)));
  }
  return absl::OkStatus();
}

// Operands `first..` must all have the type of `inputs[first]`.
absl::Status check_same_types(OpCode op, absl::Span<const TypeInfo> inputs, size_t first) {
  const TypeInfo& t = inputs[first];
  for (size_t k = first + 1; k < inputs.size(); ++k) {
    if (inputs[k].shape != t.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(op_name(op), ": operand shapes ", shape_str(t.shape), " and ",
                       shape_str(inputs[k].shape), " differ (the IR needs explicit expand)"));
    }
    if (inputs[k].dtype != t.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat(op_name(op), ": operand dtypes ", dtype_name(t.dtype), " and ",
                       dtype_name(inputs[k].dtype), " differ (the IR needs explicit cast)"));
    }
  }
  return absl::OkStatus();
}

// Type rule of unary and binary ops: operands of one type that `kAccepts` allows; the result has
// their shape, and their dtype or Bool.
template <OpCode kOp, Accepts kAccepts, bool kBoolResult>
absl::StatusOr<TypeInfo> infer_elementwise(absl::Span<const TypeInfo> inputs, const Attrs&) {
  if (absl::Status s = check_same_types(kOp, inputs, 0); !s.ok()) return s;
  if (absl::Status s = check_accepts(kOp, kAccepts, inputs[0].dtype); !s.ok()) return s;
  return TypeInfo{kBoolResult ? DType::Bool : inputs[0].dtype, inputs[0].shape};
}

// Whether an op's struct defines `f` (floating operands) and `i` (integral and Bool operands).
template <class Fn>
constexpr bool kHasFloatRule = requires {
  &Fn::f;
};
template <class Fn>
constexpr bool kHasIntegerRule = requires {
  &Fn::i;
};

// The type rule admits only dtypes the op has a rule for; reaching this is a registry bug.
absl::Status no_rule(const RefTensor& x) {
  return absl::InternalError(
      absl::StrCat("elementwise op has no rule for ", dtype_name(x.dtype), " operands"));
}

// Applies Fn to every element: Fn::f on floating operands, Fn::i on integral and Bool ones.
template <class Fn>
absl::StatusOr<RefTensor> ref_unary(absl::Span<const RefTensor* const> in, const Attrs&,
                                    const TypeInfo& out) {
  const RefTensor& x = *in[0];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  const int64_t n = r.numel();
  if (x.floating()) {
    if constexpr (kHasFloatRule<Fn>) {
      for (int64_t k = 0; k < n; ++k) r.set(k, Fn::f(x.f[k]));
    } else {
      return no_rule(x);
    }
  } else {
    if constexpr (kHasIntegerRule<Fn>) {
      for (int64_t k = 0; k < n; ++k) r.set_int(k, Fn::i(x.i[k]));
    } else {
      return no_rule(x);
    }
  }
  return r;
}

template <class Fn>
absl::StatusOr<RefTensor> ref_binary(absl::Span<const RefTensor* const> in, const Attrs&,
                                     const TypeInfo& out) {
  const RefTensor& a = *in[0];
  const RefTensor& b = *in[1];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  const int64_t n = r.numel();
  if (a.floating()) {
    if constexpr (kHasFloatRule<Fn>) {
      for (int64_t k = 0; k < n; ++k) r.set(k, Fn::f(a.f[k], b.f[k]));
    } else {
      return no_rule(a);
    }
  } else {
    if constexpr (kHasIntegerRule<Fn>) {
      for (int64_t k = 0; k < n; ++k) r.set_int(k, Fn::i(a.i[k], b.i[k]));
    } else {
      return no_rule(a);
    }
  }
  return r;
}

template <OpCode kOp, Accepts kAccepts, class Fn>
void def_unary(OpRegistrar& r, OpTraits traits, VjpFn vjp = nullptr) {
  OpDef& d = r.def(kOp);
  d.vjp = vjp;
  d.min_inputs = d.max_inputs = 1;
  d.infer = &infer_elementwise<kOp, kAccepts, false>;
  d.ref_eval = &ref_unary<Fn>;
  d.traits = traits;
}

template <OpCode kOp, Accepts kAccepts, class Fn, bool kBoolResult = false>
void def_binary(OpRegistrar& r, OpTraits traits, VjpFn vjp = nullptr) {
  OpDef& d = r.def(kOp);
  d.vjp = vjp;
  d.min_inputs = d.max_inputs = 2;
  d.infer = &infer_elementwise<kOp, kAccepts, kBoolResult>;
  d.ref_eval = &ref_binary<Fn>;
  d.traits = traits;
}

// Wrapping int64 arithmetic (two's complement), without signed-overflow UB.
int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

// ---- unary ------------------------------------------------------------------------------------

// -x; -INT64_MIN wraps to itself.
struct Neg {
  static double f(double x) { return -x; }
  static int64_t i(int64_t x) { return wrap_sub(0, x); }
};
// |x|; |INT64_MIN| wraps to itself, as in PyTorch.
struct Abs {
  static double f(double x) { return std::fabs(x); }
  static int64_t i(int64_t x) { return x < 0 ? wrap_sub(0, x) : x; }
};
// -1, 0 or 1. sign(NaN) is 0, as PyTorch computes it ((0 < x) - (x < 0)).
struct Sign {
  static double f(double x) { return (0 < x) - (x < 0); }
  static int64_t i(int64_t x) { return (0 < x) - (x < 0); }
};
struct Exp {
  static double f(double x) { return std::exp(x); }
};
struct Floor {
  static double f(double x) { return std::floor(x); }
};
struct Ceil {
  static double f(double x) { return std::ceil(x); }
};
// Halves go to the even neighbour (2.5 -> 2, -0.5 -> -0), as PyTorch and IEEE roundeven do;
// written out rather than std::nearbyint, whose result depends on the rounding mode.
struct Round {
  static double f(double x) {
    const double r = std::round(x);  // halves away from zero
    if (std::fabs(x - std::trunc(x)) == 0.5) return 2.0 * std::round(x / 2.0);
    return r;
  }
};
struct Trunc {
  static double f(double x) { return std::trunc(x); }
};
// log(0) = -inf, log(x < 0) = NaN.
struct Log {
  static double f(double x) { return std::log(x); }
};
struct Sqrt {
  static double f(double x) { return std::sqrt(x); }
};
// 1 / sqrt(x): rsqrt(0) = inf.
struct Rsqrt {
  static double f(double x) { return 1.0 / std::sqrt(x); }
};
struct Tanh {
  static double f(double x) { return std::tanh(x); }
};
// 1 / (1 + e^-x): 0 at -inf, 1 at +inf.
struct Sigmoid {
  static double f(double x) { return 1.0 / (1.0 + std::exp(-x)); }
};
// max(x, 0), but NaN stays NaN (PyTorch's relu(NaN) is NaN).
struct Relu {
  static double f(double x) { return std::isnan(x) || x > 0 ? x : 0.0; }
  static int64_t i(int64_t x) { return x > 0 ? x : 0; }
};
struct Sin {
  static double f(double x) { return std::sin(x); }
};
struct Cos {
  static double f(double x) { return std::cos(x); }
};
struct LogicalNot {
  static int64_t i(int64_t x) { return x == 0; }
};
struct Identity {
  static double f(double x) { return x; }
  static int64_t i(int64_t x) { return x; }
};

// cast {dtype}: float -> integer truncates toward zero (like C and PyTorch); NaN, infinities and
// values outside the target's range (undefined behaviour in C++, platform-specific in PyTorch)
// give the target's minimum, which is what x86's cvtt* instructions, and so PyTorch on the CPU,
// produce. Any -> Bool is x != 0 (NaN is true). Integer -> integer wraps; integer -> Float32
// rounds once, to nearest.
absl::StatusOr<TypeInfo> infer_cast(absl::Span<const TypeInfo> in, const Attrs& a) {
  return TypeInfo{a.get_dtype("dtype"), in[0].shape};
}

absl::StatusOr<RefTensor> ref_cast(absl::Span<const RefTensor* const> in, const Attrs&,
                                   const TypeInfo& out) {
  const RefTensor& x = *in[0];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  const int64_t n = r.numel();
  for (int64_t k = 0; k < n; ++k) {
    if (x.floating()) {
      r.set(k, x.f[k]);  // to an integer (x86 semantics), a float (rounds) or Bool (!= 0)
    } else if (out.dtype == DType::Float32) {
      r.f[k] = static_cast<float>(x.i[k]);  // one rounding, not int64 -> double -> float
    } else {
      r.set_int(k, x.i[k]);
    }
  }
  return r;
}

// ---- binary -----------------------------------------------------------------------------------

struct Add {
  static double f(double a, double b) { return a + b; }
  static int64_t i(int64_t a, int64_t b) { return wrap_add(a, b); }
};
struct Sub {
  static double f(double a, double b) { return a - b; }
  static int64_t i(int64_t a, int64_t b) { return wrap_sub(a, b); }
};
struct Mul {
  static double f(double a, double b) { return a * b; }
  static int64_t i(int64_t a, int64_t b) { return wrap_mul(a, b); }
};
// IEEE division (x/0 = ±inf, 0/0 = NaN). Floating only: the frontend casts integers to a float
// for true division, so integer division never reaches the IR.
struct Div {
  static double f(double a, double b) { return a / b; }
};
// a^b, as C's pow (pow(x, 0) = 1 even for NaN x; a negative base to a fractional power is NaN).
struct Pow {
  static double f(double a, double b) { return std::pow(a, b); }
};
// maximum/minimum propagate NaN, as PyTorch's do (unlike fmax/fmin).
struct Maximum {
  static double f(double a, double b) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
    return a > b ? a : b;
  }
  static int64_t i(int64_t a, int64_t b) { return a > b ? a : b; }
};
struct Minimum {
  static double f(double a, double b) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
    return a < b ? a : b;
  }
  static int64_t i(int64_t a, int64_t b) { return a < b ? a : b; }
};

// Comparisons compare integers exactly (never through double, which would round large int64s)
// and floats by IEEE rules: every comparison with NaN is false except ne.
struct Eq {
  static double f(double a, double b) { return a == b; }
  static int64_t i(int64_t a, int64_t b) { return a == b; }
};
struct Ne {
  static double f(double a, double b) { return a != b; }
  static int64_t i(int64_t a, int64_t b) { return a != b; }
};
struct Lt {
  static double f(double a, double b) { return a < b; }
  static int64_t i(int64_t a, int64_t b) { return a < b; }
};
struct Le {
  static double f(double a, double b) { return a <= b; }
  static int64_t i(int64_t a, int64_t b) { return a <= b; }
};
struct Gt {
  static double f(double a, double b) { return a > b; }
  static int64_t i(int64_t a, int64_t b) { return a > b; }
};
struct Ge {
  static double f(double a, double b) { return a >= b; }
  static int64_t i(int64_t a, int64_t b) { return a >= b; }
};
struct LogicalAnd {
  static int64_t i(int64_t a, int64_t b) { return a != 0 && b != 0; }
};
struct LogicalOr {
  static int64_t i(int64_t a, int64_t b) { return a != 0 || b != 0; }
};

// ---- ternary ----------------------------------------------------------------------------------

// where(cond, a, b): a where cond is true, else b. cond is Bool; a and b share one dtype; all
// three share one shape.
absl::StatusOr<TypeInfo> infer_where(absl::Span<const TypeInfo> in, const Attrs&) {
  if (in[0].dtype != DType::Bool) {
    return absl::InvalidArgumentError(
        absl::StrCat("where: condition must be bool, got ", dtype_name(in[0].dtype)));
  }
  if (in[0].shape != in[1].shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("where: condition shape ", shape_str(in[0].shape), " and operand shape ",
                     shape_str(in[1].shape), " differ (the IR needs explicit expand)"));
  }
  if (absl::Status s = check_same_types(OpCode::Where, in, 1); !s.ok()) return s;
  return in[1];
}

absl::StatusOr<RefTensor> ref_where(absl::Span<const RefTensor* const> in, const Attrs&,
                                    const TypeInfo& out) {
  const RefTensor& c = *in[0];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  const int64_t n = r.numel();
  for (int64_t k = 0; k < n; ++k) {
    const RefTensor& src = c.i[k] != 0 ? *in[1] : *in[2];
    if (r.floating()) {
      r.f[k] = src.f[k];
    } else {
      r.i[k] = src.i[k];
    }
  }
  return r;
}

// ---- vector-Jacobian products ------------------------------------------------------------------
//
// Each rule gets the node and the gradient of its output (same type) and returns one gradient per
// operand (null: none, e.g. a Bool condition). The autodiff pass only asks for gradients of
// floating values, so integer semantics never meet these rules. `y` is the node itself: a rule
// that needs the forward value reuses it (realized or fused) instead of recomputing it.

using Grads = absl::StatusOr<std::vector<NodePtr>>;

const NodePtr& operand(const NodePtr& node, size_t k) { return node->grad_inputs()[k]; }

Grads vjp_neg(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.neg(g)});
}
// PyTorch's convention: the gradient of |x| at 0 is sign(0) = 0.
Grads vjp_abs(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(g, b.unary(OpCode::Sign, operand(node, 0)))});
}
// sign is piecewise constant: a zero gradient (not none, so the operand still gets one).
Grads vjp_zero(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.zeros_like(g)});
}
Grads vjp_exp(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(g, node)});
}
Grads vjp_log(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.div(g, operand(node, 0))});
}
// d sqrt(x) = 1 / (2 sqrt(x)).
Grads vjp_sqrt(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.div(b.scale(g, 0.5), node)});
}
// d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3.
Grads vjp_rsqrt(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(b.scale(g, -0.5), b.mul(node, b.mul(node, node)))});
}
// d tanh = 1 - y^2.
Grads vjp_tanh(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(g, b.sub(b.fill_like(node, 1.0), b.mul(node, node)))});
}
// d sigmoid = y (1 - y).
Grads vjp_sigmoid(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(g, b.mul(node, b.sub(b.fill_like(node, 1.0), node)))});
}
// Where the output is positive, as PyTorch's threshold_backward (0 at 0).
Grads vjp_relu(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  NodePtr positive = b.compare(OpCode::Gt, node, b.zeros_like(node));
  return b.finish(*node, {b.where(positive, g, b.zeros_like(g))});
}
Grads vjp_sin(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(g, b.unary(OpCode::Cos, operand(node, 0)))});
}
Grads vjp_cos(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.neg(b.mul(g, b.unary(OpCode::Sin, operand(node, 0))))});
}
Grads vjp_identity(const NodePtr& /*node*/, const NodePtr& g) { return std::vector<NodePtr>{g}; }
// Between floating dtypes the gradient is cast back; from an integer there is none.
Grads vjp_cast(const NodePtr& node, const NodePtr& g) {
  const NodePtr& x = operand(node, 0);
  if (!is_floating(x->dtype())) return std::vector<NodePtr>{nullptr};
  GradBuilder b;
  return b.finish(*node, {b.cast(g, x->dtype())});
}

Grads vjp_add(const NodePtr& /*node*/, const NodePtr& g) { return std::vector<NodePtr>{g, g}; }
Grads vjp_sub(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {g, b.neg(g)});
}
Grads vjp_mul(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.mul(g, operand(node, 1)), b.mul(g, operand(node, 0))});
}
// d(a/b) = da / b - a db / b^2.
Grads vjp_div(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& x = operand(node, 0);
  const NodePtr& y = operand(node, 1);
  return b.finish(*node, {b.div(g, y), b.neg(b.div(b.mul(g, x), b.mul(y, y)))});
}
// As PyTorch's pow_backward: the base gets g b a^(b-1), 0 where b == 0 (so 0^0 gives no NaN);
// the exponent gets g y log(a), 0 where a == 0 and b >= 0 (the limit, not 0 * -inf).
Grads vjp_pow(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& x = operand(node, 0);
  const NodePtr& e = operand(node, 1);
  NodePtr zero = b.zeros_like(g);
  NodePtr dx = b.mul(g, b.mul(e, b.op(OpCode::Pow, {x, b.sub(e, b.fill_like(e, 1.0))})));
  dx = b.where(b.compare(OpCode::Eq, e, zero), zero, dx);
  NodePtr de = b.mul(g, b.mul(node, b.unary(OpCode::Log, x)));
  NodePtr base_zero =
      b.op(OpCode::LogicalAnd, {b.compare(OpCode::Eq, x, zero), b.compare(OpCode::Ge, e, zero)});
  de = b.where(base_zero, zero, de);
  return b.finish(*node, {dx, de});
}
// maximum/minimum: the winner takes the gradient; a tie splits it evenly, as in PyTorch.
template <OpCode kWins>
Grads vjp_extremum(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& x = operand(node, 0);
  const NodePtr& y = operand(node, 1);
  NodePtr zero = b.zeros_like(g);
  NodePtr half = b.where(b.compare(OpCode::Eq, x, y), b.scale(g, 0.5), zero);
  return b.finish(
      *node, {b.where(b.compare(kWins, x, y), g, half), b.where(b.compare(kWins, y, x), g, half)});
}
Grads vjp_where(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& cond = operand(node, 0);
  NodePtr zero = b.zeros_like(g);
  return b.finish(*node, {nullptr, b.where(cond, g, zero), b.where(cond, zero, g)});
}

constexpr OpTraits kNone{};
constexpr OpTraits kZeroPreserving{.zero_preserving = true};
constexpr OpTraits kCommutativeZeroPreserving{.commutative = true, .zero_preserving = true};
constexpr OpTraits kMath{.cost = 8};
constexpr OpTraits kZeroPreservingMath{.zero_preserving = true, .cost = 8};
constexpr OpTraits kRoot{.cost = 3};  // sqrt, rsqrt, div
constexpr OpTraits kZeroPreservingRoot{.zero_preserving = true, .cost = 3};

}  // namespace

void register_elementwise_ops(OpRegistrar& r) {
  // Unary. zero_preserving: f(0) == 0.
  def_unary<OpCode::Neg, Accepts::kNumeric, Neg>(r, kZeroPreserving, &vjp_neg);
  def_unary<OpCode::Abs, Accepts::kNumeric, Abs>(r, kZeroPreserving, &vjp_abs);
  def_unary<OpCode::Sign, Accepts::kNumeric, Sign>(r, kZeroPreserving, &vjp_zero);
  def_unary<OpCode::Relu, Accepts::kNumeric, Relu>(r, kZeroPreserving, &vjp_relu);
  def_unary<OpCode::Exp, Accepts::kFloating, Exp>(r, kMath, &vjp_exp);
  def_unary<OpCode::Log, Accepts::kFloating, Log>(r, kMath, &vjp_log);
  def_unary<OpCode::Sqrt, Accepts::kFloating, Sqrt>(r, kZeroPreservingRoot, &vjp_sqrt);
  def_unary<OpCode::Rsqrt, Accepts::kFloating, Rsqrt>(r, kRoot, &vjp_rsqrt);
  def_unary<OpCode::Tanh, Accepts::kFloating, Tanh>(r, kZeroPreservingMath, &vjp_tanh);
  def_unary<OpCode::Sigmoid, Accepts::kFloating, Sigmoid>(r, kMath, &vjp_sigmoid);
  def_unary<OpCode::Sin, Accepts::kFloating, Sin>(r, kZeroPreservingMath, &vjp_sin);
  def_unary<OpCode::Cos, Accepts::kFloating, Cos>(r, kMath, &vjp_cos);
  // Piecewise constant: their gradient is zero (PyTorch's too), not undefined at the steps.
  def_unary<OpCode::Floor, Accepts::kFloating, Floor>(r, kZeroPreserving, &vjp_zero);
  def_unary<OpCode::Ceil, Accepts::kFloating, Ceil>(r, kZeroPreserving, &vjp_zero);
  def_unary<OpCode::Round, Accepts::kFloating, Round>(r, kZeroPreserving, &vjp_zero);
  def_unary<OpCode::Trunc, Accepts::kFloating, Trunc>(r, kZeroPreserving, &vjp_zero);
  def_unary<OpCode::LogicalNot, Accepts::kBool, LogicalNot>(r, kNone);
  def_unary<OpCode::Copy, Accepts::kAny, Identity>(r, kZeroPreserving, &vjp_identity);
  {
    OpDef& d = r.def(OpCode::Cast);
    d.min_inputs = d.max_inputs = 1;
    d.attrs = {{"dtype", AttrKind::DType}};
    d.infer = &infer_cast;
    d.ref_eval = &ref_cast;
    d.vjp = &vjp_cast;
    d.traits = kZeroPreserving;
  }

  // Binary. zero_preserving: f(0, 0) == 0 (false, for comparisons).
  def_binary<OpCode::Add, Accepts::kAny, Add>(r, kCommutativeZeroPreserving, &vjp_add);
  def_binary<OpCode::Sub, Accepts::kNumeric, Sub>(r, kZeroPreserving, &vjp_sub);
  def_binary<OpCode::Mul, Accepts::kAny, Mul>(r, kCommutativeZeroPreserving, &vjp_mul);
  def_binary<OpCode::Div, Accepts::kFloating, Div>(r, kRoot, &vjp_div);  // 0 / 0 is NaN
  def_binary<OpCode::Pow, Accepts::kFloating, Pow>(r, kMath, &vjp_pow);  // 0 ^ 0 is 1
  def_binary<OpCode::Maximum, Accepts::kAny, Maximum>(r, kCommutativeZeroPreserving,
                                                      &vjp_extremum<OpCode::Gt>);
  def_binary<OpCode::Minimum, Accepts::kAny, Minimum>(r, kCommutativeZeroPreserving,
                                                      &vjp_extremum<OpCode::Lt>);
  def_binary<OpCode::Eq, Accepts::kAny, Eq, true>(r, {.commutative = true, .comparison = true});
  def_binary<OpCode::Ne, Accepts::kAny, Ne, true>(
      r, {.commutative = true, .zero_preserving = true, .comparison = true});
  def_binary<OpCode::Lt, Accepts::kAny, Lt, true>(r, {.zero_preserving = true, .comparison = true});
  def_binary<OpCode::Le, Accepts::kAny, Le, true>(r, {.comparison = true});
  def_binary<OpCode::Gt, Accepts::kAny, Gt, true>(r, {.zero_preserving = true, .comparison = true});
  def_binary<OpCode::Ge, Accepts::kAny, Ge, true>(r, {.comparison = true});
  def_binary<OpCode::LogicalAnd, Accepts::kBool, LogicalAnd, true>(r, kCommutativeZeroPreserving);
  def_binary<OpCode::LogicalOr, Accepts::kBool, LogicalOr, true>(r, kCommutativeZeroPreserving);

  {
    OpDef& d = r.def(OpCode::Where);
    d.min_inputs = d.max_inputs = 3;
    d.infer = &infer_where;
    d.ref_eval = &ref_where;
    d.vjp = &vjp_where;
    d.traits = kZeroPreserving;  // where(false, 0, 0) == 0
  }
}

}  // namespace smelt::ir
