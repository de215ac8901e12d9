// \file The expand-pooling pass: max_pool2d over plain windows (2x2, stride 2, no padding or
// dilation) becomes elementwise and view ops.
//
// As a library call (runtime/conv) it is a pass over memory of its own with a scalar argmax
// loop; expanded, fusion merges it with its producers (the ReLU before the pool) and the code
// generators vectorize it: a [64, 32, 28, 28] ReLU + pool took 0.57 ms instead of 1.83 ms
// (bench/RESULTS.md, session 4). The value keeps PyTorch's rule exactly: the first element of
// the window starts the maximum, a later one replaces it when greater or NaN.
//
// The gradient (max_pool2d_backward) stays a library call: expanded the same way (selects that
// route the gradient to each window's winner, assembled by concats) it ran 4x slower than the
// library's (11.5 ms against 3 ms on that shape): every input element recomputes its window
// through 64-bit div/mod index math and gathers. Other geometries stay library calls too.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace smelt::compiler {

// `graph` with every plain max_pool2d expanded; `expanded` (if given) counts them.
ir::Graph expand_pooling(const ir::Graph& graph, int64_t* expanded = nullptr);

}  // namespace smelt::compiler
