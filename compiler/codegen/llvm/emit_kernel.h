// \file The LLVM (CPU) code generator: Kernel IR -> LLVM IR -> machine code, through the CPU JIT
// (runtime/cpu_jit.h). No LLVM type appears here.
//
// The ABI of a compiled kernel (runtime::KernelFn):
//
//   void fn(void* const* buffers, int64_t begin, int64_t end);
//
// `buffers` holds the kernel's inputs in slot order, then its outputs, each a pointer to element 0
// of a 64-byte aligned buffer (the pool's blocks are). Outputs must not overlap any input or each
// other; inputs may overlap one another (they are only read).
//
// [begin, end) is the part of the kernel's parallel range [0, parallel_extent(k)) that this call
// computes; calls on disjoint ranges may run concurrently:
//   - num_outer >= 1: the range is the row-major flattening of the first parallel_axes(k) domain
//     axes (all of every other axis per point). Usually that is axis 0 alone; leading axes are
//     flattened together until the range has enough points to split (a [2, 1M] domain is split
//     over its 2M points, not into 2 chunks).
//   - a split reduction (kernel_scratch_bytes(k) > 0: a reduction with at most 8 outputs, a
//     full reduction included, and many reduced points per output): the range is
//     outputs x parts, point o * parts + p being part p of the row-major reduced range of
//     output o. Each part's partial result goes to the scratch block,
//     buffers[num_inputs + num_outputs], which the caller allocates (8-byte aligned,
//     kernel_scratch_bytes(k) bytes) and zero-fills before the first call; the call that
//     completes an output's last part combines its partials in part order and stores the
//     output. The number of parts depends only on the kernel, so the result is the same for
//     every way of splitting the range and every thread count.
//   - otherwise num_outer == 0 (a small full reduction, or a kernel over a 0-d domain): a
//     single output point; the range is [0, 1): fn(buffers, 0, 1) runs it.
//   An empty range does nothing.
//
// Semantics follow the reference evaluator (ir/ops/*.cpp) op by op, with these differences:
//   - transcendental functions (exp, log, tanh, sigmoid, sin, cos, pow) are polynomial
//     approximations (codegen/llvm/vecmath.h), accurate to a few ULPs, not correctly rounded;
//   - floating sums and products accumulate in the kernel's accumulator dtype (Float32 for a
//     Float32 sum; the reference uses double) in an order the vectorizer chooses;
//   - float max/min reductions may return -0 where the reference returns +0 (or the reverse)
//     when the extreme is a zero of both signs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compiler/kernel_ir.h"
#include "runtime/cpu_jit.h"
#include "runtime/program.h"

namespace smelt::compiler {

// Bump whenever the generated code changes meaning or ABI: it is part of every JIT cache key, so
// objects cached on disk by an older code generator are never reused.
inline constexpr int kCpuCodegenVersion = 13;  // 13: in-place outputs

// Compiles `kernels` together, in one LLVM module (one optimization and codegen run), and
// returns one entry point per kernel, in order. Identical kernels share one function; a set of
// kernels compiled before (in this process, or in another one through the disk cache) compiles
// nothing. Errors: InvalidArgument for a malformed kernel (see check_kernel), else the JIT's.
absl::StatusOr<std::vector<runtime::KernelFn>> jit_kernels(
    absl::Span<const Kernel* const> kernels, runtime::CpuJit& jit = runtime::cpu_jit());

// One kernel: jit_kernels({&k}).
absl::StatusOr<runtime::KernelFn> jit_kernel(const Kernel& k,
                                             runtime::CpuJit& jit = runtime::cpu_jit());

// The size of the range a caller splits (see the ABI above).
int64_t parallel_extent(const Kernel& k);
// How many leading domain axes the parallel range flattens (0 when num_outer == 0, and for a
// split reduction).
int parallel_axes(const Kernel& k);
// A chunk of the parallel range covers at least this many points. With OpenBLAS's pthreads
// and smelt's own pool, waking a worker cost 10-20 us on the 2-vCPU VM, about what 64K
// elementwise points take, so chunks were 64K (bench/RESULTS.md, "Accumulating products").
// On the OpenMP team the workers wait spinning in libgomp, and a chunk stays on the thread
// whose cache holds its rows (ThreadPool's chunk affinity): the MLP step's 32K-point ReLU
// backward after a row-split GEMM 12.8 -> 5.8 us on two 16K chunks, the step -1..-2 %
// (bench/RESULTS.md, "GEMM panels").
inline constexpr int64_t kMinChunkPoints = int64_t{1} << 14;
// The fewest range points worth one chunk: kMinChunkPoints points of work.
int64_t parallel_grain(const Kernel& k);
// Bytes of scratch a split reduction needs after its outputs in `buffers` (0: none).
int64_t kernel_scratch_bytes(const Kernel& k);

// Whether the code generator accepts `k`: operands refer to earlier expressions, dtypes agree
// with each expression kind and op, loads name a slot, reductions are complete, stages read only
// earlier stages, output expressions use only outer loop variables, the accumulator and the
// stages (all loop variables in a row kernel without a main reduction). InvalidArgument says what
// is wrong, naming the kernel and the expression.
absl::Status check_kernel(const Kernel& k);

// The name of `k`'s function in generated modules: "smelt_" and a digest of the kernel's
// structure (everything but its name), so equal kernels get equal symbols in every process.
std::string kernel_symbol(const Kernel& k);

// The LLVM IR of `k`'s function, as generated, or after the O3 pipeline for the host CPU
// (irdump --emit=llvm). A kernel check_kernel rejects gives "; error: " and the reason.
std::string emit_llvm_text(const Kernel& k, bool optimized = false);

}  // namespace smelt::compiler
