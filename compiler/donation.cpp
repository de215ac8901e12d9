#include "compiler/donation.h"

#include <algorithm>
#include <cstdint>

#include "ir/op_registry.h"

namespace smelt::compiler {
namespace {

constexpr uint64_t kGivenRoot = ~uint64_t{0};  // Walk::root_for of the caller's roots

// A realized node that autograd still needs keeps its operands (Node::set_realized).
bool keeps_inputs(const ir::Node& n) {
  return n.grad_role() == ir::GradRole::kInterior && !n.grad_released();
}

// The graph under the roots in topological order, with what the plan needs per node. Nodes are
// numbered by the walk's marks (Node::walk_epoch/walk_position), so no lookup table is needed.
// One instance is reused by every plan (under the realization lock): no allocation per step.
struct Walk {
  std::vector<std::pair<const ir::NodePtr*, size_t>> stack;
  std::vector<const ir::NodePtr*> order;  // a reference to each node, for its use count
  std::vector<int32_t> first;             // node i's operands are operands[first[i]..first[i+1])
  std::vector<int32_t> operands;
  std::vector<long> internal;      // operand edges from nodes of the graph
  std::vector<uint64_t> leaf_of;   // candidates whose leaf it is
  std::vector<uint64_t> root_for;  // a root: kGivenRoot, or the candidates it was added for
  std::vector<uint8_t> flags;      // kKeeps, kView, kLibrary
  std::vector<uint64_t> reach, taint;

  static constexpr uint8_t kKeeps = 1, kView = 2, kLibrary = 4;

  const ir::Node& node(size_t i) const { return **order[i]; }
  bool has(size_t i, uint8_t flag) const { return (flags[i] & flag) != 0; }

  void build(absl::Span<const ir::NodePtr> roots, uint64_t epoch) {
    order.clear();
    first.clear();
    operands.clear();
    stack.clear();
    auto enter = [&](const ir::NodePtr& n) {
      if (n->walk_epoch() == epoch) return;
      n->set_walk_epoch(epoch);
      stack.emplace_back(&n, 0);
    };
    for (const ir::NodePtr& r : roots) {
      if (r == nullptr) continue;
      enter(r);
      while (!stack.empty()) {
        auto& [ptr, next] = stack.back();
        const ir::NodeList& inputs = (*ptr)->inputs();
        if (next < inputs.size()) {
          enter(inputs[next++]);
        } else {
          (*ptr)->set_walk_position(static_cast<uint32_t>(order.size()));
          order.push_back(ptr);
          stack.pop_back();
        }
      }
    }
    const size_t n = order.size();
    internal.assign(n, 0);
    leaf_of.assign(n, 0);
    root_for.assign(n, 0);
    flags.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      first.push_back(static_cast<int32_t>(operands.size()));
      const ir::Node& nd = node(i);
      for (const ir::NodePtr& in : nd.inputs()) {
        const auto j = static_cast<int32_t>(in->walk_position());
        operands.push_back(j);
        ++internal[j];
      }
      const ir::OpKind kind = op_def(nd.op()).kind;
      flags[i] = (keeps_inputs(nd) ? kKeeps : 0) | (kind == ir::OpKind::Movement ? kView : 0) |
                 (kind == ir::OpKind::Matmul || kind == ir::OpKind::Window ||
                          kind == ir::OpKind::Gather || kind == ir::OpKind::Scan
                      ? kLibrary
                      : 0);
    }
    first.push_back(static_cast<int32_t>(operands.size()));
    for (const ir::NodePtr& r : roots) {
      if (r != nullptr) root_for[r->walk_position()] = kGivenRoot;
    }
  }

  // Whether `n` is in the graph walked with `epoch`, and where.
  static int32_t find(const ir::Node* n, uint64_t epoch) {
    return n->walk_epoch() == epoch ? static_cast<int32_t>(n->walk_position()) : -1;
  }

  // Which candidates each node can reach without passing through a root that lets go of its
  // operands.
  void propagate(std::vector<uint64_t>& t) const {
    t.assign(order.size(), 0);
    for (size_t i = 0; i < order.size(); ++i) {
      uint64_t mask = leaf_of[i];
      for (int32_t k = first[i]; k < first[i + 1]; ++k) {
        const int32_t j = operands[k];
        if (root_for[j] == 0 || has(j, kKeeps)) mask |= t[j];
      }
      t[i] = mask;
    }
  }
};

}  // namespace

DonationPlan plan_donations_marked(absl::Span<const ir::NodePtr> roots,
                                   absl::Span<const DonationCandidate> candidates, uint64_t epoch) {
  DonationPlan plan;
  const size_t count = std::min<size_t>(candidates.size(), 64);
  if (count == 0) return plan;
  static Walk& w = *new Walk();  // never destroyed; the realization lock guards it
  w.build(roots, epoch);
  plan.order.reserve(w.order.size());
  for (const ir::NodePtr* n : w.order) plan.order.push_back(n->get());

  // The leaves: every holder accounted for (the caller's, and edges from the graph).
  uint64_t failed = 0;
  for (size_t c = 0; c < count; ++c) {
    const uint64_t bit = uint64_t{1} << c;
    for (const auto& [leaf, known] : candidates[c].leaves) {
      if (leaf == nullptr || !leaf->is_leaf()) {
        failed |= bit;
        continue;
      }
      const int32_t at = Walk::find(leaf.get(), epoch);
      const long internal = at < 0 ? 0 : w.internal[at];
      if (leaf.use_count() - 1 - internal - known != 0) failed |= bit;
      if (at >= 0) w.leaf_of[at] |= bit;
    }
  }

  // Extra roots: first the library calls that read a candidate (through views); then, for what
  // those do not cut off, the library calls' computed operands that a candidate reaches.
  // (Library calls take their operands and results as whole buffers: see the header.)
  auto base_of = [&](int32_t j) {
    while (w.has(j, Walk::kView) && w.first[j] < w.first[j + 1]) j = w.operands[w.first[j]];
    return j;
  };
  for (size_t i = 0; i < w.order.size(); ++i) {
    if (!w.has(i, Walk::kLibrary)) continue;
    for (int32_t k = w.first[i]; k < w.first[i + 1]; ++k) {
      w.root_for[i] |= w.leaf_of[base_of(w.operands[k])];
    }
  }
  w.propagate(w.reach);
  for (size_t i = 0; i < w.order.size(); ++i) {
    if (!w.has(i, Walk::kLibrary)) continue;
    for (int32_t k = w.first[i]; k < w.first[i + 1]; ++k) {
      const int32_t j = w.operands[k];
      if (w.reach[j] != 0 && !w.node(j).is_leaf() && !w.has(j, Walk::kView)) {
        w.root_for[j] |= w.reach[j];
      }
    }
  }

  // Check, and drop the roots that only failed candidates asked for, until nothing changes.
  const uint64_t all = count == 64 ? ~uint64_t{0} : (uint64_t{1} << count) - 1;
  while (failed != all) {
    w.propagate(w.taint);
    const std::vector<uint64_t>& t = w.taint;
    uint64_t bad = failed;
    for (size_t i = 0; i < w.order.size(); ++i) {
      if (t[i] == 0) continue;
      const ir::Node& n = w.node(i);
      if (w.root_for[i] != 0) {
        if (w.has(i, Walk::kKeeps)) bad |= t[i];
      } else if (!n.is_leaf() && w.order[i]->use_count() - w.internal[i] > 0) {
        bad |= t[i];  // held from outside the graph, and stays lazy
      }
    }
    failed = bad;
    bool dropped = false;
    for (uint64_t& r : w.root_for) {
      if (r != 0 && r != kGivenRoot && (r & ~failed) == 0) {
        r = 0;
        dropped = true;
      }
    }
    if (!dropped) break;
  }

  if (failed == all) return plan;
  for (size_t c = 0; c < count; ++c) {
    if ((failed >> c & 1) == 0) plan.donated.push_back(candidates[c].donated);
  }
  for (size_t i = 0; i < w.order.size(); ++i) {
    if (w.root_for[i] != 0 && w.root_for[i] != kGivenRoot) plan.extra_roots.push_back(*w.order[i]);
  }
  return plan;
}

}  // namespace smelt::compiler
