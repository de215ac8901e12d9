// The reference evaluator: evaluates any graph in double precision (integers exactly, as int64).
// It defines what every op means; every compiled kernel is tested against it.
#pragma once

#include <smelt/dtype.h>

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ir/node.h"
#include "ir/ref_tensor.h"
#include "ir/shape.h"

namespace smelt::ir {

// Reads `numel(shape)` elements of `dtype` from row-major host memory.
RefTensor ref_from_memory(DType dtype, Shape shape, const void* data);
// Writes `t` to row-major host memory as its dtype (Float32 rounds).
void ref_to_memory(const RefTensor& t, void* data);

// Values for `input` nodes that have no buffer (graphs parsed from text).
using LeafValues = absl::flat_hash_map<const Node*, RefTensor>;

// Evaluates `roots`. Realized nodes and inputs read their buffers (CPU only) or `leaves`.
// Errors: an input with no value, a non-CPU buffer, or an op's data-dependent failure.
absl::StatusOr<std::vector<RefTensor>> reference_evaluate(absl::Span<const NodePtr> roots,
                                                          const LeafValues* leaves = nullptr);

}  // namespace smelt::ir
