#include "compiler/realize.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "ir/reference.h"

namespace smelt::compiler {
namespace {

// Realization walks and rewires graphs that other threads may share; one at a time.
absl::Mutex g_realize_mu;
std::array<std::atomic<uint64_t>, static_cast<size_t>(EvalReason::kCount)> g_counts;

}  // namespace

uint64_t RealizeStats::total() const {
  uint64_t t = 0;
  for (uint64_t c : by_reason) t += c;
  return t;
}

RealizeStats realize_stats() {
  RealizeStats s;
  for (size_t i = 0; i < s.by_reason.size(); ++i) s.by_reason[i] = g_counts[i].load();
  return s;
}

absl::Status realize(absl::Span<const ir::NodePtr> roots, EvalReason reason) {
  absl::MutexLock lock(&g_realize_mu);
  std::vector<ir::NodePtr> pending;
  for (const ir::NodePtr& r : roots) {
    if (r != nullptr && !r->is_leaf()) pending.push_back(r);
  }
  if (pending.empty()) return absl::OkStatus();
  g_counts[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);

  absl::StatusOr<std::vector<ir::RefTensor>> values = ir::reference_evaluate(pending);
  if (!values.ok()) return values.status();
  // Everything computed; only now touch the nodes, so a failure above changes nothing.
  std::vector<base::BufferPtr> buffers;
  buffers.reserve(pending.size());
  for (size_t k = 0; k < pending.size(); ++k) {
    const ir::Node& n = *pending[k];
    base::BufferPtr buf = base::Buffer::allocate_host(n.numel() * dtype_size(n.dtype()));
    ir::ref_to_memory((*values)[k], buf->data());
    buffers.push_back(std::move(buf));
  }
  for (size_t k = 0; k < pending.size(); ++k) pending[k]->set_realized(std::move(buffers[k]));
  return absl::OkStatus();
}

}  // namespace smelt::compiler
