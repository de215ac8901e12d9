// Evaluation entry points (eval, eager mode) and the pending graph as text.
#include <smelt/error.h>
#include <smelt/eval.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "compiler/pipeline.h"
#include "frontend/graph_builder.h"
#include "ir/graph.h"
#include "ir/text.h"

namespace smelt {
namespace {

bool eager_from_env() {
  const char* v = std::getenv("SMELT_EAGER");
  return v != nullptr && (std::strcmp(v, "1") == 0 || std::strcmp(v, "true") == 0 ||
                          std::strcmp(v, "on") == 0 || std::strcmp(v, "yes") == 0);
}

// SMELT_EAGER is read once (on first use, at the latest when the library loads); set_eager
// overrides it from then on.
std::atomic<bool>& eager_flag() {
  static std::atomic<bool> flag{eager_from_env()};
  return flag;
}
[[maybe_unused]] const bool kEagerReadAtLoad = eager_flag().load();

std::vector<ir::NodePtr> nodes_of(const std::vector<Tensor>& tensors, absl::string_view op) {
  std::vector<ir::NodePtr> nodes;
  nodes.reserve(tensors.size());
  for (const Tensor& t : tensors) nodes.push_back(detail::node_of(t, op));
  return nodes;
}

}  // namespace

void eval(const std::vector<Tensor>& tensors) {
  detail::realize_nodes(detail::with_companions(tensors, nodes_of(tensors, "eval")),
                        compiler::EvalReason::kExplicit);
}

void set_eager(bool enabled) { eager_flag().store(enabled, std::memory_order_relaxed); }
bool is_eager() { return eager_flag().load(std::memory_order_relaxed); }

std::string graph_text(const std::vector<Tensor>& tensors) {
  return ir::print_graph(ir::Graph{nodes_of(tensors, "graph_text")});
}

void dump_graph(const std::vector<Tensor>& tensors, const std::string& path) {
  const std::string text = graph_text(tensors);
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) {
    throw Error(absl::StrCat("dump_graph: cannot write '", path, "': ", std::strerror(errno)));
  }
}

std::string compiled_text(const std::vector<Tensor>& tensors, const std::string& stage) {
  absl::StatusOr<std::string> text =
      compiler::render_stage(stage, ir::Graph{nodes_of(tensors, "compiled_text")});
  if (!text.ok()) throw Error(absl::StrCat("compiled_text: ", text.status().message()));
  return *std::move(text);
}

}  // namespace smelt
