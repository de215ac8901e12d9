// \file The simplify pass: a cheaper graph computing the same outputs.
//
// One walk in topological order rebuilds every node from its simplified operands, applying:
//   - common-subexpression elimination: nodes with the same op, attributes and operands become
//     one (autodiff's gradients repeat forward subexpressions, e.g. both factors of d * d);
//   - constant folding: an elementwise op whose operands are all one value (a 0-d constant, seen
//     through the reshape/expand that broadcast it) becomes that value, computed by the op's
//     reference evaluation (so folding never changes what the op means);
//   - algebraic identities: x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1, neg(neg(x)), a cast to the
//     operand's own dtype (these ignore the sign of a zero: x + 0 keeps -0 where IEEE gives +0);
//   - view chains: reshape of reshape, permute of permute (composed), and views that change
//     nothing (reshape/expand to the same shape, the identity permutation, a full slice);
//   - a transposed product: permute(A B) swapping the last two dims, where nothing else reads
//     A B, becomes B^T A^T, which the matmul reads through strides instead of a copy kernel
//     writing the transpose (autodiff's weight gradients).
// Leaves (inputs, realized values) are kept as they are, the same nodes, so a caller's bindings
// of leaves to data still hold; nodes no output reaches are dropped.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace smelt::compiler {

struct SimplifyStats {
  int64_t merged = 0;               // nodes found equal to an earlier one (CSE)
  int64_t folded = 0;               // elementwise ops replaced by a constant
  int64_t identities = 0;           // ops replaced by an operand
  int64_t views = 0;                // view chains merged or no-op views removed
  int64_t transposed_products = 0;  // permute(A B) rewritten as B^T A^T
};

// The simplified graph: outputs[i] computes what graph.outputs[i] does. An output may come out
// as a leaf, a constant view, or the same node as another output.
ir::Graph simplify(const ir::Graph& graph, SimplifyStats* stats = nullptr);

}  // namespace smelt::compiler
