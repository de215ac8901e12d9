// A compiled program: the calls (fused kernels, BLAS matmuls, gathers) of one realization over
// numbered values, and how to run it. The compiler builds these; the runtime knows nothing of the
// graph they came from.
#pragma once

#include <smelt/device.h>
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
  int64_t scratch_bytes = 0;    // > 0: a zeroed block passed after the outputs (split reductions)
  // (input value, output value): the kernel computes the output in the input's memory when the
  // input is donated and read here last (compiler Kernel::in_place), else in a copy of it.
  std::vector<std::pair<int32_t, int32_t>> in_place;
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

// out[batch...] = a[batch...] (m x k) @ b[batch...] (k x n); out contiguous. With an addend
// (addmm): out = alpha (a @ b) + beta addend, the addend contiguous and of out's size; when it
// shares out's buffer, BLAS accumulates in place.
struct MatmulCall {
  DType dtype = DType::Float32;
  MatrixOperand a, b;
  int32_t out = -1;
  int32_t addend = -1;
  double alpha = 1.0;
  double beta = 0.0;
  std::vector<int64_t> batch_shape;
  int64_t m = 0, n = 0, k = 0;
};

// index_select: out [outer, num_indices, inner] = src [outer, dim_size, inner] at the indices.
// With `add`, index_add, its transpose: out [outer, dim_size, inner] is zero but for the slices of
// src [outer, num_indices, inner] added at their indices.
struct GatherCall {
  int32_t src = -1, index = -1, out = -1;
  size_t element_size = 4;
  DType dtype = DType::Float32;  // what an add sums
  bool add = false;
  DType index_dtype = DType::Int64;
  int64_t outer = 1, dim_size = 0, inner = 1, num_indices = 0;
  int64_t dim = 0;  // for the error message
};

// A kernel compiled for a CUDA device (compiler/codegen/cuda): launched on smelt's stream with
// the buffers of `args` (inputs, then outputs) as its parameters, then, for a split reduction,
// a scratch block of `scratch_bytes` and `ticket_bytes` of zeroed tickets.
struct CudaKernelCall {
  void* fn = nullptr;  // the loaded function (runtime/cuda_api.h's Function)
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  bool empty = false;  // nothing to compute: launch nothing
  size_t scratch_bytes = 0;
  size_t ticket_bytes = 0;
  std::vector<int32_t> args;
  std::string name;
};

// conv2d / max_pool2d and their backward ops (ir/ops/conv.cpp) over contiguous NCHW buffers.
// `a` and `b` are the IR op's operands in order (b = -1 for max_pool2d); the geometry is the
// image [batch, channels, in_h, in_w], the kernel, and the output grid.
struct WindowCall {
  enum class Op : uint8_t { kConv, kConvBackwardInput, kConvBackwardWeight, kPool, kPoolBackward };
  Op op = Op::kConv;
  DType dtype = DType::Float32;
  int32_t a = -1, b = -1, out = -1;
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0;  // conv: O; pooling: channels
  int64_t kernel_h = 1, kernel_w = 1, out_h = 0, out_w = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
};

// cumsum or argsort (ir/ops/scan.cpp) of a contiguous [outer, dim_size, inner] buffer along its
// middle axis; `reverse` is cumsum's from-the-end and argsort's descending. `dtype` is the
// source's (argsort writes Int64). runtime/scan.h runs it.
struct ScanCall {
  enum class Op : uint8_t { kCumsum, kArgSort };
  Op op = Op::kCumsum;
  DType dtype = DType::Float32;
  int32_t src = -1, out = -1;
  int64_t outer = 1, dim_size = 0, inner = 1;
  bool reverse = false;
  int64_t k = 0;  // argsort: the first k positions of each line (out is [outer, k, inner])
};

using Call = std::variant<KernelCall, MatmulCall, GatherCall, CudaKernelCall, WindowCall, ScanCall>;

struct Program {
  Device device = Device::cpu();    // where every value lives and every call runs
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

// Runs `program` on its device's buffers. Returns the output buffers, or an error (out of
// memory, an index out of range) with every temporary returned to the pool and no output
// produced.
//
// `donated` (empty, or one flag per input): inputs whose buffers the caller gives up. An addmm
// whose addend is a donated input it reads last accumulates in that buffer (which becomes its
// output) instead of copying it; a kernel's in-place output (KernelCall::in_place) likewise
// takes its donated input's buffer, else a copy of the input. Not when another input in the same
// memory (a view) is read by that call or a later one. Every value and scratch block from the
// first such call on is allocated before it runs, and none is done when a gather or window op
// (which can fail while running) follows, so an error still leaves every input as it was.
absl::StatusOr<std::vector<base::BufferPtr>> execute(const Program& program,
                                                     absl::Span<const base::BufferPtr> inputs,
                                                     absl::Span<const bool> donated = {});
// The CUDA half of execute() (runtime/executor_cuda.cpp).
absl::StatusOr<std::vector<base::BufferPtr>> execute_cuda(const Program& program,
                                                          absl::Span<const base::BufferPtr> inputs);
// The CUDA source of that executor's built-in kernels (gather, index_add, strided copies), so a
// test can compile them without a GPU.
const char* cuda_builtins_source();

// Calls `f(value)` for every value `call` reads or writes.
template <typename F>
void for_each_operand(const Call& call, F&& f) {
  if (const auto* k = std::get_if<KernelCall>(&call)) {
    for (int32_t v : k->args) f(v);
  } else if (const auto* m = std::get_if<MatmulCall>(&call)) {
    f(m->a.value);
    f(m->b.value);
    if (m->addend >= 0) f(m->addend);
    f(m->out);
  } else if (const auto* g = std::get_if<GatherCall>(&call)) {
    f(g->src);
    f(g->index);
    f(g->out);
  } else if (const auto* c = std::get_if<CudaKernelCall>(&call)) {
    for (int32_t v : c->args) f(v);
  } else if (const auto* w = std::get_if<WindowCall>(&call)) {
    f(w->a);
    if (w->b >= 0) f(w->b);
    f(w->out);
  } else if (const auto* s = std::get_if<ScanCall>(&call)) {
    f(s->src);
    f(s->out);
  }
}

// Counts of calls run, shared by both executors.
void count_kernel_launch();
void count_library_call();

ExecStats exec_stats();

}  // namespace smelt::runtime
