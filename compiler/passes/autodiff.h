// \file Reverse-mode automatic differentiation over the IR.
//
// Appends gradient nodes to a graph: for outputs y_i with seed gradients s_i, the gradient of
// sum_i <s_i, y_i> with respect to each requested node. Each node's rule is its op's VJP in the
// registry (OpDef::vjp, next to the op in ir/ops/<family>.cpp); this pass only orders the work
// and sums the gradients that meet. The result is lazy IR like any other: nothing is computed,
// and the compiler fuses the backward graph with the forward one and with whatever uses the
// gradients (an optimizer update).
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ir/node.h"

namespace smelt::compiler {

struct AutodiffOptions {
  // Whether gradients flow from a node into its operands. Null: every node except sources and
  // the `wrt` nodes themselves, i.e. plain reachability (what irdump uses). The frontend passes
  // its requires-grad bookkeeping (GradRole::kInterior), so detached values, NoGradGuard results
  // and leaves stop the flow.
  std::function<bool(const ir::Node&)> flows_through;
  // Called once with each node's summed gradient before it is propagated further; it may replace
  // it (e.g. with a realized copy: the frontend's depth trigger, which keeps a 100,000-deep
  // backward chain from becoming one 100,000-deep pending graph).
  std::function<void(ir::NodePtr& grad)> on_gradient;
};

// The gradient of sum_i <seeds[i], outputs[i]> with respect to each node of `wrt` (same order),
// or null for a node the outputs do not depend on (through differentiable paths). Seeds have the
// type of their output. Gradients reach only floating values: integer and Bool operands (indices,
// conditions) get none. Nodes on branches that lead to no `wrt` node get no gradient nodes at all.
// Gradients that meet at a node are summed once, by a balanced tree of adds.
//
// Iterative (no recursion), so a 100,000-deep chain differentiates without a deep stack.
// Errors: FailedPrecondition if a node the gradient must flow through has been realized without
// keeping its inputs (its graph is gone); InvalidArgument for mismatched seeds; Internal for an
// op without a VJP rule.
absl::StatusOr<std::vector<ir::NodePtr>> autodiff(absl::Span<const ir::NodePtr> outputs,
                                                  absl::Span<const ir::NodePtr> seeds,
                                                  absl::Span<const ir::NodePtr> wrt,
                                                  const AutodiffOptions& options = {});

}  // namespace smelt::compiler
