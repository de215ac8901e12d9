#include "compiler/passes/lift_constants.h"

#include <utility>

#include "compiler/passes/rebuild.h"
#include "ir/attrs.h"

namespace smelt::compiler {

LiftedConstants lift_constants(const ir::Graph& graph,
                               const absl::flat_hash_set<const ir::Node*>& lift) {
  LiftedConstants out;
  out.graph = rebuild_graph(graph, [&](const ir::Node& n, const std::vector<ir::NodePtr>&) {
    if (n.op() != ir::OpCode::Constant || !lift.contains(&n)) return ir::NodePtr();
    ir::NodePtr input = make_or_die(ir::OpCode::Input, {},
                                    {{"dtype", n.dtype()}, {"shape", ir::IntList{}}}, n.device());
    out.inputs.emplace_back(input.get(), &n);
    ir::NodePtr replacement = std::move(input);
    if (n.rank() > 0) {
      const ir::IntList shape(n.shape().begin(), n.shape().end());
      const ir::IntList ones(shape.size(), 1);
      replacement = make_or_die(ir::OpCode::Reshape, {replacement}, {{"shape", ones}}, n.device());
      replacement = make_or_die(ir::OpCode::Expand, {replacement}, {{"shape", shape}}, n.device());
    }
    return replacement;
  });
  return out;
}

}  // namespace smelt::compiler
