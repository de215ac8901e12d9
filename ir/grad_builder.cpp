#include "ir/grad_builder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace smelt::ir {

NodePtr GradBuilder::op(OpCode code, std::vector<NodePtr> inputs, Attrs attrs) {
  if (!status_.ok()) return nullptr;
  for (const NodePtr& in : inputs) {
    if (in == nullptr) {
      status_ = absl::InternalError(absl::StrCat(op_name(code), ": null operand"));
      return nullptr;
    }
  }
  absl::StatusOr<NodePtr> n = Node::make(code, std::move(inputs), std::move(attrs));
  if (!n.ok()) {
    status_ = n.status();
    return nullptr;
  }
  return *std::move(n);
}

NodePtr GradBuilder::cast(const NodePtr& a, DType dtype) {
  if (a != nullptr && a->dtype() == dtype) return a;
  return op(OpCode::Cast, {a}, {{"dtype", dtype}});
}

NodePtr GradBuilder::fill_like(const NodePtr& like, double value) {
  if (!status_.ok()) return nullptr;
  if (like == nullptr) {
    status_ = absl::InternalError("constant: no value to take the type from");
    return nullptr;
  }
  // One constant built at the shape (as the frontend builds scalar operands), not a 0-d
  // constant + reshape + expand: three nodes to build, hash, walk and free every step.
  Attrs attrs;  // in name order, so each set appends
  attrs.set("dtype", like->dtype());
  if (like->rank() > 0) attrs.set("shape", IntList(like->shape().begin(), like->shape().end()));
  attrs.set("value", value);
  absl::StatusOr<NodePtr> c = Node::make(OpCode::Constant, {}, std::move(attrs), like->device());
  if (!c.ok()) {
    status_ = c.status();
    return nullptr;
  }
  return *std::move(c);
}

NodePtr GradBuilder::reshape(const NodePtr& a, const Shape& shape) {
  if (a != nullptr && a->shape() == shape) return a;
  // A broadcast's gradient is sum(keepdim) then, for the dims the broadcast added, a reshape
  // that drops them. Built as one sum without keepdim instead, the reduction keeps the shape of
  // its consumer (a bias update), so fusion can put both in one kernel.
  if (a != nullptr && a->op() == OpCode::Sum && !a->realized() && a->attrs().get_bool("keepdim")) {
    const IntList& axes = a->attrs().get_ints("axes");
    const Shape& from = a->inputs()[0]->shape();
    Shape dropped;
    for (size_t d = 0; d < from.size(); ++d) {
      if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) == axes.end()) {
        dropped.push_back(from[d]);
      }
    }
    if (dropped == shape)
      return op(OpCode::Sum, {a->inputs()[0]}, {{"axes", axes}, {"keepdim", false}});
  }
  return op(OpCode::Reshape, {a}, {{"shape", shape}});
}

NodePtr GradBuilder::expand(const NodePtr& a, const Shape& shape) {
  if (a != nullptr && a->shape() == shape) return a;
  return op(OpCode::Expand, {a}, {{"shape", shape}});
}

NodePtr GradBuilder::permute(const NodePtr& a, const IntList& perm) {
  return op(OpCode::Permute, {a}, {{"perm", perm}});
}

NodePtr GradBuilder::sum_keepdim(const NodePtr& a, const IntList& axes) {
  if (axes.empty()) return a;
  return op(OpCode::Sum, {a}, {{"axes", axes}, {"keepdim", true}});
}

NodePtr GradBuilder::unreduce(const NodePtr& g, const Shape& shape, const IntList& axes) {
  Shape kept = shape;
  for (int64_t axis : axes) kept[axis] = 1;
  return expand(reshape(g, kept), shape);
}

absl::StatusOr<std::vector<NodePtr>> GradBuilder::finish(const Node& node,
                                                         std::vector<NodePtr> grads) const {
  if (!status_.ok()) {
    return absl::InternalError(absl::StrCat("the gradient of ", node.def().name, " ",
                                            shape_str(node.shape()),
                                            " could not be built: ", status_.message()));
  }
  return grads;
}

}  // namespace smelt::ir
