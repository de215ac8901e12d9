#include "compiler/pipeline.h"

#include <cstdlib>
#include <iostream>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "compiler/codegen/cuda/emit_cuda.h"
#include "compiler/codegen/llvm/emit_kernel.h"
#include "compiler/compile.h"
#include "compiler/lower.h"
#include "compiler/passes/fuse.h"
#include "compiler/passes/simplify.h"
#include "ir/text.h"

namespace smelt::compiler {
namespace {

constexpr absl::string_view kStages[] = {"simplify", "fusion", "kernels", "llvm", "cuda"};

std::string ints(const std::vector<int64_t>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}

// "%3 f32[4, 5]": a node by its print_graph number, with its type.
class Names {
 public:
  explicit Names(const ir::Graph& g) {
    const std::vector<const ir::Node*> order = ir::print_order(g);
    for (size_t i = 0; i < order.size(); ++i) number_[order[i]] = static_cast<int>(i);
  }
  std::string operator()(const ir::Node* n) const {
    auto it = number_.find(n);
    return absl::StrCat(it == number_.end() ? std::string("%?") : absl::StrCat("%", it->second),
                        " ", ir::type_str(n->type()));
  }

 private:
  absl::flat_hash_map<const ir::Node*, int> number_;
};

std::string view_str(const StridedView& v, const Names& name) {
  return absl::StrCat(name(v.base), " as shape ", ints(v.shape), " strides ", ints(v.strides),
                      " offset ", v.offset);
}

std::string kernels_text(const ir::Graph& graph, const LoweredProgram& lowered) {
  const Names name(graph);
  std::string out;
  for (size_t i = 0; i < lowered.steps.size(); ++i) {
    const Step& step = lowered.steps[i];
    if (const auto* ks = std::get_if<KernelStep>(&step)) {
      absl::StrAppend(&out, "# step ", i, ": kernel ", ks->kernel.name, " (", ks->reason, ")\n");
      for (size_t s = 0; s < ks->inputs.size(); ++s) {
        absl::StrAppend(&out, "#   in ", s, " = ", name(ks->inputs[s]), "\n");
      }
      for (size_t s = 0; s < ks->outputs.size(); ++s) {
        absl::StrAppend(&out, "#   out ", s, " = ", name(ks->outputs[s]), "\n");
      }
      out += ks->kernel.to_string();
      if (!out.empty() && out.back() != '\n') out += '\n';
    } else if (const auto* ms = std::get_if<MatmulStep>(&step)) {
      if (ms->addend == nullptr) {
        absl::StrAppend(&out, "# step ", i, ": matmul ", name(ms->out), " = (",
                        view_str(ms->a, name), ") @ (", view_str(ms->b, name), ")\n");
      } else {
        absl::StrAppend(&out, "# step ", i, ": addmm ", name(ms->out), " = ", ms->alpha, " * (",
                        view_str(ms->a, name), ") @ (", view_str(ms->b, name), ") + ", ms->beta,
                        " * ", name(ms->addend), "\n");
      }
    } else if (const auto* ws = std::get_if<WindowStep>(&step)) {
      std::vector<std::string> operands;
      for (const ir::Node* in : ws->inputs) operands.push_back(name(in));
      absl::StrAppend(&out, "# step ", i, ": ", ws->out->def().name, " ", name(ws->out), " = (",
                      absl::StrJoin(operands, ", "), ")\n");
    } else if (const auto* ss = std::get_if<ScanStep>(&step)) {
      absl::StrAppend(&out, "# step ", i, ": scan ", name(ss->out), " = ", ss->out->def().name, "(",
                      name(ss->src), ", dim=", ss->dim,
                      !ss->reverse                           ? ""
                      : ss->out->op() == ir::OpCode::ArgSort ? ", descending"
                                                             : ", reverse",
                      ")\n");
    } else {
      const auto& gs = std::get<GatherStep>(step);
      absl::StrAppend(&out, "# step ", i, gs.add ? ": scatter " : ": gather ", name(gs.out), " = ",
                      gs.add ? "index_add(" : "index_select(", name(gs.src),
                      gs.src_shape == gs.src->shape()
                          ? std::string()
                          : absl::StrCat(" as [", absl::StrJoin(gs.src_shape, ", "), "]"),
                      ", ", name(gs.index), ", dim=", gs.dim, ")\n");
    }
  }
  absl::StrAppend(&out, "# ", lowered.steps.size(), " steps\n");
  return out;
}

std::string llvm_text(const LoweredProgram& lowered) {
  std::string out;
  for (size_t i = 0; i < lowered.steps.size(); ++i) {
    const auto* ks = std::get_if<KernelStep>(&lowered.steps[i]);
    if (ks == nullptr) continue;
    absl::StrAppend(&out, "; step ", i, ": kernel ", ks->kernel.name, "\n");
    out += emit_llvm_text(ks->kernel, /*optimized=*/true);
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += '\n';
  }
  return out;
}

// One translation unit per kernel (each with the prelude), so any one can be fed to NVRTC or
// nvcc alone.
std::string cuda_text(const LoweredProgram& lowered) {
  std::string out;
  for (size_t i = 0; i < lowered.steps.size(); ++i) {
    const auto* ks = std::get_if<KernelStep>(&lowered.steps[i]);
    if (ks == nullptr) continue;
    absl::StrAppend(&out, "// step ", i, ": kernel ", ks->kernel.name, "\n");
    out += emit_cuda_text(ks->kernel);
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += '\n';
  }
  return out;
}

struct DumpConfig {
  bool any = false;
  bool all = false;
  std::vector<std::string> stages;
};

const DumpConfig& dump_config() {
  static const DumpConfig* config = [] {
    auto* c = new DumpConfig;
    const char* env = std::getenv("SMELT_DUMP");
    if (env == nullptr) return c;
    for (absl::string_view s : absl::StrSplit(env, ',', absl::SkipWhitespace())) {
      s = absl::StripAsciiWhitespace(s);
      if (s == "all") c->all = true;
      c->stages.emplace_back(s);
    }
    c->any = c->all || !c->stages.empty();
    return c;
  }();
  return *config;
}

}  // namespace

absl::Span<const absl::string_view> dump_stages() { return kStages; }

absl::StatusOr<std::string> render_stage(absl::string_view stage, const ir::Graph& graph) {
  if (stage == "simplify") return ir::print_graph(simplify(graph));
  // The later stages show what compiling would make: of the prepared (simplified) graph.
  // (with the environment's switches, so a dump shows what SMELT_DISABLE_PASSES compiles).
  const CompileOptions options = default_compile_options();
  const ir::Graph prepared = prepare_graph(graph, options);
  if (stage == "fusion") return fusion_plan_to_string(prepared, fuse(prepared, options.fusion));
  if (stage == "kernels" || stage == "llvm" || stage == "cuda") {
    const FusionPlan plan = fuse(prepared, options.fusion);
    absl::StatusOr<LoweredProgram> lowered = lower(prepared, plan);
    if (!lowered.ok()) return lowered.status();
    if (stage == "kernels") return kernels_text(prepared, *lowered);
    return stage == "llvm" ? llvm_text(*lowered) : cuda_text(*lowered);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown stage '", stage, "' (stages: ", absl::StrJoin(kStages, ", "), ")"));
}

std::string dump_stage(absl::string_view stage, const ir::Graph& graph) {
  absl::StatusOr<std::string> text = render_stage(stage, graph);
  if (!text.ok()) return absl::StrCat("# ", stage, ": error: ", text.status().message(), "\n");
  return *std::move(text);
}

bool dump_enabled(absl::string_view stage) {
  const DumpConfig& c = dump_config();
  if (!c.any) return false;
  if (c.all) return true;
  for (const std::string& s : c.stages) {
    if (s == stage) return true;
  }
  return false;
}

void maybe_dump(absl::string_view stage, const ir::Graph& graph) {
  static const bool any = dump_config().any;
  if (!any || !dump_enabled(stage)) return;
  const std::string text = absl::StrCat("# SMELT_DUMP ", stage, "\n", dump_stage(stage, graph));
  static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  std::cerr << text << std::flush;
}

}  // namespace smelt::compiler
