// What irdump can do to a graph after verifying it: run the compiler's passes up to a point
// (--after) or emit code (--emit). Each is one row of a table; a row whose function is null
// is named but not available yet, and says so.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/graph.h"

namespace smelt::irdump {

// A compiler pass, in pipeline order: `--after=name` runs every pass up to and including it.
struct Pass {
  absl::string_view name;
  absl::string_view what;
  absl::StatusOr<ir::Graph> (*run)(ir::Graph g);  // null: not available yet
};

// A code emitter: `--emit=name` prints what it makes of the (fully compiled) graph.
struct Emitter {
  absl::string_view name;
  absl::string_view what;
  absl::StatusOr<std::string> (*emit)(const ir::Graph& g);  // null: not available yet
};

absl::Span<const Pass> passes();
absl::Span<const Emitter> emitters();

// Runs the pipeline up to and including the pass `after`. Errors: an unknown name
// (InvalidArgument) or a pass that does not exist yet (Unimplemented).
absl::StatusOr<ir::Graph> run_passes_until(ir::Graph g, absl::string_view after);

// Emits g with the emitter `name`; errors as for run_passes_until.
absl::StatusOr<std::string> emit(const ir::Graph& g, absl::string_view name);

}  // namespace smelt::irdump
