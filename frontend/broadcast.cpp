#include "frontend/broadcast.h"

#include <smelt/error.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/status.h"

namespace smelt::detail {
namespace {

enum class Category { kBool, kIntegral, kFloating };

Category category(DType t) {
  if (t == DType::Bool) return Category::kBool;
  return is_floating(t) ? Category::kFloating : Category::kIntegral;
}

void accumulate(std::optional<DType>& slot, DType t) { slot = slot ? promote_types(*slot, t) : t; }

// c10's combine_categories: `higher` decides unless `lower` is of a higher category.
std::optional<DType> combine(std::optional<DType> higher, std::optional<DType> lower) {
  if (!higher) return lower;
  if (!lower) return higher;
  if (category(*higher) == Category::kFloating) return higher;
  if (*higher == DType::Bool || category(*lower) == Category::kFloating) {
    return promote_types(*higher, *lower);
  }
  return higher;
}

}  // namespace

ir::NodePtr Operand::node_of_checked(const Tensor& t, absl::string_view op) {
  return node_of(t, op);
}

DType result_type(absl::Span<const Operand> operands) {
  std::optional<DType> dimensioned, zero_dim, wrapped;
  for (const Operand& o : operands) {
    if (o.is_scalar()) {
      accumulate(wrapped, o.scalar.is_floating()   ? DType::Float32
                          : o.scalar.is_integral() ? DType::Int64
                                                   : DType::Bool);
    } else {
      accumulate(o.node->rank() == 0 ? zero_dim : dimensioned, o.node->dtype());
    }
  }
  return combine(dimensioned, combine(zero_dim, wrapped)).value_or(DType::Float32);
}

namespace {
// The shape every tensor operand has, when they all have the same one (the common case, which
// needs no broadcasting and no new shape); null if they differ or there is no tensor operand.
const ir::Shape* equal_shape(absl::Span<const Operand> operands) {
  const ir::Shape* shape = nullptr;
  for (const Operand& o : operands) {
    if (o.is_scalar()) continue;
    if (shape == nullptr) {
      shape = &o.node->shape();
    } else if (o.node->shape() != *shape) {
      return nullptr;
    }
  }
  return shape;
}
}  // namespace

ir::Shape broadcast_shape(absl::string_view op, absl::Span<const Operand> operands) {
  if (const ir::Shape* same = equal_shape(operands)) return *same;
  std::optional<ir::Shape> shape;
  for (const Operand& o : operands) {
    if (o.is_scalar()) continue;
    shape =
        shape ? value_or_throw(ir::broadcast_shapes(op, *shape, o.node->shape())) : o.node->shape();
  }
  return shape.value_or(ir::Shape{});
}

Device common_device(absl::string_view op, absl::Span<const Operand> operands) {
  std::optional<Device> device;
  for (const Operand& o : operands) {
    if (o.is_scalar()) continue;
    if (device && *device != o.node->device()) {
      throw Error(absl::StrCat(op, ": tensors are on different devices (", device->str(), " and ",
                               o.node->device().str(), "); move them to one device first"));
    }
    device = o.node->device();
  }
  return device.value_or(Device::cpu());
}

ir::NodePtr materialize(Operand operand, DType dtype, const ir::Shape& shape, Device device) {
  if (operand.is_scalar()) return constant_node(operand.scalar, dtype, shape, device);
  return broadcast_node(cast_node(std::move(operand.node), dtype), shape);
}

ir::NodeList unify(absl::string_view op, absl::Span<Operand> operands, DType dtype) {
  ir::Shape broadcast;
  // Points into an operand's node while the shapes agree; that node stays alive in `nodes`.
  const ir::Shape* shape = equal_shape(operands);
  if (shape == nullptr) {
    broadcast = broadcast_shape(op, operands);
    shape = &broadcast;
  }
  const Device device = common_device(op, operands);
  ir::NodeList nodes;
  nodes.reserve(operands.size());
  for (Operand& o : operands) nodes.push_back(materialize(std::move(o), dtype, *shape, device));
  return nodes;
}

}  // namespace smelt::detail
