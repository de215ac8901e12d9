// \file The accumulate-matmul pass: a sum that adds a matrix product nothing else reads to a
// scaled buffer becomes one addmm, which BLAS computes in one call (C = alpha A B + beta C).
//
//   add(mul(X, beta), matmul(A, B))  ->  addmm(A, B, X) {alpha = 1, beta}
//
// with X a leaf (an input or a realized value) of the sum's type, beta a constant, and either
// term optionally scaled by a constant (alpha from the product's). This is the optimizer's
// update of a weight whose gradient is a product: SGD's momentum buffer `buf * momentum + grad`,
// where grad = g^T x. Unfused, BLAS first zeroes its output, writes the gradient, and a kernel
// reads it back with the buffer to write the new buffer; fused, BLAS scales the buffer in place of
// zeroing and adds the product into it, and when the executor hands the buffer's memory over (the
// buffer dies with this realization) there is no copy at all. On the 784-256-10 MLP step the
// weight's update kernel went from 142 to 89 us and the step from ~860 to ~820 us
// (bench/RESULTS.md, "Accumulating products").
//
// CPU graphs only: the CUDA executor has no addmm yet. SMELT_DISABLE_PASSES=accumulate turns the
// pass off.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace smelt::compiler {

// `graph` with the sums above rewritten; `rewritten` (if given) counts them.
ir::Graph accumulate_matmul(const ir::Graph& graph, int64_t* rewritten = nullptr);

}  // namespace smelt::compiler
