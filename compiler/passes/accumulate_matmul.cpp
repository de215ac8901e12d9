#include "compiler/passes/accumulate_matmul.h"

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "compiler/passes/rebuild.h"
#include "ir/attrs.h"

namespace smelt::compiler {
namespace {

using ir::Node;
using ir::NodePtr;
using ir::OpCode;

// A term of the sum: `node` times `scale`, where the term was node or mul(node, constant).
struct Scaled {
  const Node* node = nullptr;
  double scale = 1.0;
  bool via_mul = false;  // the term was a mul node (which then must have no other reader)
};

std::optional<double> constant_value(const Node* n) {
  if (n->op() != OpCode::Constant) return std::nullopt;
  return n->attrs().get_float("value");
}

Scaled scaled(const Node* term) {
  // A realized node keeps its op but not its operands: it is a leaf, not a mul.
  if (term->op() == OpCode::Mul && !term->is_leaf()) {
    const Node* x = term->inputs()[0].get();
    const Node* y = term->inputs()[1].get();
    if (std::optional<double> v = constant_value(y)) return {x, *v, true};
    if (std::optional<double> v = constant_value(x)) return {y, *v, true};
  }
  return {term, 1.0, false};
}

}  // namespace

ir::Graph accumulate_matmul(const ir::Graph& graph, int64_t* rewritten) {
  // How many operand slots and outputs read each node: the product (and a mul scaling it) must
  // be read by the sum alone, or the rewrite would compute it twice.
  absl::flat_hash_map<const Node*, int> readers;
  for (const Node* n : ir::topo_order(graph.outputs)) {
    for (const NodePtr& in : n->inputs()) ++readers[in.get()];
  }
  for (const NodePtr& out : graph.outputs) ++readers[out.get()];
  auto only_read_once = [&](const Node* n) { return readers[n] == 1; };

  int64_t count = 0;
  ir::Graph out = rebuild_graph(graph, [&](const Node& n, const std::vector<NodePtr>& in) {
    if (n.op() != OpCode::Add || !n.device().is_cpu() || !is_floating(n.dtype())) {
      return NodePtr();
    }
    for (int j = 0; j < 2; ++j) {
      const Scaled product = scaled(n.inputs()[j].get());
      const Scaled addend = scaled(n.inputs()[1 - j].get());
      if (product.node->op() != OpCode::Matmul || product.node->is_leaf() ||
          !only_read_once(product.node)) {
        continue;
      }
      if (product.via_mul && !only_read_once(n.inputs()[j].get())) continue;
      if (addend.via_mul && !only_read_once(n.inputs()[1 - j].get())) continue;
      const Node* x = addend.node;
      // BLAS reads the addend as a whole buffer of the result's type; a zero beta would make
      // BLAS ignore it, NaNs included, where the sum would propagate them.
      if (!x->is_leaf() || x->type() != n.type() || product.node->type() != n.type()) continue;
      if (addend.scale == 0 || !std::isfinite(addend.scale) || !std::isfinite(product.scale)) {
        continue;
      }
      // The rebuilt nodes: a term's operands keep their slots when it is rebuilt.
      auto rebuilt = [&](int term, const Scaled& s) -> NodePtr {
        if (!s.via_mul) return in[term];
        const int slot = n.inputs()[term]->inputs()[0].get() == s.node ? 0 : 1;
        return in[term]->inputs()[slot];
      };
      const NodePtr m = rebuilt(j, product);
      ++count;
      return make_or_die(OpCode::Addmm, {m->inputs()[0], m->inputs()[1], rebuilt(1 - j, addend)},
                         {{"alpha", product.scale}, {"beta", addend.scale}}, n.device());
    }
    return NodePtr();
  });
  if (rewritten != nullptr) *rewritten = count;
  return out;
}

}  // namespace smelt::compiler
