#include "ir/dot.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ir/text.h"

namespace smelt::ir {
namespace {

// A DOT double-quoted string's contents.
std::string dot_escape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string print_dot(const Graph& g) {
  const std::vector<const Node*> order = print_order(g);
  absl::flat_hash_map<const Node*, size_t> number;
  std::string out =
      "digraph smelt {\n"
      "  node [shape=box, fontname=\"monospace\"];\n";
  for (size_t i = 0; i < order.size(); ++i) {
    const Node& n = *order[i];
    number[&n] = i;
    const bool realized = n.realized();
    std::string label = absl::StrCat("%", i, " ", realized ? op_name(OpCode::Input) : n.def().name,
                                     " ", type_str(n.type()));
    std::string attrs = node_attrs_str(n);
    if (!attrs.empty()) absl::StrAppend(&label, "\n", attrs);
    absl::StrAppend(&out, "  n", i, " [label=\"", dot_escape(label), "\"",
                    realized ? ", style=filled, fillcolor=lightgrey" : "", "];\n");
    if (realized) continue;
    const auto& inputs = n.inputs();
    for (size_t k = 0; k < inputs.size(); ++k) {
      absl::StrAppend(&out, "  n", number.at(inputs[k].get()), " -> n", i);
      if (inputs.size() > 1) absl::StrAppend(&out, " [label=\"", k, "\"]");
      out += ";\n";
    }
  }
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    if (g.outputs[k] == nullptr) continue;
    absl::StrAppend(&out, "  out", k, " [label=\"return ", k,
                    "\", shape=ellipse, style=bold];\n  n", number.at(g.outputs[k].get()),
                    " -> out", k, ";\n");
  }
  out += "}\n";
  return out;
}

}  // namespace smelt::ir
