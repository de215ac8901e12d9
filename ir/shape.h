// Shapes, strides and broadcasting. Shapes are static: a new shape is a new graph.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace smelt::ir {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

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

}  // namespace smelt::ir
