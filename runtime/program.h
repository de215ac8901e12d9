// A compiled program: the calls (fused kernels, BLAS matmuls, gathers) of one realization over
// numbered values, and how to run it. The compiler builds these; the runtime knows nothing of the
// graph they came from.
#pragma once

#include <smelt/dtype.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/buffer.h"

namespace smelt::runtime {

// A JIT-compiled kernel: reads/writes `buffers` (inputs, then outputs) for the points
// [begin, end) of its parallel range.
using KernelFn = void (*)(void* const* buffers, int64_t begin, int64_t end);

struct KernelCall {
  KernelFn fn = nullptr;
  std::vector<int32_t> args;    // value ids: inputs then outputs
  int64_t parallel_extent = 1;  // the range split across threads
  int64_t grain = 1;            // minimum points per chunk
  std::string name;
};

// One strided matrix operand: element (batch..., r, c) is at
// offset + sum(batch_i * batch_strides_i) + r * row_stride + c * col_stride.
struct MatrixOperand {
  int32_t value = -1;
  int64_t offset = 0;
  std::vector<int64_t> batch_strides;
  int64_t row_stride = 0;
  int64_t col_stride = 0;
};

// out[batch...] = a[batch...] (m x k) @ b[batch...] (k x n); out contiguous.
struct MatmulCall {
  DType dtype = DType::Float32;
  MatrixOperand a, b;
  int32_t out = -1;
  std::vector<int64_t> batch_shape;
  int64_t m = 0, n = 0, k = 0;
};

// out = src.index_select(dim, index), with src viewed as [outer, dim_size, inner].
struct GatherCall {
  int32_t src = -1, index = -1, out = -1;
  size_t element_size = 4;
  DType index_dtype = DType::Int64;
  int64_t outer = 1, dim_size = 0, inner = 1, num_indices = 0;
  int64_t dim = 0;  // for the error message
};

using Call = std::variant<KernelCall, MatmulCall, GatherCall>;

struct Program {
  std::vector<size_t> value_bytes;  // size of every value, by id
  std::vector<int32_t> inputs;      // ids bound to the caller's buffers, in order
  std::vector<int32_t> outputs;     // ids returned to the caller, in order
  std::vector<Call> calls;
  // last_use[id]: index of the last call that reads the value; the executor frees temporaries
  // right after it, so the pool hands their memory to later calls (liveness-planned reuse).
  std::vector<int32_t> last_use;

  // Fills last_use from the calls; call once after building.
  void plan_lifetimes();
};

struct ExecStats {
  uint64_t kernels_launched = 0;
  uint64_t library_calls = 0;
};

// Runs `program` on CPU buffers. Returns the output buffers, or an error (out of memory, an
// index out of range) with every temporary returned to the pool and no output produced.
absl::StatusOr<std::vector<base::BufferPtr>> execute(const Program& program,
                                                     absl::Span<const base::BufferPtr> inputs);

ExecStats exec_stats();

}  // namespace smelt::runtime
