// Broadcasting and type promotion: how the frontend turns the operands of an elementwise op into
// the IR's explicit form (equal shapes, equal dtypes). The IR never broadcasts or promotes; the
// frontend inserts the reshape/expand views and casts, here and only here.
#pragma once

#include <smelt/device.h>
#include <smelt/dtype.h>
#include <smelt/scalar.h>
#include <smelt/tensor.h>

#include <initializer_list>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/node.h"
#include "ir/shape.h"

namespace smelt::detail {

// One argument of an elementwise op: a tensor's node, or a C++ number.
struct Operand {
  Operand(const Tensor& t, absl::string_view op) : node(node_of_checked(t, op)) {}
  Operand(Scalar s) : scalar(s) {}  // NOLINT(google-explicit-constructor)
  explicit Operand(ir::NodePtr n) : node(std::move(n)) {}

  bool is_scalar() const { return node == nullptr; }

  ir::NodePtr node;  // null for a scalar
  Scalar scalar = 0;

 private:
  static ir::NodePtr node_of_checked(const Tensor& t, absl::string_view op);
};

// PyTorch's result type (torch.result_type): tensors with dims decide within a category; a 0-d
// tensor, then a Scalar, only lift the category (bool < integer < floating), and a floating
// Scalar lifts to Float32, an integer one to Int64.
DType result_type(absl::Span<const Operand> operands);

// The shape all tensor operands broadcast to (NumPy rules), or an error naming `op`.
ir::Shape broadcast_shape(absl::string_view op, absl::Span<const Operand> operands);

// The device shared by the tensor operands (cpu if there are none), or an error naming `op`.
Device common_device(absl::string_view op, absl::Span<const Operand> operands);

// `operand` as a node of `dtype` broadcast to `shape`: a tensor is cast (before it is broadcast,
// while it is small), a scalar becomes a constant. Takes the operand's node (pass an rvalue to move
// it: each copy of a node pointer is two atomic updates).
ir::NodePtr materialize(Operand operand, DType dtype, const ir::Shape& shape, Device device);

// Operands brought to one dtype and shape, ready for an IR elementwise op. Takes (moves out) the
// operands' nodes.
ir::NodeList unify(absl::string_view op, absl::Span<Operand> operands, DType dtype);

}  // namespace smelt::detail
