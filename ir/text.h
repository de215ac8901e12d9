// The IR text format (.smir): prints a graph and parses it back exactly, like LLVM's .ll.
//
//   # smelt IR v1
//   %0 = input f32[2, 3]
//   %1 = constant f32[] {value=0.5}
//   %2 = reshape f32[1, 1] %1
//   %3 = expand f32[2, 3] %2
//   %4 = mul f32[2, 3] %0, %3
//   %5 = sum f32[3] %4 {axes=[0], keepdim=false}
//   return %4, %5
//
// One node per line: `%name = op dtype[dims] operands {attrs}`, inputs before users; `return`
// lists the graph's outputs in order. An attribute named `dtype` or `shape` that equals the
// node's own dtype or shape is implied by the type and not written. A realized node is printed
// as an `input`: it is data now. Lines whose first non-blank character is `#` are comments, and
// a `#` after a statement starts one too.
//
// print_graph(parse_graph(print_graph(g))) == print_graph(g), and the parsed graph has the same
// ops, types, attributes and topology as g (every node on the CPU: the text has no devices).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ir/attrs.h"
#include "ir/graph.h"
#include "ir/node.h"

namespace smelt::ir {

// The header line print_graph starts with.
inline constexpr absl::string_view kTextHeader = "# smelt IR v1";

// The graph as text: the header, one line per node, then `return`.
std::string print_graph(const Graph& g);

// Parses the text format. Every node is built with Node::make, so each op's type rule runs, and
// the inferred type must equal the printed one. Nodes that `return` does not reach are dropped.
// Errors are InvalidArgument, "line L, column C: <what>".
absl::StatusOr<Graph> parse_graph(absl::string_view text);

// The nodes print_graph writes, in its order: `%i` is the i-th. Inputs come before their users;
// the walk is depth-first from the outputs in operand order (deterministic) and iterative, and it
// stops at realized nodes (their kept inputs, if any, are not part of the printed graph).
std::vector<const Node*> print_order(const Graph& g);

// "f32[2, 3]"; "f32[]" for a scalar.
std::string type_str(const TypeInfo& type);

// An attribute value as the text format writes it: `3`, `true`, `2.0`, `1e-05`, `inf`, `[1, 2]`,
// `f32`. Floats always have a '.', an exponent, or are inf/nan, and parse back to the same double.
std::string attr_value_str(const AttrValue& value);

// The attributes printed for `n`: "{axes=[0], keepdim=false}" sorted by name, leaving out those
// implied by its type; "" when there are none (and always for a realized node).
std::string node_attrs_str(const Node& n);

}  // namespace smelt::ir
