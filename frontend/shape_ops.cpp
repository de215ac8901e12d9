// Shape and movement operations: reshape/view, permute/transpose/t, (un)squeeze, expand, flatten,
// slice, index_select, cat, stack, clone. All but clone and index_select are views in the IR.
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/ops.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "frontend/broadcast.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

using ir::OpCode;

std::string list_str(const std::vector<int64_t>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}

// Every public op returns a new value, even when there is nothing to do (PyTorch returns a new
// view there too): a no-op becomes a same-shape reshape, so a later in-place update of either
// handle can never be seen through the other.
Tensor fresh(ir::NodePtr result, const ir::NodePtr& input) {
  if (result == input) {
    result = detail::make_node(OpCode::Reshape, {result}, {{"shape", result->shape()}});
  }
  return detail::wrap(std::move(result));
}

// `requested` with its -1 resolved so that it holds the elements of `from`.
ir::Shape infer_shape(absl::string_view op, const ir::Shape& from,
                      const std::vector<int64_t>& requested) {
  const int64_t count = ir::numel(from);
  int64_t known = 1;
  int inferred = -1;
  for (size_t i = 0; i < requested.size(); ++i) {
    if (requested[i] == -1) {
      if (inferred >= 0) {
        throw Error(
            absl::StrCat(op, ": only one dim can be -1 (inferred), got ", list_str(requested)));
      }
      inferred = static_cast<int>(i);
    } else if (requested[i] < 0) {
      throw Error(absl::StrCat(op, ": invalid size ", requested[i], " in ", list_str(requested),
                               "; sizes must be >= 0, or -1 for one inferred dim"));
    } else {
      known *= requested[i];
    }
  }
  ir::Shape out(requested.begin(), requested.end());
  if (inferred < 0) {
    if (known != count) {
      throw Error(absl::StrCat(op, ": cannot reshape ", ir::shape_str(from), " (", count,
                               " elements) into ", list_str(requested), " (", known, " elements)"));
    }
    return out;
  }
  if (known == 0) {
    throw Error(absl::StrCat(op, ": cannot reshape ", ir::shape_str(from), " (", count,
                             " elements) into ", list_str(requested),
                             ": with a 0 in the shape the -1 could be any size"));
  }
  if (count % known != 0) {
    throw Error(absl::StrCat(op, ": cannot reshape ", ir::shape_str(from), " (", count,
                             " elements) into ", list_str(requested), ": ", count,
                             " is not a multiple of ", known));
  }
  out[inferred] = count / known;
  return out;
}

// Concatenation of nodes along the (normalized) dim `dim`, with cat's checks; `op` names the
// caller.
ir::NodePtr concat_nodes(absl::string_view op, std::vector<ir::NodePtr> nodes, int64_t dim) {
  DType dtype = nodes[0]->dtype();
  for (const ir::NodePtr& n : nodes) dtype = promote_types(dtype, n->dtype());
  std::vector<detail::Operand> operands;
  for (const ir::NodePtr& n : nodes) operands.emplace_back(n);
  detail::common_device(op, operands);
  // PyTorch's legacy rule: 1-d empty tensors take part in the dtype only.
  std::vector<size_t> kept;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i]->shape() != ir::Shape{0}) kept.push_back(i);
  }
  if (kept.empty()) kept.push_back(0);
  const ir::NodePtr& first = nodes[kept[0]];
  const int64_t rank = first->rank();
  if (rank == 0) {
    throw Error(absl::StrCat(op, ": a 0-d tensor (entry ", kept[0],
                             ") cannot be concatenated; unsqueeze it or use stack"));
  }
  const int64_t axis = detail::normalize_dim(op, dim, rank);
  std::vector<ir::NodePtr> inputs;
  for (size_t i : kept) {
    const ir::NodePtr& n = nodes[i];
    if (n->rank() != rank) {
      throw Error(absl::StrCat(op, ": tensors must have the same number of dims, got ",
                               ir::shape_str(first->shape()), " (entry ", kept[0], ") and ",
                               ir::shape_str(n->shape()), " (entry ", i, ")"));
    }
    for (int64_t d = 0; d < rank; ++d) {
      if (d != axis && n->shape()[d] != first->shape()[d]) {
        throw Error(absl::StrCat(op, ": sizes must match except in dim ", axis, ", got ",
                                 ir::shape_str(first->shape()), " (entry ", kept[0], ") and ",
                                 ir::shape_str(n->shape()), " (entry ", i, ") at dim ", d));
      }
    }
    inputs.push_back(detail::cast_node(n, dtype));
  }
  return detail::make_node(OpCode::Concat, std::move(inputs), {{"dim", axis}});
}

Tensor reshape_impl(absl::string_view op, const Tensor& t, const std::vector<int64_t>& shape) {
  ir::NodePtr n = detail::node_of(t, op);
  const ir::Shape out = infer_shape(op, n->shape(), shape);
  return detail::wrap(detail::make_node(OpCode::Reshape, {std::move(n)}, {{"shape", out}}));
}

}  // namespace

Tensor Tensor::reshape(const std::vector<int64_t>& shape) const {
  return reshape_impl("reshape", *this, shape);
}
Tensor Tensor::view(const std::vector<int64_t>& shape) const {
  return reshape_impl("view", *this, shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  ir::NodePtr n = detail::node_of(*this, "permute");
  const int64_t rank = n->rank();
  if (static_cast<int64_t>(dims.size()) != rank) {
    throw Error(absl::StrCat("permute: ", list_str(dims), " has ", dims.size(),
                             " dims but the tensor ", ir::shape_str(n->shape()), " has ", rank));
  }
  std::vector<int64_t> perm;
  std::vector<bool> seen(rank, false);
  for (int64_t d : dims) {
    const int64_t axis = detail::normalize_dim("permute", d, rank);
    if (seen[axis]) {
      throw Error(
          absl::StrCat("permute: ", list_str(dims), " is not a permutation of 0..", rank - 1));
    }
    seen[axis] = true;
    perm.push_back(axis);
  }
  return detail::wrap(
      detail::make_node(OpCode::Permute, {std::move(n)}, {{"perm", ir::IntList(perm)}}));
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  ir::NodePtr n = detail::node_of(*this, "transpose");
  const int64_t rank = n->rank();
  const int64_t a = detail::normalize_dim("transpose", dim0, rank);
  const int64_t b = detail::normalize_dim("transpose", dim1, rank);
  if (rank == 0) return fresh(n, n);
  std::vector<int64_t> perm(rank);
  for (int64_t d = 0; d < rank; ++d) perm[d] = d;
  std::swap(perm[a], perm[b]);
  return detail::wrap(
      detail::make_node(OpCode::Permute, {std::move(n)}, {{"perm", ir::IntList(perm)}}));
}

Tensor Tensor::t() const {
  ir::NodePtr n = detail::node_of(*this, "t");
  if (n->rank() > 2) {
    throw Error(absl::StrCat("t: expects a tensor with at most 2 dims, got ",
                             ir::shape_str(n->shape()), "; use transpose(dim0, dim1) or permute"));
  }
  if (n->rank() < 2) return fresh(n, n);
  return transpose(0, 1);
}

Tensor Tensor::unsqueeze(int64_t dim) const {
  ir::NodePtr n = detail::node_of(*this, "unsqueeze");
  const int64_t axis = detail::normalize_dim("unsqueeze", dim, n->rank() + 1);
  ir::Shape out = n->shape();
  out.insert(out.begin() + axis, 1);
  return fresh(detail::reshape_node(n, out), n);
}

Tensor Tensor::squeeze(int64_t dim) const {
  ir::NodePtr n = detail::node_of(*this, "squeeze");
  const int64_t axis = detail::normalize_dim("squeeze", dim, n->rank());
  ir::Shape out = n->shape();
  if (n->rank() > 0 && out[axis] == 1) out.erase(out.begin() + axis);
  return fresh(detail::reshape_node(n, out), n);
}

Tensor Tensor::squeeze() const {
  ir::NodePtr n = detail::node_of(*this, "squeeze");
  ir::Shape out;
  for (int64_t d : n->shape()) {
    if (d != 1) out.push_back(d);
  }
  return fresh(detail::reshape_node(n, out), n);
}

Tensor Tensor::expand(const std::vector<int64_t>& shape) const {
  ir::NodePtr n = detail::node_of(*this, "expand");
  const ir::Shape& from = n->shape();
  if (shape.size() < from.size()) {
    throw Error(absl::StrCat("expand: cannot expand ", ir::shape_str(from), " to ", list_str(shape),
                             ": the target has fewer dims (", shape.size(), ") than the tensor (",
                             from.size(), ")"));
  }
  const size_t lead = shape.size() - from.size();
  ir::Shape out(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t target = shape[i];
    if (i < lead) {
      if (target < 0) {
        throw Error(absl::StrCat("expand: cannot expand ", ir::shape_str(from), " to ",
                                 list_str(shape), ": size ", target, " for the new leading dim ", i,
                                 "; new dims need a size >= 0"));
      }
      out[i] = target;
      continue;
    }
    const int64_t size = from[i - lead];
    if (target == -1) {
      out[i] = size;
    } else if (target < 0 || (size != target && size != 1)) {
      throw Error(absl::StrCat("expand: cannot expand ", ir::shape_str(from), " to ",
                               list_str(shape), ": dim ", i, " has size ", size,
                               "; only size-1 dims can be expanded (or give -1 to keep one)"));
    } else {
      out[i] = target;
    }
  }
  return fresh(detail::broadcast_node(n, out), n);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  ir::NodePtr n = detail::node_of(*this, "flatten");
  if (n->rank() == 0) return fresh(detail::reshape_node(n, {1}), n);
  const int64_t start = detail::normalize_dim("flatten", start_dim, n->rank());
  const int64_t end = detail::normalize_dim("flatten", end_dim, n->rank());
  if (start > end) {
    throw Error(absl::StrCat("flatten: start_dim ", start_dim, " comes after end_dim ", end_dim,
                             " for ", ir::shape_str(n->shape())));
  }
  const ir::Shape& from = n->shape();
  ir::Shape out(from.begin(), from.begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= from[d];
  out.push_back(merged);
  out.insert(out.end(), from.begin() + end + 1, from.end());
  return fresh(detail::reshape_node(n, out), n);
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  ir::NodePtr n = detail::node_of(*this, "slice");
  if (n->rank() == 0) throw Error("slice: cannot slice a 0-d tensor");
  const int64_t axis = detail::normalize_dim("slice", dim, n->rank());
  if (step <= 0) {
    throw Error(absl::StrCat("slice: step must be positive, got ", step));
  }
  // Python's clamping: negative positions count from the end, then clamp into [0, size].
  const int64_t size = n->shape()[axis];
  auto clamp_pos = [size](int64_t p) {
    if (p < 0) p = p < -size ? 0 : p + size;
    return std::min(p, size);
  };
  const int64_t s = clamp_pos(start);
  const int64_t e = std::max(s, clamp_pos(end));
  return detail::wrap(detail::make_node(OpCode::Slice, {std::move(n)},
                                        {{"dim", axis}, {"start", s}, {"end", e}, {"step", step}}));
}

Tensor Tensor::index_select(int64_t dim, const Tensor& index) const {
  ir::NodePtr n = detail::node_of(*this, "index_select");
  ir::NodePtr idx = detail::node_of(index, "index_select");
  if (!is_integral(idx->dtype())) {
    throw Error(absl::StrCat("index_select: index must be an integer tensor (i32 or i64), got ",
                             dtype_name(idx->dtype())));
  }
  if (idx->rank() > 1) {
    throw Error(absl::StrCat("index_select: index must be 1-d (or 0-d), got ",
                             ir::shape_str(idx->shape())));
  }
  const int64_t axis = detail::normalize_dim("index_select", dim, n->rank());
  if (idx->rank() == 0) idx = detail::reshape_node(std::move(idx), {1});
  if (n->rank() > 0) {
    return detail::wrap(
        detail::make_node(OpCode::IndexSelect, {std::move(n), std::move(idx)}, {{"dim", axis}}));
  }
  // A 0-d tensor is indexed as if it were [1], by exactly one index.
  if (idx->numel() != 1) {
    throw Error(
        absl::StrCat("index_select: a 0-d tensor takes exactly one index, got ", idx->numel()));
  }
  ir::NodePtr r = detail::make_node(OpCode::IndexSelect,
                                    {detail::reshape_node(std::move(n), {1}), std::move(idx)},
                                    {{"dim", int64_t{0}}});
  return detail::wrap(detail::reshape_node(std::move(r), {}));
}

Tensor Tensor::index_add(int64_t dim, const Tensor& index, const Tensor& source) const {
  const char* op = "index_add";
  ir::NodePtr self = detail::node_of(*this, op);
  ir::NodePtr idx = detail::node_of(index, op);
  ir::NodePtr src = detail::node_of(source, op);
  if (!is_integral(idx->dtype()) || idx->rank() > 1) {
    throw Error(absl::StrCat(op, ": index must be a 1-d (or 0-d) Int32/Int64 tensor, got ",
                             dtype_name(idx->dtype()), ir::shape_str(idx->shape())));
  }
  if (src->dtype() != self->dtype()) {
    throw Error(absl::StrCat(op, ": source is ", dtype_name(src->dtype()), " but self is ",
                             dtype_name(self->dtype()), "; they must have the same dtype"));
  }
  const int64_t axis = detail::normalize_dim(op, dim, self->rank());
  if (idx->rank() == 0) idx = detail::reshape_node(std::move(idx), {1});
  // 0-d tensors act as [1].
  const bool scalar = self->rank() == 0;
  if (scalar) self = detail::reshape_node(std::move(self), {1});
  if (src->rank() == 0) src = detail::reshape_node(std::move(src), {1});
  ir::Shape want = self->shape();
  want[axis] = idx->numel();
  if (src->shape() != want) {
    throw Error(absl::StrCat(op, ": source must be ", ir::shape_str(want), " (self ",
                             ir::shape_str(self->shape()), " with ", idx->numel(),
                             " slices along dim ", axis, "), got ", ir::shape_str(src->shape())));
  }
  const int64_t size = self->shape()[axis];
  Tensor added = detail::wrap(detail::make_node(OpCode::IndexAdd, {std::move(src), std::move(idx)},
                                                {{"dim", axis}, {"size", size}}));
  Tensor out = detail::wrap(std::move(self)) + added;
  return scalar ? out.reshape({}) : out;
}

Tensor Tensor::gather(int64_t dim, const Tensor& index) const {
  const char* op = "gather";
  ir::NodePtr self = detail::node_of(*this, op);
  ir::NodePtr idx = detail::node_of(index, op);
  if (!is_integral(idx->dtype())) {
    throw Error(absl::StrCat(op, ": index must be Int64 or Int32, got ", dtype_name(idx->dtype())));
  }
  const int64_t rank = self->rank();
  if (idx->rank() != rank) {
    throw Error(absl::StrCat(op, ": index must have self's rank (", rank, "), got index ",
                             ir::shape_str(idx->shape()), " for self ",
                             ir::shape_str(self->shape())));
  }
  const int64_t axis = detail::normalize_dim(op, dim, rank);
  const ir::Shape shape = rank == 0 ? ir::Shape{1} : self->shape();
  const ir::Shape out_shape = rank == 0 ? ir::Shape{1} : idx->shape();
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d != axis && out_shape[d] > shape[d]) {
      throw Error(absl::StrCat(op, ": index ", ir::shape_str(idx->shape()), " is larger than self ",
                               ir::shape_str(self->shape()), " in dim ", d, " (only dim ", axis,
                               " may differ freely)"));
    }
  }
  const int64_t size = shape[axis];
  // Indices already on the host are checked here, at the call, with their position.
  if (const auto bad = detail::first_bad_index(index, size)) {
    throw Error(absl::StrCat(op, ": index ", bad->value, " at position ", bad->position,
                             " is out of range for dim ", axis, " of size ", size));
  }
  // One index_select over the flattened tensor: element positions are the index along `dim`
  // plus each other dim's coordinate, times the strides. Its gradient is an index_add there.
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) {
    strides[d] = strides[d + 1] * shape[d + 1];
  }
  const std::vector<int64_t> index_shape(out_shape.begin(), out_shape.end());
  Tensor i64 = index.reshape(index_shape).to(DType::Int64);
  Tensor flat = i64 * Scalar(strides[axis]);
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d == axis || out_shape[d] == 1) continue;
    std::vector<int64_t> along(shape.size(), 1);
    along[d] = out_shape[d];
    Tensor coords = arange(0, out_shape[d], 1, DType::Int64);
    if (coords.device() != device()) coords = coords.to(device());
    flat = flat + coords.reshape(along) * Scalar(strides[d]);
  }
  // A lazy index out of range must fail, not read a neighbour's element: it is sent past the
  // end, where index_select reports it (naming the flattened view).
  const int64_t numel = ir::numel(shape);
  flat = where(logical_and(i64 >= Scalar(0), i64 < Scalar(size)), flat, Scalar(numel));
  Tensor out = reshape({-1}).index_select(0, flat.reshape({-1}));
  return out.reshape(index.shape());
}

Tensor Tensor::clone() const {
  return detail::wrap(detail::make_node(OpCode::Copy, {detail::node_of(*this, "clone")}));
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw Error("cat: expects a non-empty list of tensors");
  std::vector<ir::NodePtr> nodes;
  for (const Tensor& t : tensors) nodes.push_back(detail::node_of(t, "cat"));
  return detail::wrap(concat_nodes("cat", std::move(nodes), dim));
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw Error("stack: expects a non-empty list of tensors");
  std::vector<ir::NodePtr> nodes;
  for (const Tensor& t : tensors) nodes.push_back(detail::node_of(t, "stack"));
  const ir::Shape& shape = nodes[0]->shape();
  for (size_t i = 1; i < nodes.size(); ++i) {
    if (nodes[i]->shape() != shape) {
      throw Error(absl::StrCat("stack: expects tensors of equal size, got ", ir::shape_str(shape),
                               " (entry 0) and ", ir::shape_str(nodes[i]->shape()), " (entry ", i,
                               ")"));
    }
  }
  const int64_t axis = detail::normalize_dim("stack", dim, nodes[0]->rank() + 1);
  ir::Shape unsqueezed = shape;
  unsqueezed.insert(unsqueezed.begin() + axis, 1);
  for (ir::NodePtr& n : nodes) n = detail::reshape_node(std::move(n), unsqueezed);
  return detail::wrap(concat_nodes("stack", std::move(nodes), axis));
}

}  // namespace smelt
