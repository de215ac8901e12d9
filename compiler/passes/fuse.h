// Fusion: decides which nodes of a pending graph get a buffer of their own ("materialized") and
// why. Every other non-leaf node is computed inline, inside the kernel of each materialized node
// that uses it. Lowering (compiler/lower.h) turns each materialized node into one kernel (or a
// library call), so the materialized set *is* the kernel partition.
//
// Needs: a pending graph (leaves are realized nodes or inputs). Guarantees: every cut has a
// reason; nothing that contains a reduction or a matmul is ever computed twice; a kernel holds at
// most one main reduction, plus (row kernels) up to kMaxStages reductions over the same reduced
// axes whose results are broadcast back along them; kernels stay under the input and size caps.
//
// Row kernels: a reduction whose result is only broadcast back over the axes it reduced and
// combined, elementwise, with values of its input's shape (softmax's max and sum, a
// normalization's mean and variance) runs as a *stage* of the kernel that consumes it: one
// sweep over each row before the kernel's own work, so the row is read from memory once and
// from cache after that, instead of once per reduction kernel.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ir/graph.h"

namespace smelt::compiler {

struct FusionOptions {
  bool enabled = true;         // false: every op is its own kernel (eager-style lowering)
  int max_kernel_inputs = 16;  // distinct buffers one kernel may read
  int max_kernel_nodes = 192;  // IR nodes one kernel may compute inline
  // A value shared by several users is recomputed below this cost (one exp plus a few cheap ops:
  // softmax's exp(x - max) feeds both the sum and the division without a buffer of its own).
  int recompute_cost = 12;
  // Row kernels: at most this many stages per kernel, and rows (the reduced points of one outer
  // point) of at most this many bytes, so that a row read by the first sweep is still in cache
  // for the next ones. 0 stages: no row kernels.
  int max_stages = 4;
  int64_t max_row_bytes = 512 * 1024;
  // Multi-output kernels: at most this many outputs per kernel (1: none).
  int max_outputs = 8;
};

struct FusionPlan {
  // The pending nodes, inputs before users (ir::topo_order of the graph's outputs).
  std::vector<ir::Node*> order;
  // Materialized nodes and why each is a kernel boundary.
  absl::flat_hash_map<const ir::Node*, std::string> materialized;
  // A reduction fused as the prologue of a consumer's kernel: reduction -> that consumer
  // (materialized; its kernel computes the reduction and then the elementwise ops after it).
  absl::flat_hash_map<const ir::Node*, const ir::Node*> epilogue_of;
  // A reduction computed as a stage of a row kernel: reduction -> that kernel's materialized node.
  absl::flat_hash_map<const ir::Node*, const ir::Node*> stage_of;
  // Multi-output kernels: materialized elementwise nodes of one shape computed by one kernel,
  // which runs where the last of them is in `order`: member -> that last one (the leader; it
  // is not a key itself). An optimizer's new state and parameter (Adam's m, v and p) read the
  // gradient once, and a member read by a later one is computed, not loaded, there.
  absl::flat_hash_map<const ir::Node*, const ir::Node*> grouped_into;

  bool is_materialized(const ir::Node* n) const { return materialized.contains(n); }
  // Number of kernels and library calls the plan makes.
  int num_kernels() const { return static_cast<int>(materialized.size() - grouped_into.size()); }
};

FusionPlan fuse(const ir::Graph& graph, const FusionOptions& options = {});

// The plan as text: the graph (irdump's format) with each materialized node marked by its kernel
// number and reason (irdump --after=fusion).
std::string fusion_plan_to_string(const ir::Graph& graph, const FusionPlan& plan);

}  // namespace smelt::compiler
