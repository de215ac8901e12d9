// \file The CUDA code generator: Kernel IR -> CUDA C++ for NVRTC. It reads the same kernel IR as
// the LLVM emitter (compiler/kernel_ir.h), so nothing above codegen knows which backend runs.
// This file only writes source text; runtime/cuda_api.h compiles and launches it.
//
// The shapes of code it writes, chosen per kernel (CudaStrategy):
//   - elementwise: a grid-stride loop over the flattened domain. When every output is stored
//     contiguously, each thread takes a vector of 16 bytes of output: contiguous inputs are read
//     and outputs written with one aligned vector access each (16-byte loads/stores), other
//     inputs element by element; a scalar loop takes the tail.
//   - thread per output: reductions over few elements loop serially in one thread per output.
//   - column: a reduction whose inputs are contiguous along the outputs (a sum over the batch
//     axis) gives each block 32 neighbouring outputs (coalesced reads) and 8 threads per output
//     that take every 8th reduced point, then combine through shared memory.
//   - block per output: a block's threads stride over the reduced points, then combine with
//     warp shuffles and one shared-memory step; thread 0 runs the epilogue and stores.
//   - split reduction: few outputs over many points (a full sum): `split` blocks per output each
//     reduce a chunk, write a partial to scratch memory, and the last block to finish (an atomic
//     ticket per output) combines the partials and stores. The launcher zeroes the tickets.
//   - row: a row kernel (Kernel::stages) gives each block one outer point (a row). Every stage is
//     a strided sweep over the row followed by a block reduction whose result is broadcast
//     through shared memory, so every thread has it for the next sweep (the row is read from
//     cache after the first). Then either the main reduction as in block per output, or a last
//     sweep in which every thread stores its points (coalesced along the innermost axis).
//   - thread per row: row kernels over few reduced points run every sweep serially in one thread
//     per row, with no synchronization at all.
// Index arithmetic is 32-bit when every index of the kernel fits, else 64-bit.
//
// Semantics follow the reference evaluator op by op (as the LLVM emitter does), except that
// float sums and products combine in a parallel order, and transcendental functions are CUDA's
// (expf, logf, tanhf, ... within a few ULPs; no approximate intrinsics, whose error grows with
// the argument).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "compiler/kernel_ir.h"

namespace smelt::compiler {

// Bump whenever the generated code changes meaning or ABI (part of every cache key, through the
// source text).
inline constexpr int kCudaCodegenVersion = 1;

// What the launch geometry is sized for.
struct CudaTarget {
  int multiprocessors = 132;  // an H100's
};

enum class CudaStrategy : uint8_t {
  kElementwise,
  kThreadPerOutput,
  kBlockPerOutput,
  kSplit,
  kColumn,
  kRow,
  kThreadPerRow,
};

// One kernel as CUDA C++. Parameters of the entry point, in order: the inputs (const T*), the
// outputs (T*), then for kSplit the scratch pointer (partials; `scratch_bytes`) and the ticket
// pointer (`ticket_bytes` of unsigned int, zero before the launch).
struct CudaKernel {
  std::string symbol;  // the extern "C" entry point: "smelt_" + the kernel's structural hash
  std::string code;    // the function (needs cuda_prelude() before it in the translation unit)
  CudaStrategy strategy = CudaStrategy::kElementwise;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  bool empty = false;    // nothing to compute (a zero-sized domain): launch nothing
  int vector_width = 1;  // points per thread and vector access (contiguous elementwise/reduction)
  bool index64 = false;  // 64-bit index arithmetic
  size_t scratch_bytes = 0;
  size_t ticket_bytes = 0;
};

// The definitions every kernel's code uses (wrapping integer math, NaN-propagating max/min,
// warp and block reductions); once per translation unit.
const std::string& cuda_prelude();

// The CUDA code of `k`. InvalidArgument for a kernel check_kernel rejects.
absl::StatusOr<CudaKernel> emit_cuda(const Kernel& k, const CudaTarget& target = {});

// A whole translation unit for `k` (prelude + kernel), with its launch plan as a comment: what
// irdump --emit=cuda prints. A rejected kernel gives "// error: " and the reason.
std::string emit_cuda_text(const Kernel& k, const CudaTarget& target = {});

}  // namespace smelt::compiler
