#include "compiler/realize.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "compiler/compile.h"
#include "ir/graph.h"
#include "ir/reference.h"
#include "runtime/cuda_api.h"
#include "runtime/memory_pool.h"
#include "runtime/program.h"

namespace smelt::compiler {
namespace {

// Realization walks and rewires graphs that other threads may share; one at a time.
std::mutex g_realize_mu;
std::array<std::atomic<uint64_t>, static_cast<size_t>(EvalReason::kCount)> g_counts;
// The last realization walk's epoch (Node::walk_epoch); guarded by g_realize_mu.
uint64_t g_walk_epoch = 0;

// ir::topo_order(roots), the same order, with each node marked by the walk instead of entered in
// a visited set: its walk epoch when first reached, its position in the order when emitted
// (what program_key_marked reads). Needs g_realize_mu.
std::vector<ir::Node*> marked_topo_order(absl::Span<const ir::NodePtr> roots, uint64_t epoch) {
  std::vector<ir::Node*> order;
  order.reserve(64);
  // (node, index of the next input to visit); kept between walks (g_realize_mu guards it)
  static auto& stack = *new std::vector<std::pair<ir::Node*, size_t>>();  // never destroyed
  stack.clear();
  auto visit = [epoch](ir::Node* n) {
    if (n->walk_epoch() == epoch) return false;
    n->set_walk_epoch(epoch);
    return true;
  };
  for (const ir::NodePtr& root : roots) {
    if (root == nullptr || !visit(root.get())) continue;
    stack.emplace_back(root.get(), 0);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      const ir::NodeList& inputs = node->inputs();
      if (next < inputs.size()) {
        ir::Node* in = inputs[next++].get();
        if (visit(in)) stack.emplace_back(in, 0);
      } else {
        node->set_walk_position(static_cast<uint32_t>(order.size()));
        order.push_back(node);
        stack.pop_back();
      }
    }
  }
  return order;
}

bool use_reference_backend() {
  static const bool ref = [] {
    const char* v = std::getenv("SMELT_BACKEND");
    return v != nullptr && std::strcmp(v, "reference") == 0;
  }();
  return ref;
}

// The old path, kept as a debugging aid and an oracle: evaluates in double precision.
absl::StatusOr<std::vector<base::BufferPtr>> run_reference(absl::Span<const ir::NodePtr> pending) {
  absl::StatusOr<std::vector<ir::RefTensor>> values = ir::reference_evaluate(pending);
  if (!values.ok()) return values.status();
  std::vector<base::BufferPtr> buffers;
  for (size_t k = 0; k < pending.size(); ++k) {
    const ir::Node& n = *pending[k];
    base::BufferPtr buf = base::Buffer::allocate_host(n.numel() * dtype_size(n.dtype()));
    ir::ref_to_memory((*values)[k], buf->data());
    buffers.push_back(std::move(buf));
  }
  return buffers;
}

// A 0-d buffer on the constant's device holding its value in its dtype.
absl::StatusOr<base::BufferPtr> constant_buffer(const ir::Node& constant) {
  const size_t nbytes = dtype_size(constant.dtype());
  ir::RefTensor value = ir::RefTensor::zeros(constant.dtype(), {});
  value.set(0, constant.attrs().get_float("value"));
  alignas(8) unsigned char host[8];
  ir::ref_to_memory(value, host);
  if (constant.device().is_cuda()) {
    absl::StatusOr<base::BufferPtr> buf =
        runtime::cuda::allocate(nbytes, constant.device().index());
    if (!buf.ok()) return buf.status();
    absl::Status copied = runtime::cuda::copy_to_device((*buf)->data(), host, nbytes);
    if (!copied.ok()) return copied;
    return buf;
  }
  absl::StatusOr<base::BufferPtr> buf = runtime::cpu_pool().allocate(nbytes);
  if (!buf.ok()) return buf.status();
  std::memcpy((*buf)->data(), host, nbytes);
  return buf;
}

// `walked`: the graph's marked topological order under `walked_epoch` when the caller has it
// (the donation plan's walk), else run_compiled walks the graph itself.
absl::StatusOr<std::vector<base::BufferPtr>> run_compiled(const ir::Graph& graph,
                                                          absl::Span<const ir::Node* const> donated,
                                                          std::vector<ir::Node*> walked = {},
                                                          uint64_t walked_epoch = 0) {
  // Only the CPU executor writes into donated buffers; elsewhere a donation changes nothing, so
  // it must not key another program.
  if (!graph.outputs.front()->device().is_cpu()) donated = {};
  const uint64_t epoch = walked.empty() ? ++g_walk_epoch : walked_epoch;
  const std::vector<ir::Node*> order =
      walked.empty() ? marked_topo_order(graph.outputs, epoch) : std::move(walked);
  absl::StatusOr<std::shared_ptr<const CompiledProgram>> program = get_or_compile(
      graph, order, donation_key(program_key_marked(graph, order, epoch), order, donated, epoch),
      donated);
  if (!program.ok()) return program.status();
  std::vector<base::BufferPtr> inputs;
  inputs.reserve((*program)->leaf_positions.size());
  absl::InlinedVector<bool, 16> given(donated.empty() ? 0 : (*program)->leaf_positions.size());
  for (int32_t pos : (*program)->leaf_positions) {
    const ir::Node* leaf = order[pos];
    if (!given.empty()) {
      given[inputs.size()] = std::find(donated.begin(), donated.end(), leaf) != donated.end();
    }
    base::BufferPtr buf = leaf->buffer();
    if (buf == nullptr && leaf->op() == ir::OpCode::Constant) {
      // A program compiled with this constant as an input (compiler/passes/lift_constants.h).
      absl::StatusOr<base::BufferPtr> value = constant_buffer(*leaf);
      if (!value.ok()) return value.status();
      buf = *std::move(value);
    }
    if (buf == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "realize: an input ", ir::shape_str(leaf->shape()), " of the graph has no data"));
    }
    if (buf->device() != leaf->device()) {
      return absl::InternalError(absl::StrCat("realize: an input's data is on ",
                                              buf->device().str(), ", its node on ",
                                              leaf->device().str()));
    }
    inputs.push_back(std::move(buf));
  }
  return runtime::execute((*program)->program, inputs, given);
}

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

DonationPlan plan_donations(absl::Span<const ir::NodePtr> roots,
                            absl::Span<const DonationCandidate> candidates) {
  std::lock_guard<std::mutex> lock(g_realize_mu);
  return plan_donations_marked(roots, candidates, ++g_walk_epoch);
}

absl::Status realize(absl::Span<const ir::NodePtr> roots, EvalReason reason,
                     absl::Span<const ir::Node* const> donated,
                     absl::Span<const DonationCandidate> candidates) {
  std::lock_guard<std::mutex> lock(g_realize_mu);
  // The roots to compute, held as the graph run_compiled takes (no copy of the roots per call).
  ir::Graph graph;
  std::vector<ir::NodePtr>& pending = graph.outputs;
  for (const ir::NodePtr& r : roots) {
    if (r != nullptr && !r->is_leaf() &&
        std::find(pending.begin(), pending.end(), r) == pending.end()) {
      pending.push_back(r);
    }
  }
  if (pending.empty()) return absl::OkStatus();
  g_counts[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);

  if (use_reference_backend() && !pending.front()->device().is_cpu()) {
    return absl::UnimplementedError(
        absl::StrCat("realize: SMELT_BACKEND=reference evaluates on the CPU only, not on ",
                     pending.front()->device().str()));
  }
  // The common case: every root on one device, one program.
  const Device first_device = pending.front()->device();
  const bool one_device = std::all_of(pending.begin(), pending.end(), [&](const ir::NodePtr& n) {
    return n->device() == first_device;
  });
  // Only the compiled CPU path writes into donated memory.
  std::vector<const ir::Node*> given;
  std::vector<ir::Node*> walked;  // the plan's walk, which run_compiled would repeat
  uint64_t walked_epoch = 0;
  if (!candidates.empty() && one_device && first_device.is_cpu() && !use_reference_backend()) {
    walked_epoch = ++g_walk_epoch;
    DonationPlan plan = plan_donations_marked(pending, candidates, walked_epoch);
    walked = std::move(plan.order);
    if (!plan.donated.empty()) {
      given.assign(donated.begin(), donated.end());
      given.insert(given.end(), plan.donated.begin(), plan.donated.end());
      donated = given;
      for (ir::NodePtr& n : plan.extra_roots) {
        if (std::find(pending.begin(), pending.end(), n) == pending.end()) {
          pending.push_back(std::move(n));
        }
      }
    }
  }
  if (one_device) {
    absl::StatusOr<std::vector<base::BufferPtr>> buffers =
        use_reference_backend() ? run_reference(pending)
                                : run_compiled(graph, donated, std::move(walked), walked_epoch);
    if (!buffers.ok()) return buffers.status();
    for (size_t k = 0; k < pending.size(); ++k) pending[k]->set_realized(std::move((*buffers)[k]));
    return absl::OkStatus();
  }

  // A graph runs on one device; roots on several devices are computed device by device (the
  // frontend moves data between devices only through realized values, so no graph spans two).
  std::vector<ir::NodePtr> ordered;
  std::vector<base::BufferPtr> results;
  while (!pending.empty()) {
    const Device device = pending.front()->device();
    ir::Graph group_graph;
    std::vector<ir::NodePtr>& group = group_graph.outputs;
    std::vector<ir::NodePtr> rest;
    for (ir::NodePtr& n : pending) (n->device() == device ? group : rest).push_back(std::move(n));
    if (use_reference_backend() && !device.is_cpu()) {
      return absl::UnimplementedError(absl::StrCat(
          "realize: SMELT_BACKEND=reference evaluates on the CPU only, not on ", device.str()));
    }
    absl::StatusOr<std::vector<base::BufferPtr>> group_buffers =
        use_reference_backend() ? run_reference(group) : run_compiled(group_graph, donated);
    if (!group_buffers.ok()) return group_buffers.status();
    for (size_t k = 0; k < group.size(); ++k) {
      ordered.push_back(std::move(group[k]));
      results.push_back(std::move((*group_buffers)[k]));
    }
    pending = std::move(rest);
  }
  pending = std::move(ordered);
  absl::StatusOr<std::vector<base::BufferPtr>> buffers = std::move(results);
  // Everything computed; only now touch the nodes, so a failure above changes nothing.
  for (size_t k = 0; k < pending.size(); ++k) pending[k]->set_realized(std::move((*buffers)[k]));
  return absl::OkStatus();
}

}  // namespace smelt::compiler
