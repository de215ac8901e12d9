// GradBuilder: how an op's VJP rule (OpDef::vjp, next to the op in ir/ops/<family>.cpp) builds
// its gradient nodes. Gradients are ordinary IR nodes built from the public ops, so backward is
// an ordinary graph that fuses with the forward pass (MLX's and tinygrad's approach).
//
// Each builder call returns the new node; the first failure is remembered and every later call
// returns null, so a rule reads as straight-line math and reports one error at the end:
//
//   GradBuilder b;
//   NodePtr gx = b.mul(grad, b.cos(x));
//   return b.finish({gx});
//
// A failure here is a bug in a rule (its operands are typed by the forward graph), reported as
// an Internal error naming the op whose gradient was being built.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ir/node.h"

namespace smelt::ir {

class GradBuilder {
 public:
  // Any op; null (and the error remembered) if an operand is null or the op rejects them.
  NodePtr op(OpCode code, std::vector<NodePtr> inputs, Attrs attrs = {});

  NodePtr add(const NodePtr& a, const NodePtr& b) { return op(OpCode::Add, {a, b}); }
  NodePtr sub(const NodePtr& a, const NodePtr& b) { return op(OpCode::Sub, {a, b}); }
  NodePtr mul(const NodePtr& a, const NodePtr& b) { return op(OpCode::Mul, {a, b}); }
  NodePtr div(const NodePtr& a, const NodePtr& b) { return op(OpCode::Div, {a, b}); }
  NodePtr neg(const NodePtr& a) { return op(OpCode::Neg, {a}); }
  NodePtr unary(OpCode code, const NodePtr& a) { return op(code, {a}); }
  NodePtr compare(OpCode code, const NodePtr& a, const NodePtr& b) { return op(code, {a, b}); }
  NodePtr where(const NodePtr& cond, const NodePtr& a, const NodePtr& b) {
    return op(OpCode::Where, {cond, a, b});
  }
  NodePtr cast(const NodePtr& a, DType dtype);

  // `value` of like's dtype at like's shape and device (one constant node).
  NodePtr fill_like(const NodePtr& like, double value);
  NodePtr zeros_like(const NodePtr& like) { return fill_like(like, 0.0); }
  // a * value (a constant of a's dtype).
  NodePtr scale(const NodePtr& a, double value) { return mul(a, fill_like(a, value)); }

  NodePtr reshape(const NodePtr& a, const Shape& shape);
  NodePtr expand(const NodePtr& a, const Shape& shape);
  NodePtr permute(const NodePtr& a, const IntList& perm);
  // The sum of `a` over `axes` (sorted, unique), keeping them as size-1 dims; `a` if none.
  NodePtr sum_keepdim(const NodePtr& a, const IntList& axes);
  // The gradient `g` of a reduction over `axes` of a `shape` value (with or without keepdim),
  // broadcast back to `shape`.
  NodePtr unreduce(const NodePtr& g, const Shape& shape, const IntList& axes);

  // The first error, or OK.
  const absl::Status& status() const { return status_; }

  // `grads` if every call succeeded, else the first error, prefixed with the op being
  // differentiated.
  absl::StatusOr<std::vector<NodePtr>> finish(const Node& node, std::vector<NodePtr> grads) const;

 private:
  absl::Status status_;
};

}  // namespace smelt::ir
