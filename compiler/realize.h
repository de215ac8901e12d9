// Realization: the one way the frontend turns pending nodes into values. Behind it sits an
// executor: today the reference evaluator; the CPU compiler (fusion + LLVM JIT) replaces it
// here without the frontend changing.
#pragma once

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "compiler/donation.h"
#include "ir/node.h"

namespace smelt::compiler {

// Why a realization happened; each is counted.
enum class EvalReason : uint8_t {
  kExplicit,    // eval(...), Tensor::eval()
  kItem,        // item()
  kToVector,    // to_vector(), data reads
  kPrint,       // operator<<
  kEager,       // eager mode: every op realizes at once
  kStep,        // optimizer.step()
  kGraphLimit,  // the pending graph grew past its depth/size bound
  kDeviceCopy,  // to(), cuda(), cpu(): the value moves to another device
  kCount,
};

// Computes every unrealized root and attaches its value. All or nothing: on error no node is
// changed, so the caller may fix the cause and try again. Thread-safe.
//
// `donated`: leaves whose memory the caller gives up. An output may be computed in the memory
// of a donated leaf that this realization reads for the last time (an addmm accumulating into
// its addend; on the CPU, an elementwise kernel reading it at each output's own position, like
// an optimizer's p' = p - lr d), sparing a copy and a fresh buffer; the leaf's value is then
// gone. The caller guarantees that nothing reads a donated leaf afterwards and that no other
// node shares its buffer (compiler::plan_donations checks the first for graphs the user may
// hold). A failed realization leaves donated leaves intact too. The program compiled for a
// graph with donated leaves is its own (compile_program's `donated`).
//
// `candidates`: leaves the caller would give up too if nothing outside this realization can
// read them afterwards; plan_donations (compiler/donation.h) picks those, and the nodes realized
// along with the roots to make it so.
absl::Status realize(absl::Span<const ir::NodePtr> roots, EvalReason reason,
                     absl::Span<const ir::Node* const> donated = {},
                     absl::Span<const DonationCandidate> candidates = {});

struct RealizeStats {
  std::array<uint64_t, static_cast<size_t>(EvalReason::kCount)> by_reason{};
  uint64_t total() const;
};
RealizeStats realize_stats();

}  // namespace smelt::compiler
