// Direct float32 convolutions for stride 1 and dilation 1 on AVX-512 CPUs: the forward
// convolution and both backward ones with no columns matrix and no BLAS call (the three
// WindowCall conv ops of runtime/conv.cpp, which falls back to im2col + OpenBLAS elsewhere).
#pragma once

#include "absl/status/status.h"
#include "runtime/program.h"

namespace smelt::runtime {

// True when `call` (kConv, kConvBackwardInput or kConvBackwardWeight) can run here: Float32,
// stride 1, dilation 1, padding <= kernel - 1 on both axes, a batch of at least one image per
// thread (images are what the threads split), and AVX-512F on this CPU.
bool direct_conv_applies(const WindowCall& call);

// Runs `call` with the operands of runtime/conv.cpp's run_window (`a`, `b`) into `out`.
absl::Status run_direct_conv(const WindowCall& call, const float* a, const float* b, float* out);

}  // namespace smelt::runtime
