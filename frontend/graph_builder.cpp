#include "frontend/graph_builder.h"

#include <smelt/error.h>
#include <smelt/eval.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "frontend/status.h"
#include "frontend/tensor_impl.h"

namespace smelt::detail {

ir::NodePtr node_of(const Tensor& t, absl::string_view op) {
  if (!t.defined()) {
    throw Error(absl::StrCat(op, ": the tensor is undefined (a default-constructed Tensor); ",
                             "give it a value first"));
  }
  return t.impl()->node();
}

ir::NodePtr make_node(ir::OpCode op, ir::NodeList&& inputs, ir::Attrs&& attrs, Device device) {
  ir::NodePtr node =
      value_or_throw(ir::Node::make(op, std::move(inputs), std::move(attrs), device));
  record_grad(node);
  return node;
}

Tensor wrap(ir::NodePtr node) {
  if (is_eager() && !node->is_leaf()) {
    realize_nodes({node}, compiler::EvalReason::kEager);
  } else if (node->pending_depth() > kMaxPendingDepth) {
    realize_nodes({node}, compiler::EvalReason::kGraphLimit);
  }
  return Tensor(TensorImpl::make(std::move(node)));
}

void realize_nodes(absl::Span<const ir::NodePtr> nodes, compiler::EvalReason reason,
                   absl::Span<const ir::Node* const> donated,
                   absl::Span<const compiler::DonationCandidate> candidates) {
  // Values set in place and still pending ride along (frontend/inplace_ops.cpp), in the same
  // program, so their graphs never outgrow one step.
  const auto inplace = take_pending_inplace();
  if (inplace.empty()) {
    check_ok(compiler::realize(nodes, reason, donated, candidates));
    return;
  }
  std::vector<ir::NodePtr> all(nodes.begin(), nodes.end());
  for (const auto& [impl, node] : inplace) all.push_back(node);
  if (compiler::realize(all, reason, donated, candidates).ok()) return;
  // Something failed (out of memory, an index out of range): realize what was asked alone, so
  // the error belongs to the call that caused it; the in-place values wait for the next one,
  // and the candidates stay (the values left pending may read them).
  restore_pending_inplace(inplace);
  check_ok(compiler::realize(nodes, reason, donated));
}

void pair_results(const Tensor& a, const Tensor& b) {
  a.impl()->set_companion(b.impl());
  b.impl()->set_companion(a.impl());
}

std::vector<ir::NodePtr> with_companions(absl::Span<const Tensor> tensors,
                                         std::vector<ir::NodePtr> nodes) {
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    const std::shared_ptr<TensorImpl> other = t.impl()->companion();
    if (other == nullptr) continue;
    ir::NodePtr n = other->node();
    if (n->realized() || std::find(nodes.begin(), nodes.end(), n) != nodes.end()) continue;
    nodes.push_back(std::move(n));
  }
  return nodes;
}

namespace {
// {shape}, with one copy of the shape (an initializer list would copy it twice).
ir::Attrs shape_attrs(const ir::Shape& shape) {
  ir::Attrs attrs;
  attrs.set("shape", ir::IntList(shape.begin(), shape.end()));
  return attrs;
}
}  // namespace

ir::NodePtr reshape_node(ir::NodePtr node, const ir::Shape& shape) {
  if (node->shape() == shape) return node;
  return make_node(ir::OpCode::Reshape, {std::move(node)}, shape_attrs(shape));
}

ir::NodePtr broadcast_node(ir::NodePtr node, const ir::Shape& shape) {
  if (node->shape() == shape) return node;
  const size_t rank = node->shape().size();
  if (rank < shape.size()) {
    ir::Shape padded(shape.size() - rank, 1);
    padded.insert(padded.end(), node->shape().begin(), node->shape().end());
    node = reshape_node(std::move(node), padded);
  }
  if (node->shape() == shape) return node;
  return make_node(ir::OpCode::Expand, {std::move(node)}, shape_attrs(shape));
}

ir::NodePtr cast_node(ir::NodePtr node, DType dtype) {
  if (node->dtype() == dtype) return node;
  return make_node(ir::OpCode::Cast, {std::move(node)}, {{"dtype", dtype}});
}

ir::NodePtr constant_node(Scalar value, DType dtype, const ir::Shape& shape, Device device) {
  // The constant carries the value already converted to `dtype`, so that a constant of an
  // integer dtype never holds a fraction.
  double v = value.to_double();
  if (dtype == DType::Bool) {
    v = v != 0.0 ? 1.0 : 0.0;
  } else if (is_integral(dtype) && value.is_floating()) {
    // Like a cast, truncate toward zero; a value no integer holds is an error, not UB.
    if (!(std::abs(v) < 9.2e18)) {
      throw Error(absl::StrCat("cannot convert the value ", v, " to ", dtype_name(dtype)));
    }
    v = std::trunc(v);
  }
  // Built at its shape in one node (not a 0-d constant + reshape + expand): a scalar operand is
  // the commonest node of a small step, and each node costs allocations and hashing.
  if (shape.empty()) {
    return make_node(ir::OpCode::Constant, {}, {{"dtype", dtype}, {"value", v}}, device);
  }
  ir::Attrs attrs;  // set in name order, so each one appends
  attrs.set("dtype", dtype).set("shape", ir::IntList(shape.begin(), shape.end())).set("value", v);
  return make_node(ir::OpCode::Constant, {}, std::move(attrs), device);
}

ir::NodePtr host_node(DType dtype, ir::Shape shape, const void* data) {
  const size_t nbytes = static_cast<size_t>(ir::numel(shape)) * dtype_size(dtype);
  base::BufferPtr buf = base::Buffer::allocate_host(nbytes);
  if (nbytes > 0) std::memcpy(buf->data(), data, nbytes);
  return ir::Node::make_input(dtype, std::move(shape), std::move(buf));
}

std::optional<BadIndex> first_bad_index(const Tensor& index, int64_t size) {
  if (index.impl()->node()->buffer() == nullptr || !index.device().is_cpu()) return std::nullopt;
  const std::vector<int64_t> v = index.to_vector<int64_t>();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0 || v[i] >= size) return BadIndex{i, v[i]};
  }
  return std::nullopt;
}

int64_t normalize_dim(absl::string_view op, int64_t dim, int64_t rank) {
  return value_or_throw(ir::normalize_dim(op, dim, rank));
}

}  // namespace smelt::detail
