// Data-dependent reads. index_select(x, index) {dim}: the slices of x at the positions listed in
// `index` along `dim`, in that order (repeats allowed), like torch.index_select. A 1-d index of
// n entries makes that dim n long; a 0-d index makes it 1 long, as in PyTorch. The indices are
// data, so only evaluation can check them: one that is negative or past the end is an error
// (PyTorch rejects negative indices here too), never an out-of-bounds read.
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

absl::StatusOr<TypeInfo> infer_index_select(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& x = in[0];
  const TypeInfo& index = in[1];
  const int64_t dim = a.get_int("dim");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (dim < 0 || dim >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_select: dim ", dim, " is not a dim of ", shape_str(x.shape),
                     rank == 0 ? " (it has none)" : absl::StrCat(" (valid: 0 to ", rank - 1, ")")));
  }
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
  for (int64_t j : index.i) {
    if (j < 0 || j >= size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "index_select: index ", j, " is out of range for dim ", dim, " of size ", size));
    }
  }
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
// is s (repeats add up). Expressed as a one-hot matrix product, [outer, size, n] x [outer, n,
// inner], with ops every backend already has; it costs size * n multiply-adds per inner element,
// which is fine for the sizes index_select sees here, though a scatter-add op would be cheaper for
// large vocabularies. The index gets no gradient.
absl::StatusOr<std::vector<NodePtr>> vjp_index_select(const NodePtr& node, const NodePtr& g) {
  const NodePtr& x = node->grad_inputs()[0];
  const NodePtr& index = node->grad_inputs()[1];
  const int64_t dim = node->attrs().get_int("dim");
  const Shape& shape = x->shape();
  const int64_t size = shape[dim];
  const int64_t n = node->shape()[dim];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  GradBuilder b;
  NodePtr positions = b.expand(b.reshape(b.iota(size, x->device()), {size, 1}), {size, n});
  NodePtr wanted = b.expand(b.reshape(b.cast(index, DType::Int64), {1, n}), {size, n});
  NodePtr one_hot = b.cast(b.compare(OpCode::Eq, positions, wanted), x->dtype());
  one_hot = b.expand(b.reshape(one_hot, {1, size, n}), {outer, size, n});
  NodePtr dx = b.op(OpCode::Matmul, {one_hot, b.reshape(g, {outer, n, inner})});
  return b.finish(*node, {b.reshape(dx, shape), nullptr});
}

}  // namespace

void register_gather_ops(OpRegistrar& r) {
  OpDef& d = r.def(OpCode::IndexSelect);
  d.min_inputs = d.max_inputs = 2;
  d.attrs = {{"dim", AttrKind::Int}};
  d.infer = &infer_index_select;
  d.ref_eval = &ref_index_select;
  d.vjp = &vjp_index_select;
}

}  // namespace smelt::ir
