// Compilation of one realization: pending graph -> passes -> fusion -> lowering -> machine code
// -> a runtime::Program, plus the caches that make step 2..N of a training loop compile nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compiler/passes/fuse.h"
#include "ir/graph.h"
#include "runtime/program.h"

namespace smelt::compiler {

struct CompileOptions {
  // The simplify pass (compiler/passes/simplify.h) before fusion. SMELT_DISABLE_PASSES=simplify
  // turns it off for every compile (to bisect a wrong result, or to compare kernels).
  bool simplify = true;
  // The expand-pooling pass (compiler/passes/expand_pooling.h), before simplify;
  // SMELT_DISABLE_PASSES=expand_pooling keeps plain max pools as library calls.
  // SMELT_DISABLE_PASSES=rows turns row kernels off (FusionOptions::max_stages = 0),
  // SMELT_DISABLE_PASSES=multi_output multi-output kernels (FusionOptions::max_outputs = 1).
  bool expand_pooling = true;
  // Kernels' loop axes that every access walks as one are merged (coalesce_axes in
  // kernel_ir.h); SMELT_DISABLE_PASSES=coalesce keeps the output's and input's dims as loops.
  bool coalesce = true;
  // The accumulate-matmul pass (compiler/passes/accumulate_matmul.h), after simplify, on CPU
  // graphs; SMELT_DISABLE_PASSES=accumulate turns it off.
  bool accumulate_matmul = true;
  // Kernels computing an output in a donated leaf's memory (compile_program's `donated`);
  // SMELT_DISABLE_PASSES=in_place writes every output to a fresh block instead.
  bool in_place = true;
  FusionOptions fusion;
};

// The default options, with the environment's switches applied.
CompileOptions default_compile_options();

// The graph the backends compile from `graph`: simplified (when on), with every output that
// became a leaf, a constant or another output's node copied into a value of its own (each output
// of a program is a buffer it writes). Outputs stay in order.
ir::Graph prepare_graph(const ir::Graph& graph, const CompileOptions& options);

// A compiled realization. `leaf_positions[i]` is the position, in the topological order of the
// graph it was compiled from, of the leaf bound to program input i (or of a constant, for a
// program compiled with constants as inputs: the input takes the constant's value);
// `root_positions` likewise for the outputs. Positions (not node pointers) let one program serve
// every graph with the same structure.
struct CompiledProgram {
  runtime::Program program;
  std::vector<int32_t> leaf_positions;
  std::vector<int32_t> root_positions;
  int num_kernels = 0;
  int num_library_calls = 0;
};

// Compiles the graph whose nodes are `order` (ir::topo_order(graph.outputs)). `donated`: leaves
// whose memory the program may write (compiler::realize's `donated`). On the CPU, an
// elementwise kernel that reads such a leaf for the last time computes one of its outputs in the
// leaf's memory (Kernel::in_place; the executor checks at run time that it may).
absl::StatusOr<std::shared_ptr<const CompiledProgram>> compile_program(
    const ir::Graph& graph, absl::Span<ir::Node* const> order, const CompileOptions& options = {},
    absl::Span<const ir::Node* const> donated = {});

// The program-cache key of a pending graph: every node's op, type, attributes and the positions
// of its operands in `order`, leaves by type only, and the roots' positions. Equal keys mean the
// same program runs both graphs.
uint64_t program_key(const ir::Graph& graph, absl::Span<ir::Node* const> order);

// program_key for an `order` whose every node carries walk epoch `epoch` and its position in
// `order` (Node::walk_epoch/walk_position, set by the realization walk): the same key, computed
// without sorting or searching. A node reached from `order` that is not marked is not in it.
uint64_t program_key_marked(const ir::Graph& graph, absl::Span<ir::Node* const> order,
                            uint64_t epoch);

// program_key with every constant's value left out: graphs that differ only in the values of
// some literals have equal structure keys. The program cache uses it to notice per-realization
// numbers written as literals and compile them as inputs instead (compiler/passes/lift_constants).
uint64_t structure_key(const ir::Graph& graph, absl::Span<ir::Node* const> order);

struct CompileStats {
  uint64_t program_hits = 0;
  uint64_t program_misses = 0;
  uint64_t kernel_hits = 0;  // kernels found in the in-memory kernel cache
  uint64_t kernels_compiled = 0;
  double compile_seconds = 0;  // total time spent compiling programs
  // Programs compiled with some constants as inputs, because a graph of the same structure came
  // back with other values in them (counted in program_misses too).
  uint64_t programs_lifted = 0;
};
CompileStats compile_stats();

// The realize-time entry: looks the graph up in the program cache, compiling on a miss.
absl::StatusOr<std::shared_ptr<const CompiledProgram>> get_or_compile(
    const ir::Graph& graph, absl::Span<ir::Node* const> order);
// The same, with the graph's program_key computed already. With `donated` leaves (see
// compile_program), `key` must include donation_key of them: the program differs.
absl::StatusOr<std::shared_ptr<const CompiledProgram>> get_or_compile(
    const ir::Graph& graph, absl::Span<ir::Node* const> order, uint64_t key,
    absl::Span<const ir::Node* const> donated = {});
// `key` combined with which positions of `order` hold donated leaves (each node's
// walk_position, as program_key_marked); `key` itself for none.
uint64_t donation_key(uint64_t key, absl::Span<ir::Node* const> order,
                      absl::Span<const ir::Node* const> donated, uint64_t epoch);

}  // namespace smelt::compiler
