// \file The lift-constants pass: chosen constants become program inputs.
//
// A literal in the graph (`x * 0.5`) is compiled into the kernels, so a graph whose literals
// change from one realization to the next (a learning rate computed in user code, a per-step
// scale) would compile a new program every time. The program cache notices when a graph comes
// back with the same structure but other values in some constants (compiler/compile.cpp) and
// compiles it once more through this pass: each of those constants becomes a 0-d `input`
// (reshaped and expanded back to the constant's shape when it had one), and the realization
// binds the constant's current value to it, so every later value reuses the program.
//
// Every other node is rebuilt over the rewritten operands; leaves (inputs, realized values) stay
// the same nodes, so a caller's bindings of leaves to data still hold.
#pragma once

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "ir/graph.h"

namespace smelt::compiler {

struct LiftedConstants {
  ir::Graph graph;
  // (the new input, the constant of the original graph whose value it takes), one per lifted
  // constant, in the order the constants were found.
  std::vector<std::pair<const ir::Node*, const ir::Node*>> inputs;
};

// `graph` with every constant in `lift` replaced by an input placeholder (no buffer).
LiftedConstants lift_constants(const ir::Graph& graph,
                               const absl::flat_hash_set<const ir::Node*>& lift);

}  // namespace smelt::compiler
