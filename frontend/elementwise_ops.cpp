// Elementwise operations: arithmetic, comparisons, logic, unary math, where, clamp. Operands are
// broadcast and promoted by frontend/broadcast.h; the IR ops see equal shapes and dtypes.
#include <smelt/error.h>
#include <smelt/ops.h>

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "frontend/broadcast.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

using detail::Operand;
using ir::OpCode;

Operand operand(const Tensor& t, absl::string_view op) { return Operand(t, op); }
Operand operand(Scalar s, absl::string_view) { return Operand(s); }

// Rejects integer tensors raised to a negative integer scalar, which PyTorch refuses too (the
// result is not an integer).
void check_pow(const Operand& exponent, DType dtype) {
  if (exponent.is_scalar() && !exponent.scalar.is_floating() && exponent.scalar.to_int() < 0) {
    throw Error(absl::StrCat("pow: integers to negative integer powers are not allowed (",
                             dtype_name(dtype), " to the power ", exponent.scalar.to_int(),
                             "); convert to a floating dtype first"));
  }
}

// A binary arithmetic or comparison op; the IR op computes in the promoted dtype.
Tensor binary(OpCode code, Operand a, Operand b) {
  const absl::string_view name = ir::op_name(code);
  Operand operands[] = {std::move(a), std::move(b)};  // unify takes their nodes
  DType dtype = detail::result_type(operands);
  if (dtype == DType::Bool) {
    // PyTorch's bool arithmetic is logic; subtraction has no meaning.
    switch (code) {
      case OpCode::Add:
      case OpCode::Maximum:
        code = OpCode::LogicalOr;
        break;
      case OpCode::Mul:
      case OpCode::Minimum:
        code = OpCode::LogicalAnd;
        break;
      case OpCode::Pow:
        dtype = DType::Int64;
        break;
      case OpCode::Sub:
        throw Error(
            "sub: subtracting bool tensors is not supported; use a != b for exclusive or, or "
            "convert with .to(DType::Int64) first");
      default:
        break;
    }
  }
  if (code == OpCode::Div && !is_floating(dtype)) dtype = DType::Float32;  // true division
  if (code == OpCode::Pow && !is_floating(dtype)) {
    // The IR's pow is floating: integer powers go through Float64, exact up to 2^53.
    check_pow(operands[1], dtype);
    ir::NodePtr r = detail::make_node(code, detail::unify(name, operands, DType::Float64));
    return detail::wrap(detail::cast_node(std::move(r), dtype));
  }
  return detail::wrap(detail::make_node(code, detail::unify(name, operands, dtype)));
}

template <typename A, typename B>
Tensor binary(OpCode code, const A& a, const B& b) {
  const absl::string_view name = ir::op_name(code);
  return binary(code, operand(a, name), operand(b, name));
}

// Unary math that is only defined on floating values: integers and Bool become Float32 first.
Tensor floating_unary(OpCode code, const Tensor& a) {
  ir::NodePtr n = detail::node_of(a, ir::op_name(code));
  if (!is_floating(n->dtype())) n = detail::cast_node(std::move(n), DType::Float32);
  return detail::wrap(detail::make_node(code, {std::move(n)}));
}

// Unary ops that keep the dtype; Bool has no meaning for them.
Tensor numeric_unary(OpCode code, const Tensor& a, absl::string_view bool_hint) {
  const absl::string_view name = ir::op_name(code);
  ir::NodePtr n = detail::node_of(a, name);
  if (n->dtype() == DType::Bool) {
    throw Error(absl::StrCat(name, ": not supported for bool tensors", bool_hint));
  }
  return detail::wrap(detail::make_node(code, {std::move(n)}));
}

Tensor logical_binary(OpCode code, const Tensor& a, const Tensor& b) {
  const absl::string_view name = ir::op_name(code);
  Operand operands[] = {Operand(a, name), Operand(b, name)};
  return detail::wrap(detail::make_node(code, detail::unify(name, operands, DType::Bool)));
}

Tensor where_impl(const Tensor& cond, const Operand& a, const Operand& b) {
  ir::NodePtr c = detail::node_of(cond, "where");
  if (c->dtype() != DType::Bool) {
    throw Error(absl::StrCat("where: the condition must be a bool tensor, got ",
                             dtype_name(c->dtype()), " ", ir::shape_str(c->shape()),
                             "; compare to make one (e.g. x > 0)"));
  }
  const Operand cond_operand(std::move(c));
  const DType dtype = detail::result_type({a, b});
  const ir::Shape shape = detail::broadcast_shape("where", {cond_operand, a, b});
  const Device device = detail::common_device("where", {cond_operand, a, b});
  return detail::wrap(detail::make_node(
      OpCode::Where, {detail::materialize(cond_operand, DType::Bool, shape, device),
                      detail::materialize(a, dtype, shape, device),
                      detail::materialize(b, dtype, shape, device)}));
}

}  // namespace

// ---- arithmetic ---------------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) { return binary(OpCode::Add, a, b); }
Tensor operator+(const Tensor& a, Scalar b) { return binary(OpCode::Add, a, b); }
Tensor operator+(Scalar a, const Tensor& b) { return binary(OpCode::Add, a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return binary(OpCode::Sub, a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return binary(OpCode::Sub, a, b); }
Tensor operator-(Scalar a, const Tensor& b) { return binary(OpCode::Sub, a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return binary(OpCode::Mul, a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return binary(OpCode::Mul, a, b); }
Tensor operator*(Scalar a, const Tensor& b) { return binary(OpCode::Mul, a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return binary(OpCode::Div, a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return binary(OpCode::Div, a, b); }
Tensor operator/(Scalar a, const Tensor& b) { return binary(OpCode::Div, a, b); }

Tensor neg(const Tensor& a) {
  return numeric_unary(OpCode::Neg, a, "; use logical_not() to invert a mask");
}
Tensor operator-(const Tensor& a) { return neg(a); }

// ---- comparisons --------------------------------------------------------------------------------

Tensor operator==(const Tensor& a, const Tensor& b) { return binary(OpCode::Eq, a, b); }
Tensor operator==(const Tensor& a, Scalar b) { return binary(OpCode::Eq, a, b); }
Tensor operator==(Scalar a, const Tensor& b) { return binary(OpCode::Eq, a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return binary(OpCode::Ne, a, b); }
Tensor operator!=(const Tensor& a, Scalar b) { return binary(OpCode::Ne, a, b); }
Tensor operator!=(Scalar a, const Tensor& b) { return binary(OpCode::Ne, a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return binary(OpCode::Lt, a, b); }
Tensor operator<(const Tensor& a, Scalar b) { return binary(OpCode::Lt, a, b); }
Tensor operator<(Scalar a, const Tensor& b) { return binary(OpCode::Lt, a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return binary(OpCode::Le, a, b); }
Tensor operator<=(const Tensor& a, Scalar b) { return binary(OpCode::Le, a, b); }
Tensor operator<=(Scalar a, const Tensor& b) { return binary(OpCode::Le, a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return binary(OpCode::Gt, a, b); }
Tensor operator>(const Tensor& a, Scalar b) { return binary(OpCode::Gt, a, b); }
Tensor operator>(Scalar a, const Tensor& b) { return binary(OpCode::Gt, a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return binary(OpCode::Ge, a, b); }
Tensor operator>=(const Tensor& a, Scalar b) { return binary(OpCode::Ge, a, b); }
Tensor operator>=(Scalar a, const Tensor& b) { return binary(OpCode::Ge, a, b); }

// ---- logical ------------------------------------------------------------------------------------

Tensor logical_not(const Tensor& a) {
  ir::NodePtr n = detail::cast_node(detail::node_of(a, "logical_not"), DType::Bool);
  return detail::wrap(detail::make_node(OpCode::LogicalNot, {std::move(n)}));
}
Tensor logical_and(const Tensor& a, const Tensor& b) {
  return logical_binary(OpCode::LogicalAnd, a, b);
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return logical_binary(OpCode::LogicalOr, a, b);
}

// ---- unary math ---------------------------------------------------------------------------------

Tensor exp(const Tensor& a) { return floating_unary(OpCode::Exp, a); }
Tensor log(const Tensor& a) { return floating_unary(OpCode::Log, a); }
Tensor sqrt(const Tensor& a) { return floating_unary(OpCode::Sqrt, a); }
Tensor rsqrt(const Tensor& a) { return floating_unary(OpCode::Rsqrt, a); }
Tensor tanh(const Tensor& a) { return floating_unary(OpCode::Tanh, a); }
Tensor sigmoid(const Tensor& a) { return floating_unary(OpCode::Sigmoid, a); }
Tensor sin(const Tensor& a) { return floating_unary(OpCode::Sin, a); }
Tensor cos(const Tensor& a) { return floating_unary(OpCode::Cos, a); }
Tensor abs(const Tensor& a) { return numeric_unary(OpCode::Abs, a, ""); }
Tensor relu(const Tensor& a) { return numeric_unary(OpCode::Relu, a, ""); }

// floor/ceil/round/trunc: integers are already whole, so they come back as a copy of the same
// dtype (PyTorch); Bool has no rounding (PyTorch refuses it too).
Tensor rounding(OpCode code, const Tensor& a) {
  const absl::string_view name = ir::op_name(code);
  ir::NodePtr n = detail::node_of(a, name);
  if (n->dtype() == DType::Bool) {
    throw Error(absl::StrCat(name, ": not supported for bool tensors"));
  }
  const OpCode op = is_floating(n->dtype()) ? code : OpCode::Copy;
  return detail::wrap(detail::make_node(op, {std::move(n)}));
}
Tensor floor(const Tensor& a) { return rounding(OpCode::Floor, a); }
Tensor ceil(const Tensor& a) { return rounding(OpCode::Ceil, a); }
Tensor round(const Tensor& a) { return rounding(OpCode::Round, a); }
Tensor trunc(const Tensor& a) { return rounding(OpCode::Trunc, a); }

Tensor round(const Tensor& a, int64_t decimals) {
  if (decimals == 0) return round(a);
  if (!a.defined() || !a.is_floating_point()) {
    // node_of names an undefined tensor; an integer has no digits after the point to round.
    const ir::NodePtr n = detail::node_of(a, "round");
    throw Error(absl::StrCat("round: decimals = ", decimals, " needs a floating tensor, got ",
                             dtype_name(n->dtype())));
  }
  // PyTorch's definition: scale, round half to even, scale back (1.125 to 2 decimals is 1.12).
  const double scale = std::pow(10.0, static_cast<double>(std::abs(decimals)));
  return decimals > 0 ? round(a * scale) / scale : round(a / scale) * scale;
}

Tensor frac(const Tensor& a) {
  ir::NodePtr n = detail::node_of(a, "frac");
  if (!is_floating(n->dtype())) {
    throw Error(absl::StrCat("frac: needs a floating tensor, got ", dtype_name(n->dtype())));
  }
  return a - trunc(a);
}

Tensor sign(const Tensor& a) {
  ir::NodePtr n = detail::node_of(a, "sign");
  // The sign of a bool is itself (PyTorch); the IR's sign is numeric.
  const OpCode code = n->dtype() == DType::Bool ? OpCode::Copy : OpCode::Sign;
  return detail::wrap(detail::make_node(code, {std::move(n)}));
}

// ---- binary math --------------------------------------------------------------------------------

Tensor pow(const Tensor& a, const Tensor& exponent) { return binary(OpCode::Pow, a, exponent); }
Tensor pow(const Tensor& a, Scalar exponent) { return binary(OpCode::Pow, a, exponent); }
Tensor pow(Scalar a, const Tensor& exponent) { return binary(OpCode::Pow, a, exponent); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(OpCode::Maximum, a, b); }
Tensor maximum(const Tensor& a, Scalar b) { return binary(OpCode::Maximum, a, b); }
Tensor maximum(Scalar a, const Tensor& b) { return binary(OpCode::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(OpCode::Minimum, a, b); }
Tensor minimum(const Tensor& a, Scalar b) { return binary(OpCode::Minimum, a, b); }
Tensor minimum(Scalar a, const Tensor& b) { return binary(OpCode::Minimum, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return where_impl(cond, Operand(a, "where"), Operand(b, "where"));
}
Tensor where(const Tensor& cond, const Tensor& a, Scalar b) {
  return where_impl(cond, Operand(a, "where"), Operand(b));
}
Tensor where(const Tensor& cond, Scalar a, const Tensor& b) {
  return where_impl(cond, Operand(a), Operand(b, "where"));
}
Tensor where(const Tensor& cond, Scalar a, Scalar b) {
  return where_impl(cond, Operand(a), Operand(b));
}

// clamp selects with where instead of composing maximum and minimum: a value exactly at a bound
// then keeps its whole gradient, as in PyTorch, where maximum/minimum would split it with the
// bound. A lower bound above the upper one gives the upper bound everywhere, as in PyTorch.
Tensor clamp(const Tensor& a, Scalar lo, Scalar hi) {
  detail::node_of(a, "clamp");
  const Tensor low = where(a < lo, lo, a);
  return where(low > hi, hi, low);
}
Tensor clamp(const Tensor& a, const Tensor& lo, const Tensor& hi) {
  // Checked here so that an error names clamp, not the where it is made of.
  detail::broadcast_shape("clamp",
                          {Operand(a, "clamp"), Operand(lo, "clamp"), Operand(hi, "clamp")});
  const Tensor low = where(a < lo, lo, a);
  return where(low > hi, hi, low);
}
Tensor clamp_min(const Tensor& a, Scalar lo) { return where(a < lo, lo, a); }
Tensor clamp_max(const Tensor& a, Scalar hi) { return where(a > hi, hi, a); }

}  // namespace smelt
