// The geometry of a sliding-window op (conv2d, max_pool2d and their backward ops, ir/ops/conv.cpp):
// the image, the kernel and the output grid, read from a typed node. The type rules, the
// reference evaluator and the compiler (which turns it into a runtime::WindowCall) share it, so
// they cannot disagree about which input is the image.
#pragma once

#include <cstdint>

#include "absl/types/span.h"
#include "ir/attrs.h"
#include "ir/op_registry.h"
#include "ir/shape.h"

namespace smelt::ir {

struct WindowGeometry {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0;  // the image [N, C, H, W]
  int64_t out_channels = 0;                             // conv: O; pooling: C
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
};

// One output extent: floor((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1, or <= 0 when
// the dilated kernel does not fit the padded input.
int64_t window_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

// The geometry of `op` applied to operands of shapes `in` with result `out` (already
// type-checked).
WindowGeometry window_geometry(OpCode op, absl::Span<const Shape> in, const Shape& out,
                               const Attrs& attrs);

}  // namespace smelt::ir
