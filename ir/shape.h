// Shapes, strides and broadcasting. Shapes are static: a new shape is a new graph.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace smelt::ir {

// A short list of int64: a shape, strides, an attribute's int list. Up to kInlineDims entries
// live inside the object, so a node's type and attributes cost no allocation of their own: a
// graph-building loop makes and frees one shape per node, and with std::vector those allocations
// were ~15 % of a small graph's host time (bench/RESULTS.md "Host overhead, session 6").
// It converts implicitly from and to std::vector<int64_t>, the public API's shape type, so code
// on either side of the boundary reads the same.
inline constexpr size_t kDimsInlineCapacity = 6;

class Dims : public absl::InlinedVector<int64_t, kDimsInlineCapacity> {
  using Base = absl::InlinedVector<int64_t, kDimsInlineCapacity>;

 public:
  static constexpr size_t kInlineDims = kDimsInlineCapacity;

  using Base::Base;
  Dims() = default;
  Dims(const std::vector<int64_t>& v)  // NOLINT(google-explicit-constructor)
      : Base(v.begin(), v.end()) {}
  explicit Dims(absl::Span<const int64_t> s) : Base(s.begin(), s.end()) {}

  operator std::vector<int64_t>() const {  // NOLINT(google-explicit-constructor)
    return std::vector<int64_t>(begin(), end());
  }

  // Non-templates, so a std::vector or a braced list on either side converts.
  friend bool operator==(const Dims& a, const Dims& b) {
    return absl::Span<const int64_t>(a) == absl::Span<const int64_t>(b);
  }
  friend bool operator<(const Dims& a, const Dims& b) {
    return absl::Span<const int64_t>(a) < absl::Span<const int64_t>(b);
  }
};

using Shape = Dims;
using Strides = Dims;

// Product of the dims; 1 for a scalar ([]), 0 if any dim is 0.
int64_t numel(absl::Span<const int64_t> shape);

// "[2, 3]"; "[]" for a scalar.
std::string shape_str(absl::Span<const int64_t> shape);

// Row-major strides in elements.
Strides contiguous_strides(absl::Span<const int64_t> shape);

// NumPy broadcasting of two shapes (align right; a dim of 1 stretches). `op` names the caller in
// the error: "add: shapes [2, 3] and [4] cannot be broadcast: dim -1 is 3 vs 4".
absl::StatusOr<Shape> broadcast_shapes(absl::string_view op, absl::Span<const int64_t> a,
                                       absl::Span<const int64_t> b);

// Maps a possibly negative dim into [0, rank), like PyTorch; an error naming `op` otherwise.
// A scalar (rank 0) accepts dims -1 and 0, as PyTorch does.
absl::StatusOr<int64_t> normalize_dim(absl::string_view op, int64_t dim, int64_t rank);

// The type rules' check of an already normalized dim attribute: OK when 0 <= dim < rank, else
// "op: dim 2 is not a dim of [2, 3] (valid: 0 to 1)" (or "(it has none)" for a scalar).
absl::Status check_dim(absl::string_view op, int64_t dim, absl::Span<const int64_t> shape);

}  // namespace smelt::ir
