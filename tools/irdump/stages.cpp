#include "stages.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compiler/pipeline.h"

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

// Filled in as the compiler's passes and backends land.
constexpr Pass kPasses[] = {
    {"autodiff", "append the gradient nodes (vector-Jacobian products)", false, nullptr, nullptr},
    {"simplify", "CSE, constant folding, algebraic identities", false, nullptr, nullptr},
    {"fusion", "group nodes into kernels, with the reason for every cut", true, nullptr,
     print_fusion},
};

constexpr Emitter kEmitters[] = {
    {"kernels", "the backend-neutral kernel IR of every lowered step", emit_kernels},
    {"llvm", "LLVM IR for the CPU, after the O3 pipeline for the host", emit_llvm},
    {"cuda", "CUDA C for NVRTC", nullptr},
};

template <typename T>
std::string names(absl::Span<const T> rows) {
  return absl::StrJoin(rows, ", ",
                       [](std::string* out, const T& r) { absl::StrAppend(out, r.name); });
}

}  // namespace

absl::Span<const Pass> passes() { return kPasses; }
absl::Span<const Emitter> emitters() { return kEmitters; }

const Pass* find_pass(absl::string_view name) {
  for (const Pass& p : kPasses) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

absl::StatusOr<ir::Graph> run_passes_until(ir::Graph g, absl::string_view after) {
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
    if (p.available && p.run != nullptr) {
      absl::StatusOr<ir::Graph> next = p.run(std::move(g));
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
