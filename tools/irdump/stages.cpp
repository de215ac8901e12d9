#include "stages.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "compiler/passes/autodiff.h"
#include "compiler/passes/simplify.h"
#include "compiler/pipeline.h"
#include "ir/grad_builder.h"
#include "ir/text.h"

namespace smelt::irdump {
namespace {

absl::StatusOr<std::string> print_fusion(const ir::Graph& g) {
  return compiler::render_stage("fusion", g);
}
absl::StatusOr<std::string> emit_kernels(const ir::Graph& g) {
  return compiler::render_stage("kernels", g);
}
absl::StatusOr<std::string> emit_llvm(const ir::Graph& g) {
  return compiler::render_stage("llvm", g);
}
absl::StatusOr<std::string> emit_cuda(const ir::Graph& g) {
  return compiler::render_stage("cuda", g);
}

// Appends d(sum of grad.output)/d(w) for each w of grad.wrt to the graph's outputs.
absl::StatusOr<ir::Graph> run_autodiff(ir::Graph g, const GradSpec& grad) {
  if (grad.output == nullptr) {
    return absl::FailedPreconditionError("the graph has no output to differentiate");
  }
  if (!is_floating(grad.output->dtype())) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot differentiate a ", ir::type_str(grad.output->type()),
                     " output: only floating values have gradients"));
  }
  ir::GradBuilder b;
  ir::NodePtr seed = b.fill_like(grad.output, 1.0);
  if (!b.status().ok()) return b.status();
  absl::StatusOr<std::vector<ir::NodePtr>> grads =
      compiler::autodiff({grad.output}, {seed}, grad.wrt);
  if (!grads.ok()) return grads.status();
  for (size_t k = 0; k < grads->size(); ++k) {
    if ((*grads)[k] == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("the output does not depend on wrt operand ", k, " (",
                       ir::type_str(grad.wrt[k]->type()), ") through differentiable ops"));
    }
    g.outputs.push_back((*grads)[k]);
  }
  return g;
}

absl::StatusOr<ir::Graph> run_simplify(ir::Graph g, const GradSpec&) {
  return compiler::simplify(g);
}

// Filled in as the compiler's passes and backends land.
constexpr Pass kPasses[] = {
    {"autodiff",
     "append the gradients of the `# grad:` output to `return` (default: output 0 w.r.t. every "
     "floating input)",
     true, run_autodiff, nullptr},
    {"simplify", "CSE, constant folding, algebraic identities, view chains", true, run_simplify,
     nullptr},
    {"fusion", "group nodes into kernels, with the reason for every cut", true, nullptr,
     print_fusion},
};

constexpr Emitter kEmitters[] = {
    {"kernels", "the backend-neutral kernel IR of every lowered step", emit_kernels},
    {"llvm", "LLVM IR for the CPU, after the O3 pipeline for the host", emit_llvm},
    {"cuda", "CUDA C for NVRTC, one translation unit per kernel", emit_cuda},
};

template <typename T>
std::string names(absl::Span<const T> rows) {
  return absl::StrJoin(rows, ", ",
                       [](std::string* out, const T& r) { absl::StrAppend(out, r.name); });
}

}  // namespace

GradSpec default_grad_spec(const ir::Graph& g) {
  GradSpec spec;
  if (g.outputs.empty()) return spec;
  spec.output = g.outputs[0];
  // The owning pointers of the graph's nodes, for print_order's (const) nodes.
  absl::flat_hash_map<const ir::Node*, ir::NodePtr> owner;
  std::vector<ir::NodePtr> stack(g.outputs.begin(), g.outputs.end());
  while (!stack.empty()) {
    ir::NodePtr n = std::move(stack.back());
    stack.pop_back();
    if (n->realized() || !owner.emplace(n.get(), n).second) continue;
    for (const ir::NodePtr& in : n->inputs()) stack.push_back(in);
  }
  for (const ir::Node* n : ir::print_order(g)) {
    if (n->op() == ir::OpCode::Input && is_floating(n->dtype())) spec.wrt.push_back(owner.at(n));
  }
  return spec;
}

absl::StatusOr<ParsedSource> parse_source(absl::string_view text) {
  // The directive's names are resolved by the parser itself: they are appended to `return`, and
  // the extra outputs are split off again. The graph's nodes are then exactly the spec's nodes.
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  int directive = -1, ret = -1;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view line = absl::StripAsciiWhitespace(lines[i]);
    if (absl::ConsumePrefix(&line, "#") &&
        absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "grad:")) {
      if (directive >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", i + 1, ": a second '# grad:' line"));
      }
      directive = static_cast<int>(i);
    } else if (absl::StartsWith(line, "return")) {
      ret = static_cast<int>(i);
    }
  }
  if (directive < 0) {
    absl::StatusOr<ir::Graph> g = ir::parse_graph(text);
    if (!g.ok()) return g.status();
    GradSpec spec = default_grad_spec(*g);
    return ParsedSource{*std::move(g), std::move(spec)};
  }
  absl::string_view d = absl::StripAsciiWhitespace(lines[directive]);
  d.remove_prefix(d.find("grad:") + 5);
  const std::vector<absl::string_view> parts = absl::StrSplit(d, " wrt ");
  const std::string where = absl::StrCat("line ", directive + 1, ": ");
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "expected '# grad: %output wrt %a, %b, ...'"));
  }
  std::vector<std::string> names = {std::string(absl::StripAsciiWhitespace(parts[0]))};
  for (absl::string_view w : absl::StrSplit(parts[1], ',')) {
    names.emplace_back(absl::StripAsciiWhitespace(w));
  }
  for (const std::string& n : names) {
    if (n.size() < 2 || n[0] != '%') {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "'", n, "' is not a node name (expected %name)"));
    }
  }
  if (ret < 0) return absl::InvalidArgumentError("missing 'return' at the end of the graph");
  std::string rewritten;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    if (static_cast<int>(i) == ret) {
      // Before a trailing comment, if any.
      const size_t hash = line.find('#');
      absl::string_view code = hash == absl::string_view::npos ? line : line.substr(0, hash);
      const bool has_outputs = absl::StrContains(code, '%');
      absl::StrAppend(&rewritten, absl::StripTrailingAsciiWhitespace(code),
                      has_outputs ? ", " : " ", absl::StrJoin(names, ", "), "\n");
    } else {
      absl::StrAppend(&rewritten, line, i + 1 < lines.size() ? "\n" : "");
    }
  }
  absl::StatusOr<ir::Graph> g = ir::parse_graph(rewritten);
  if (!g.ok()) return g.status();
  ParsedSource out;
  out.grad.requested = true;
  const size_t keep = g->outputs.size() - names.size();
  out.grad.output = g->outputs[keep];
  out.grad.wrt.assign(g->outputs.begin() + keep + 1, g->outputs.end());
  g->outputs.resize(keep);
  out.graph = *std::move(g);
  return out;
}

absl::Span<const Pass> passes() { return kPasses; }
absl::Span<const Emitter> emitters() { return kEmitters; }

const Pass* find_pass(absl::string_view name) {
  for (const Pass& p : kPasses) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

absl::StatusOr<ir::Graph> run_passes_until(ir::Graph g, const GradSpec& grad,
                                           absl::string_view after) {
  const Pass* target = find_pass(after);
  if (target == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--after=", after, ": unknown pass (passes: ", names(passes()), ")"));
  }
  if (!target->available) {
    return absl::UnimplementedError(
        absl::StrCat("--after=", after, ": the ", after,
                     " pass does not exist yet (not available yet); the compiler runs without it"));
  }
  for (const Pass& p : kPasses) {
    const bool wanted = p.name != "autodiff" || grad.requested || p.name == after;
    if (p.available && p.run != nullptr && wanted) {
      absl::StatusOr<ir::Graph> next = p.run(std::move(g), grad);
      if (!next.ok()) {
        return absl::Status(next.status().code(),
                            absl::StrCat(p.name, ": ", next.status().message()));
      }
      g = *std::move(next);
    }
    if (p.name == after) break;
  }
  return g;
}

absl::StatusOr<std::string> emit(const ir::Graph& g, absl::string_view name) {
  for (const Emitter& e : kEmitters) {
    if (e.name != name) continue;
    if (e.emit == nullptr) {
      return absl::UnimplementedError(
          absl::StrCat("--emit=", name, ": the ", name, " emitter is not available yet"));
    }
    return e.emit(g);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--emit=", name, ": unknown emitter (emitters: ", names(emitters()), ")"));
}

}  // namespace smelt::irdump
