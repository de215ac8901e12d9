#include "stages.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace smelt::irdump {
namespace {

// Filled in as the compiler's passes and backends land.
constexpr Pass kPasses[] = {
    {"autodiff", "append the gradient nodes (vector-Jacobian products)", nullptr},
    {"simplify", "CSE, constant folding, algebraic identities", nullptr},
    {"fusion", "group nodes into kernels, with the reason for every cut", nullptr},
};

constexpr Emitter kEmitters[] = {
    {"kernels", "the backend-neutral kernel IR", nullptr},
    {"llvm", "LLVM IR for the CPU", nullptr},
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

absl::StatusOr<ir::Graph> run_passes_until(ir::Graph g, absl::string_view after) {
  bool known = false;
  for (const Pass& p : kPasses) known |= p.name == after;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("--after=", after, ": unknown pass (passes: ", names(passes()), ")"));
  }
  for (const Pass& p : kPasses) {
    if (p.run == nullptr) {
      return absl::UnimplementedError(
          absl::StrCat("--after=", after, ": the ", p.name, " pass is not available yet"));
    }
    absl::StatusOr<ir::Graph> next = p.run(std::move(g));
    if (!next.ok()) {
      return absl::Status(next.status().code(),
                          absl::StrCat(p.name, ": ", next.status().message()));
    }
    g = *std::move(next);
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
