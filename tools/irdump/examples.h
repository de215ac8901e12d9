// irdump's built-in example graphs, built through Node::make like any frontend would.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/graph.h"

namespace smelt::irdump {

struct Example {
  absl::string_view name;
  absl::string_view what;  // one line for --list-examples
  absl::StatusOr<ir::Graph> (*build)();
};

// Every built-in example, in --list-examples order.
absl::Span<const Example> examples();

// The example called `name`, or nullptr.
const Example* find_example(absl::string_view name);

}  // namespace smelt::irdump
