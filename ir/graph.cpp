#include "ir/graph.h"

#include "absl/container/flat_hash_set.h"

namespace smelt::ir {

namespace {

template <const NodeList& (Node::*kInputs)() const>
std::vector<Node*> walk(absl::Span<const NodePtr> roots) {
  std::vector<Node*> order;
  absl::flat_hash_set<const Node*> visited;
  // Room for a typical small graph up front, so the walk does not rehash as it grows.
  order.reserve(64);
  visited.reserve(64);
  // (node, index of the next input to visit)
  std::vector<std::pair<Node*, size_t>> stack;
  stack.reserve(32);
  for (const NodePtr& root : roots) {
    if (root == nullptr || !visited.insert(root.get()).second) continue;
    stack.emplace_back(root.get(), 0);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < (node->*kInputs)().size()) {
        Node* in = (node->*kInputs)()[next++].get();
        if (visited.insert(in).second) stack.emplace_back(in, 0);
      } else {
        order.push_back(node);
        stack.pop_back();
      }
    }
  }
  return order;
}

}  // namespace

std::vector<Node*> topo_order(absl::Span<const NodePtr> roots) {
  return walk<&Node::inputs>(roots);
}

std::vector<Node*> grad_topo_order(absl::Span<const NodePtr> roots) {
  return walk<&Node::grad_inputs>(roots);
}

}  // namespace smelt::ir
