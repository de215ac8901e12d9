// conv2d and max_pool2d on the CPU (the WindowCalls of a compiled program; the ops are defined in
// ir/ops/conv.cpp). Float32 stride-1 convolutions run on runtime/conv_direct.cpp's AVX-512
// kernels where they apply; the others are im2col + OpenBLAS GEMMs (one over the whole batch, or
// one per image for small ones); pooling walks each window. Float32/Float64 (max_pool2d forward
// also Int32/Int64).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/program.h"

namespace smelt::runtime {

// Runs `call` with its operand buffers (`b` is null for max_pool2d) into `out`. Scratch buffers
// come from the CPU pool (ResourceExhausted if it is exhausted); the index work runs on the
// default thread pool and the GEMMs on OpenBLAS's threads, one after the other.
absl::Status run_window(const WindowCall& call, const void* a, const void* b, void* out);

// The CUDA twin (runtime/conv_cuda.cpp): built-in NVRTC kernels (im2col, col2im, layout moves,
// max_pool2d forward/backward) + cuBLAS, queued on smelt's stream with device pointers.
absl::Status run_window_cuda(const WindowCall& call, const void* a, const void* b, void* out,
                             int device);

// The CUDA source of those kernels and their names, so a test can compile them without a GPU.
const char* conv_cuda_source();
std::vector<std::string> conv_cuda_kernel_names();

// How many elements `call` writes.
int64_t window_out_elements(const WindowCall& call);

}  // namespace smelt::runtime
