#include "compiler/passes/lift_constants.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "ir/attrs.h"

namespace smelt::compiler {
namespace {

ir::NodePtr make_or_die(ir::OpCode op, std::vector<ir::NodePtr> inputs, ir::Attrs attrs,
                        Device device) {
  // Rebuilding a node that was valid over operands of the same types cannot fail.
  absl::StatusOr<ir::NodePtr> n = ir::Node::make(op, std::move(inputs), std::move(attrs), device);
  if (!n.ok()) std::abort();
  return *std::move(n);
}

}  // namespace

LiftedConstants lift_constants(const ir::Graph& graph,
                               const absl::flat_hash_set<const ir::Node*>& lift) {
  LiftedConstants out;
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
    } else if (n->op() == ir::OpCode::Constant && lift.contains(n)) {
      ir::NodePtr input = make_or_die(
          ir::OpCode::Input, {}, {{"dtype", n->dtype()}, {"shape", ir::IntList{}}}, n->device());
      out.inputs.emplace_back(input.get(), n);
      replacement = std::move(input);
      if (n->rank() > 0) {
        const ir::IntList shape(n->shape().begin(), n->shape().end());
        const ir::IntList ones(shape.size(), 1);
        replacement =
            make_or_die(ir::OpCode::Reshape, {replacement}, {{"shape", ones}}, n->device());
        replacement =
            make_or_die(ir::OpCode::Expand, {replacement}, {{"shape", shape}}, n->device());
      }
    } else {
      bool same = true;
      std::vector<ir::NodePtr> inputs;
      inputs.reserve(n->inputs().size());
      for (const ir::NodePtr& in : n->inputs()) {
        const ir::NodePtr& r = rebuilt.at(in.get());
        same = same && r == in;
        inputs.push_back(r);
      }
      replacement =
          same ? originals.at(n) : make_or_die(n->op(), std::move(inputs), n->attrs(), n->device());
    }
    rebuilt.emplace(n, std::move(replacement));
  }
  for (const ir::NodePtr& root : graph.outputs) out.graph.outputs.push_back(rebuilt.at(root.get()));
  return out;
}

}  // namespace smelt::compiler
