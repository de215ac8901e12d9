// Graphviz output: a picture of a graph, for `irdump --format=dot | dot -Tsvg`.
#pragma once

#include <string>

#include "ir/graph.h"

namespace smelt::ir {

// A `digraph`: one box per node labelled "%N op dtype[shape]" (numbered as print_graph numbers
// them) with its printed attributes on a second line; edges go from operand to user, labelled
// with the operand index where a node has several; realized nodes are filled grey and labelled
// as inputs; each output gets an edge to a "return i" marker.
std::string print_dot(const Graph& g);

}  // namespace smelt::ir
