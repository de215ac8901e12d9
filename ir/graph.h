// Whole-graph views: the one iterative topological walk every pass and printer uses.
#pragma once

#include <vector>

#include "absl/types/span.h"
#include "ir/node.h"

namespace smelt::ir {

// A graph is the values someone asked for; its nodes are everything they reach.
struct Graph {
  std::vector<NodePtr> outputs;
};

// Every node reachable from `roots`, inputs before users, each once; ties broken by operand
// order, so the order is deterministic. Iterative (no recursion), so depth is unbounded.
// Realized nodes have no inputs, so the walk stops at them.
std::vector<Node*> topo_order(absl::Span<const NodePtr> roots);

// topo_order through grad_inputs(): it also walks the inputs realized nodes kept for autograd.
// The verifier checks those too.
std::vector<Node*> grad_topo_order(absl::Span<const NodePtr> roots);

}  // namespace smelt::ir
