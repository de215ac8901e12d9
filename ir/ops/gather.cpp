// Data-dependent reads. index_select(x, index) {dim}: the slices of x at the positions listed in
// `index` along `dim`, in that order (repeats allowed), like torch.index_select. A 1-d index of
// n entries makes that dim n long; a 0-d index makes it 1 long, as in PyTorch. The indices are
// data, so only evaluation can check them: one that is negative or past the end is an error
// (PyTorch rejects negative indices here too), never an out-of-bounds read.
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

}  // namespace

void register_gather_ops(OpRegistrar& r) {
  OpDef& d = r.def(OpCode::IndexSelect);
  d.min_inputs = d.max_inputs = 2;
  d.attrs = {{"dim", AttrKind::Int}};
  d.infer = &infer_index_select;
  d.ref_eval = &ref_index_select;
}

}  // namespace smelt::ir
