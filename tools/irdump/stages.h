// What irdump can do to a graph after verifying it: run the compiler's passes up to a point
// (--after) or emit code (--emit). Each is one row of a table; a row that is not available yet
// is named and says so.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/graph.h"

namespace smelt::irdump {

// What --after=autodiff differentiates: `output` (seeded with ones, i.e. its sum) with respect to
// each of `wrt`. A .smir file names them in a directive line, `# grad: %out wrt %a, %b` (a
// comment to the parser); without one, the graph's first output with respect to every floating
// input.
struct GradSpec {
  ir::NodePtr output;
  std::vector<ir::NodePtr> wrt;
  // The file asked for gradients: later stages (--after=fusion) then see the backward graph too.
  // The default spec only applies to --after=autodiff itself.
  bool requested = false;
};

// The default GradSpec of `g` (see GradSpec).
GradSpec default_grad_spec(const ir::Graph& g);

// Parses `text` (the IR text format) and its `# grad:` directive, if any: the graph, and the spec
// with the directive's names resolved to the graph's nodes (or the default).
struct ParsedSource {
  ir::Graph graph;
  GradSpec grad;
};
absl::StatusOr<ParsedSource> parse_source(absl::string_view text);

// A compiler pass, in pipeline order: `--after=name` runs every available pass up to and
// including it, then prints the graph (or what `print` makes of it).
struct Pass {
  absl::string_view name;
  absl::string_view what;
  bool available;  // false: the pass does not exist yet; the pipeline runs without it
  // Rewrites the graph; null for a pass that only analyses it (fusion).
  absl::StatusOr<ir::Graph> (*run)(ir::Graph g, const GradSpec& grad);
  // The text `--after=name` prints; null: the graph in the IR text format.
  absl::StatusOr<std::string> (*print)(const ir::Graph& g);
};

// A code emitter: `--emit=name` prints what it makes of the graph.
struct Emitter {
  absl::string_view name;
  absl::string_view what;
  absl::StatusOr<std::string> (*emit)(const ir::Graph& g);  // null: not available yet
};

absl::Span<const Pass> passes();
absl::Span<const Emitter> emitters();

// The pass named `name`, or null.
const Pass* find_pass(absl::string_view name);

// Runs the pipeline up to and including the pass `after`, skipping passes that do not exist
// yet (the compiler runs without them too). Errors: an unknown name (InvalidArgument) or
// `after` itself not existing yet (Unimplemented).
absl::StatusOr<ir::Graph> run_passes_until(ir::Graph g, const GradSpec& grad,
                                           absl::string_view after);

// Emits g with the emitter `name`; errors as for run_passes_until.
absl::StatusOr<std::string> emit(const ir::Graph& g, absl::string_view name);

}  // namespace smelt::irdump
