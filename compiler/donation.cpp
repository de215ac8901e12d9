#include "compiler/donation.h"

#include <algorithm>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "ir/op_registry.h"

namespace smelt::compiler {
namespace {

constexpr uint64_t kGivenRoot = ~uint64_t{0};  // Walk::root_for of the caller's roots

bool is_view(const ir::Node& n) { return op_def(n.op()).kind == ir::OpKind::Movement; }

// Library calls take their operands and results as whole buffers (see the header).
bool is_library(const ir::Node& n) {
  const ir::OpKind kind = op_def(n.op()).kind;
  return kind == ir::OpKind::Matmul || kind == ir::OpKind::Window || kind == ir::OpKind::Gather;
}

// A realized node that autograd still needs keeps its operands (Node::set_realized).
bool keeps_inputs(const ir::Node& n) {
  return n.grad_role() == ir::GradRole::kInterior && !n.grad_released();
}

// The graph under the roots in topological order, with what the plan needs per node.
struct Walk {
  std::vector<const ir::NodePtr*> order;  // a reference to each node, for its use count
  absl::flat_hash_map<const ir::Node*, int32_t> index;
  std::vector<long> internal;      // operand edges from nodes of the graph
  std::vector<uint64_t> leaf_of;   // candidates whose leaf it is
  std::vector<uint64_t> root_for;  // a root: kGivenRoot, or the candidates it was added for

  int32_t at(const ir::Node* n) const { return index.at(n); }
  const ir::Node& node(size_t i) const { return **order[i]; }

  explicit Walk(absl::Span<const ir::NodePtr> roots) {
    std::vector<std::pair<const ir::NodePtr*, size_t>> stack;
    for (const ir::NodePtr& r : roots) {
      if (r == nullptr || !index.try_emplace(r.get(), -1).second) continue;
      stack.emplace_back(&r, 0);
      while (!stack.empty()) {
        auto& [ptr, next] = stack.back();
        const ir::NodeList& inputs = (*ptr)->inputs();
        if (next < inputs.size()) {
          const ir::NodePtr& in = inputs[next++];
          if (index.try_emplace(in.get(), -1).second) stack.emplace_back(&in, 0);
        } else {
          index[ptr->get()] = static_cast<int32_t>(order.size());
          order.push_back(ptr);
          stack.pop_back();
        }
      }
    }
    internal.assign(order.size(), 0);
    leaf_of.assign(order.size(), 0);
    root_for.assign(order.size(), 0);
    for (const ir::NodePtr* n : order) {
      for (const ir::NodePtr& in : (*n)->inputs()) ++internal[at(in.get())];
    }
    for (const ir::NodePtr& r : roots) {
      if (r != nullptr) root_for[at(r.get())] = kGivenRoot;
    }
  }

  // Which candidates each node can reach without passing through a root that lets go of its
  // operands.
  std::vector<uint64_t> taint() const {
    std::vector<uint64_t> t(order.size(), 0);
    for (size_t i = 0; i < order.size(); ++i) {
      uint64_t mask = leaf_of[i];
      for (const ir::NodePtr& in : node(i).inputs()) {
        const int32_t j = at(in.get());
        if (root_for[j] == 0 || keeps_inputs(node(j))) mask |= t[j];
      }
      t[i] = mask;
    }
    return t;
  }
};

}  // namespace

DonationPlan plan_donations(absl::Span<const ir::NodePtr> roots,
                            absl::Span<const DonationCandidate> candidates) {
  DonationPlan plan;
  const size_t count = std::min<size_t>(candidates.size(), 64);
  if (count == 0) return plan;
  Walk w(roots);

  // The leaves: every holder accounted for (the caller's, and edges from the graph).
  uint64_t failed = 0;
  for (size_t c = 0; c < count; ++c) {
    const uint64_t bit = uint64_t{1} << c;
    for (const auto& [leaf, known] : candidates[c].leaves) {
      if (leaf == nullptr || !leaf->is_leaf()) {
        failed |= bit;
        continue;
      }
      const auto it = w.index.find(leaf.get());
      const long internal = it == w.index.end() ? 0 : w.internal[it->second];
      if (leaf.use_count() - 1 - internal - known != 0) failed |= bit;
      if (it != w.index.end()) w.leaf_of[it->second] |= bit;
    }
  }

  // Extra roots: first the library calls that read a candidate (through views); then, for what
  // those do not cut off, the library calls' computed operands that a candidate reaches.
  auto base_of = [&](const ir::NodePtr& in) {
    const ir::Node* base = in.get();
    while (is_view(*base) && !base->is_leaf() && !base->inputs().empty()) {
      base = base->inputs()[0].get();
    }
    return w.at(base);
  };
  for (size_t i = 0; i < w.order.size(); ++i) {
    if (!is_library(w.node(i))) continue;
    for (const ir::NodePtr& in : w.node(i).inputs()) w.root_for[i] |= w.leaf_of[base_of(in)];
  }
  const std::vector<uint64_t> reach = w.taint();
  for (size_t i = 0; i < w.order.size(); ++i) {
    if (!is_library(w.node(i))) continue;
    for (const ir::NodePtr& in : w.node(i).inputs()) {
      const int32_t j = w.at(in.get());
      if (reach[j] != 0 && !in->is_leaf() && !is_view(*in)) w.root_for[j] |= reach[j];
    }
  }

  // Check, and drop the roots that only failed candidates asked for, until nothing changes.
  for (;;) {
    const std::vector<uint64_t> t = w.taint();
    uint64_t bad = failed;
    for (size_t i = 0; i < w.order.size(); ++i) {
      if (t[i] == 0) continue;
      const ir::Node& n = w.node(i);
      if (w.root_for[i] != 0) {
        if (keeps_inputs(n)) bad |= t[i];
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

  for (size_t c = 0; c < count; ++c) {
    if ((failed >> c & 1) == 0) plan.donated.push_back(candidates[c].donated);
  }
  for (size_t i = 0; i < w.order.size(); ++i) {
    if (w.root_for[i] != 0 && w.root_for[i] != kGivenRoot) plan.extra_roots.push_back(*w.order[i]);
  }
  return plan;
}

}  // namespace smelt::compiler
