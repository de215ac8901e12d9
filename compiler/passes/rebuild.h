// \file Rebuilding a graph with some nodes replaced: the walk the rewriting passes share
// (lift_constants, expand_pooling).
#pragma once

#include <functional>
#include <vector>

#include "ir/graph.h"

namespace smelt::compiler {

// Called for every non-leaf node of the graph, inputs before users, with its operands as
// rebuilt so far. Returns the node's replacement, or null to keep the node: it is then rebuilt
// over the new operands, or kept as it is when none of them changed.
using ReplaceFn =
    std::function<ir::NodePtr(const ir::Node& n, const std::vector<ir::NodePtr>& inputs)>;

// `graph` with the replacements `replace` makes. Leaves (inputs, realized values) stay the same
// nodes, so a caller's bindings of leaves to data still hold; outputs stay in order.
ir::Graph rebuild_graph(const ir::Graph& graph, const ReplaceFn& replace);

// Node::make for a node whose operands are typed like a valid original's: it cannot fail, and
// aborts if it does (a bug in the pass).
ir::NodePtr make_or_die(ir::OpCode op, std::vector<ir::NodePtr> inputs, ir::Attrs attrs,
                        Device device);

}  // namespace smelt::compiler
