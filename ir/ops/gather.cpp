// Data-dependent reads and their transpose. index_select(x, index) {dim}: the slices of x at the
// positions listed in `index` along `dim`, in that order (repeats allowed), like
// torch.index_select. A 1-d index of n entries makes that dim n long; a 0-d index makes it 1
// long, as in PyTorch. The indices are data, so only evaluation can check them: one that is
// negative or past the end is an error (PyTorch rejects negative indices here too), never an
// out-of-bounds read. index_add (below) scatters slices back: index_select's gradient.
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

// Indices are data: the first one outside [0, size) of `dim` is an error, never a wild read.
absl::Status check_indices(const char* op, const RefTensor& index, int64_t dim, int64_t size) {
  for (int64_t j : index.i) {
    if (j < 0 || j >= size) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": index ", j, " is out of range for dim ", dim, " of size ", size));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TypeInfo> infer_index_select(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& x = in[0];
  const TypeInfo& index = in[1];
  const int64_t dim = a.get_int("dim");
  if (absl::Status s = check_dim("index_select", dim, x.shape); !s.ok()) return s;
  if (!is_integral(index.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_select: index must be an integer tensor (i32 or i64), got ",
                     dtype_name(index.dtype)));
  }
  if (index.shape.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_select: index must be 0-d or 1-d, got shape ", shape_str(index.shape)));
  }
  Shape out = x.shape;
  out[dim] = numel(index.shape);
  return TypeInfo{x.dtype, out};
}

absl::StatusOr<RefTensor> ref_index_select(absl::Span<const RefTensor* const> in, const Attrs& a,
                                           const TypeInfo& out) {
  const RefTensor& x = *in[0];
  const RefTensor& index = *in[1];
  const int64_t dim = a.get_int("dim");
  const int64_t size = x.shape[dim];
  if (absl::Status s = check_indices("index_select", index, dim, size); !s.ok()) return s;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.shape[d];
  for (size_t d = dim + 1; d < x.shape.size(); ++d) inner *= x.shape[d];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  int64_t k = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j : index.i) {
      const int64_t from = (o * size + j) * inner;
      for (int64_t e = 0; e < inner; ++e, ++k) {
        if (r.floating()) {
          r.f[k] = x.f[from + e];
        } else {
          r.i[k] = x.i[from + e];
        }
      }
    }
  }
  return r;
}

// The gradient scatters back: position s of dim gets the sum of the gradient slices whose index
// is s (repeats add up): index_add, index_select's transpose. The index gets no gradient.
absl::StatusOr<std::vector<NodePtr>> vjp_index_select(const NodePtr& node, const NodePtr& g) {
  const NodePtr& x = node->grad_inputs()[0];
  const NodePtr& index = node->grad_inputs()[1];
  const int64_t dim = node->attrs().get_int("dim");
  GradBuilder b;
  NodePtr dx = b.op(OpCode::IndexAdd, {g, index}, {{"dim", dim}, {"size", x->shape()[dim]}});
  return b.finish(*node, {dx, nullptr});
}

// index_add(src, index) {dim, size}: an output whose dim is `size` long, zero but for the slices
// of src added at the positions `index` lists (src's dim has one slice per index entry; repeats
// add up). Floating sums accumulate in double, integers wrap; an index outside [0, size) is an
// error, as in index_select.
absl::StatusOr<TypeInfo> infer_index_add(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& src = in[0];
  const TypeInfo& index = in[1];
  const int64_t dim = a.get_int("dim");
  const int64_t size = a.get_int("size");
  if (absl::Status s = check_dim("index_add", dim, src.shape); !s.ok()) return s;
  if (!is_integral(index.dtype) || index.shape.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_add: index must be a 0-d or 1-d integer tensor, got ",
                     dtype_name(index.dtype), shape_str(index.shape)));
  }
  if (numel(index.shape) != src.shape[dim]) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_add: ", numel(index.shape), " indices for the ", src.shape[dim],
                     " slices along dim ", dim, " of ", shape_str(src.shape)));
  }
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat("index_add: size ", size, " < 0"));
  if (src.dtype == DType::Bool) {
    return absl::InvalidArgumentError("index_add: not defined for bool; cast to an integer first");
  }
  Shape out = src.shape;
  out[dim] = size;
  return TypeInfo{src.dtype, out};
}

absl::StatusOr<RefTensor> ref_index_add(absl::Span<const RefTensor* const> in, const Attrs& a,
                                        const TypeInfo& out) {
  const RefTensor& src = *in[0];
  const RefTensor& index = *in[1];
  const int64_t dim = a.get_int("dim");
  const int64_t size = a.get_int("size");
  const int64_t n = src.shape[dim];
  if (absl::Status s = check_indices("index_add", index, dim, size); !s.ok()) return s;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= src.shape[d];
  for (size_t d = dim + 1; d < src.shape.size(); ++d) inner *= src.shape[d];
  std::vector<double> fsum(static_cast<size_t>(numel(out.shape)), 0.0);
  std::vector<uint64_t> isum(fsum.size(), 0);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t e = 0; e < inner; ++e) {
        const int64_t from = (o * n + j) * inner + e;
        const int64_t to = (o * size + index.i[j]) * inner + e;
        if (src.floating()) {
          fsum[to] += src.f[from];
        } else {
          isum[to] += static_cast<uint64_t>(src.i[from]);
        }
      }
    }
  }
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  for (int64_t k = 0; k < r.numel(); ++k) {
    if (r.floating()) {
      r.set(k, fsum[k]);
    } else {
      r.set_int(k, static_cast<int64_t>(isum[k]));
    }
  }
  return r;
}

// The transpose of a transpose: the gradient of the sources is the output gradient's slices at
// their indices.
absl::StatusOr<std::vector<NodePtr>> vjp_index_add(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  NodePtr dsrc = b.op(OpCode::IndexSelect, {g, node->grad_inputs()[1]},
                      {{"dim", node->attrs().get_int("dim")}});
  return b.finish(*node, {dsrc, nullptr});
}

}  // namespace

void register_gather_ops(OpRegistrar& r) {
  OpDef& d = r.def(OpCode::IndexSelect);
  d.min_inputs = d.max_inputs = 2;
  d.attrs = {{"dim", AttrKind::Int}};
  d.infer = &infer_index_select;
  d.ref_eval = &ref_index_select;
  d.vjp = &vjp_index_select;

  OpDef& add = r.def(OpCode::IndexAdd);
  add.min_inputs = add.max_inputs = 2;
  add.attrs = {{"dim", AttrKind::Int}, {"size", AttrKind::Int}};
  add.infer = &infer_index_add;
  add.ref_eval = &ref_index_add;
  add.vjp = &vjp_index_add;
}

}  // namespace smelt::ir
