// The IR verifier: re-checks what Node::make checked, on every node a graph reaches, so a graph
// that a pass (or a test) put together wrongly is caught at the pass that made it.
#pragma once

#include "absl/status/status.h"
#include "ir/graph.h"

namespace smelt::ir {

// Checks every node reachable from g's outputs (including the inputs a realized node keeps for
// autograd): the operand count, the attribute schema (each attribute present, of its kind, none
// unknown), the devices (every operand on the node's device), and that the op's type rule,
// re-run, gives the node's type. A realized node's buffer must be on its device and hold its
// type. Errors are InvalidArgument and name the node as print_graph numbers it, with its op:
// "verify: %3 (add): add: takes 2 operands, got 1".
absl::Status verify(const Graph& g);

}  // namespace smelt::ir
