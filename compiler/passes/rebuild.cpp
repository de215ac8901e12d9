#include "compiler/passes/rebuild.h"

#include <cstdlib>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace smelt::compiler {

ir::NodePtr make_or_die(ir::OpCode op, std::vector<ir::NodePtr> inputs, ir::Attrs attrs,
                        Device device) {
  absl::StatusOr<ir::NodePtr> n = ir::Node::make(op, std::move(inputs), std::move(attrs), device);
  if (!n.ok()) std::abort();
  return *std::move(n);
}

ir::Graph rebuild_graph(const ir::Graph& graph, const ReplaceFn& replace) {
  const std::vector<ir::Node*> order = ir::topo_order(graph.outputs);
  absl::flat_hash_map<const ir::Node*, ir::NodePtr> rebuilt;
  rebuilt.reserve(order.size());
  // The NodePtr of an original node, for the nodes kept as they are.
  absl::flat_hash_map<const ir::Node*, ir::NodePtr> originals;
  for (const ir::NodePtr& root : graph.outputs) originals.emplace(root.get(), root);
  for (const ir::Node* n : order) {
    for (const ir::NodePtr& in : n->inputs()) originals.emplace(in.get(), in);
  }
  for (const ir::Node* n : order) {
    ir::NodePtr replacement;
    if (n->is_leaf()) {
      replacement = originals.at(n);
    } else {
      bool same = true;
      std::vector<ir::NodePtr> inputs;
      inputs.reserve(n->inputs().size());
      for (const ir::NodePtr& in : n->inputs()) {
        const ir::NodePtr& r = rebuilt.at(in.get());
        same = same && r == in;
        inputs.push_back(r);
      }
      replacement = replace(*n, inputs);
      if (replacement == nullptr) {
        replacement = same ? originals.at(n)
                           : make_or_die(n->op(), std::move(inputs), n->attrs(), n->device());
      }
    }
    rebuilt.emplace(n, std::move(replacement));
  }
  ir::Graph out;
  for (const ir::NodePtr& root : graph.outputs) out.outputs.push_back(rebuilt.at(root.get()));
  return out;
}

}  // namespace smelt::compiler
