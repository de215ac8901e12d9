// The compiler's pipeline stages as text, for people: irdump (--after=fusion, --emit=kernels,
// --emit=llvm) and the SMELT_DUMP environment variable print the same dumps.
//
//   SMELT_DUMP=fusion,kernels   every compile_program prints those stages of its graph to stderr
//   SMELT_DUMP=all              every stage compile_program dumps
//
// Stages: "simplify" (the graph after the simplify pass, as IR text), "fusion" (the graph with
// each kernel boundary and its reason), "kernels" (the lowered
// steps: kernel IR, matmul and gather calls), "llvm" (the optimized LLVM IR of every kernel),
// "cuda" (the CUDA C of every kernel, each a translation unit NVRTC compiles alone).
// Dumping fuses and lowers the graph again with the default options; nothing executes, so graphs
// whose inputs have no data (parsed from text) dump too.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/graph.h"

namespace smelt::compiler {

// The stages dump_stage knows, in pipeline order.
absl::Span<const absl::string_view> dump_stages();

// The text of one stage of `graph`. InvalidArgument for an unknown stage; lowering's errors
// otherwise.
absl::StatusOr<std::string> render_stage(absl::string_view stage, const ir::Graph& graph);

// render_stage, with an error written as a "# <stage>: error: ..." line instead.
std::string dump_stage(absl::string_view stage, const ir::Graph& graph);

// Whether SMELT_DUMP (read once, at the first call) lists `stage` or "all".
bool dump_enabled(absl::string_view stage);

// Prints dump_stage(stage, graph) to stderr when dump_enabled(stage). Costs one branch on a
// static when SMELT_DUMP is unset.
void maybe_dump(absl::string_view stage, const ir::Graph& graph);

}  // namespace smelt::compiler
