#include "ir/shape.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace smelt::ir {

int64_t numel(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

Strides contiguous_strides(absl::Span<const int64_t> shape) {
  Strides s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

absl::StatusOr<Shape> broadcast_shapes(absl::string_view op, absl::Span<const int64_t> a,
                                       absl::Span<const int64_t> b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    // Index from the right: dim -1 is the last one.
    int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast: dim -",
          i + 1, " is ", da, " vs ", db, " (sizes must match or one of them must be 1)"));
    }
    out[rank - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

absl::Status check_dim(absl::string_view op, int64_t dim, absl::Span<const int64_t> shape) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (dim >= 0 && dim < rank) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(op, ": dim ", dim, " is not a dim of ", shape_str(shape),
                   rank == 0 ? " (it has none)" : absl::StrCat(" (valid: 0 to ", rank - 1, ")")));
}

absl::StatusOr<int64_t> normalize_dim(absl::string_view op, int64_t dim, int64_t rank) {
  const int64_t r = rank == 0 ? 1 : rank;
  if (dim < -r || dim >= r) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": dim ", dim, " is out of range for a ",
                                                   rank, "-d tensor (valid: ", -r, " to ", r - 1,
                                                   ")"));
  }
  return dim < 0 ? dim + r : dim;
}

}  // namespace smelt::ir
