// Library calls of a compiled program: matrix products (OpenBLAS) and gathers.
#pragma once

#include "absl/status/status.h"
#include "runtime/program.h"

namespace smelt::runtime {

// Float32/Float64 go to OpenBLAS sgemm/dgemm (one call per batch index, transposes expressed
// as BLAS flags when an operand has a unit stride; otherwise the operand is packed first).
// Integer dtypes use a plain triple loop.
absl::Status run_matmul(const MatmulCall& call, const void* a, const void* b, void* out);

// Copies the selected slices; an index out of [0, dim_size) fails with InvalidArgument naming
// index_select, before anything is written.
absl::Status run_gather(const GatherCall& call, const void* src, const void* index, void* out);

}  // namespace smelt::runtime
