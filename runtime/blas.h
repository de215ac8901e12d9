// Library calls of a compiled program: matrix products (OpenBLAS) and gathers.
#pragma once

#include "absl/status/status.h"
#include "runtime/program.h"

namespace smelt::runtime {

// Float32/Float64 go to OpenBLAS sgemm/dgemm (one call per batch index, transposes expressed
// as BLAS flags when an operand has a unit stride; otherwise the operand is packed first).
// Integer dtypes use a plain triple loop.
// `addend`: the addend's buffer for an addmm call (call.addend >= 0), else null.
absl::Status run_matmul(const MatmulCall& call, const void* a, const void* b, void* out,
                        const void* addend = nullptr);

// C (m x n, row-major, leading dim ldc) = op(A) op(B) + beta C, op = transpose when trans_*, for
// Float32/Float64 through OpenBLAS (Unavailable if it did not load), a large product cut into
// panels over the thread pool (see blas.cpp). For conv's GEMMs.
absl::Status gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                  const void* a, int64_t lda, const void* b, int64_t ldb, double beta, void* c,
                  int64_t ldc);

// The same product as one OpenBLAS call with OpenBLAS's own threading (no panels): what a
// program calling OpenBLAS directly gets. bench/ measures the MLP step against it.
absl::Status openblas_gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           const void* a, int64_t lda, const void* b, int64_t ldb, double beta,
                           void* c, int64_t ldc);

// True when the loaded OpenBLAS is its OpenMP build, whose GEMMs run on the same OpenMP team as
// smelt's kernels (runtime/thread_pool.h). Then a kernel right after a GEMM finds that team's
// threads still spinning and forks at once; with OpenBLAS's own pthreads it would wait for a
// worker to wake on a core that OpenBLAS's idle threads keep busy. Loads OpenBLAS if needed.
bool blas_shares_thread_pool();

// Copies the selected slices; an index out of [0, dim_size) fails with InvalidArgument naming
// index_select, before anything is written.
absl::Status run_gather(const GatherCall& call, const void* src, const void* index, void* out);

}  // namespace smelt::runtime
