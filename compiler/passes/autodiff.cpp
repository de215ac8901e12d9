#include "compiler/passes/autodiff.h"

#include <cstdint>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/text.h"

namespace smelt::compiler {
namespace {

using ir::Node;
using ir::NodePtr;

// The sum of `terms`, added pairwise level by level, so that n gradients meeting at one node make
// a tree of depth log2(n) instead of a chain of n adds.
absl::StatusOr<NodePtr> balanced_sum(std::vector<NodePtr> terms) {
  ir::GradBuilder b;
  while (terms.size() > 1) {
    std::vector<NodePtr> next;
    next.reserve((terms.size() + 1) / 2);
    for (size_t k = 0; k + 1 < terms.size(); k += 2) next.push_back(b.add(terms[k], terms[k + 1]));
    if (terms.size() % 2 == 1) next.push_back(std::move(terms.back()));
    terms = std::move(next);
  }
  if (!b.status().ok()) {
    return absl::InternalError(absl::StrCat("autodiff: summing gradients: ", b.status().message()));
  }
  return std::move(terms[0]);
}

class Autodiff {
 public:
  explicit Autodiff(const AutodiffOptions& options) : options_(options) {}

  absl::StatusOr<std::vector<NodePtr>> run(absl::Span<const NodePtr> outputs,
                                           absl::Span<const NodePtr> seeds,
                                           absl::Span<const NodePtr> wrt) {
    if (outputs.size() != seeds.size()) {
      return absl::InvalidArgumentError(absl::StrCat("autodiff: ", outputs.size(), " outputs but ",
                                                     seeds.size(), " seed gradients"));
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i] == nullptr || seeds[i] == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("autodiff: output ", i, " is null"));
      }
      if (seeds[i]->type() != outputs[i]->type()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "autodiff: the gradient of output ", i, " is ", ir::type_str(seeds[i]->type()),
            " but the output is ", ir::type_str(outputs[i]->type()), "; they must match"));
      }
    }
    for (size_t k = 0; k < wrt.size(); ++k) {
      if (wrt[k] == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("autodiff: input ", k, " is null"));
      }
      wanted_.emplace(wrt[k].get(), true);
    }
    if (absl::Status s = order(outputs); !s.ok()) return s;
    mark_needed();

    contributions_.assign(order_.size(), {});
    for (size_t i = 0; i < outputs.size(); ++i) {
      auto it = index_.find(outputs[i].get());
      if (it != index_.end() && needed_[it->second]) contributions_[it->second].push_back(seeds[i]);
    }
    absl::flat_hash_map<const Node*, NodePtr> found;
    for (size_t k = order_.size(); k-- > 0;) {
      if (contributions_[k].empty()) continue;
      absl::StatusOr<NodePtr> grad = balanced_sum(std::move(contributions_[k]));
      contributions_[k] = {};
      if (!grad.ok()) return grad.status();
      if (options_.on_gradient) options_.on_gradient(*grad);
      const NodePtr& node = order_[k];
      if (wanted_.contains(node.get())) found[node.get()] = *grad;
      if (absl::Status s = propagate(node, *grad); !s.ok()) return s;
    }
    std::vector<NodePtr> result;
    result.reserve(wrt.size());
    for (const NodePtr& w : wrt) {
      auto it = found.find(w.get());
      result.push_back(it == found.end() ? nullptr : it->second);
    }
    return result;
  }

 private:
  bool flows(const Node& n) const {
    if (options_.flows_through) return options_.flows_through(n);
    return !n.grad_inputs().empty();
  }

  // Only floating values carry gradients; an index or a condition never leads to one.
  static bool differentiable(const Node& n) { return is_floating(n.dtype()); }

  // Every node the gradient can reach from the outputs, inputs before users (an explicit-stack
  // DFS: no recursion).
  absl::Status order(absl::Span<const NodePtr> outputs) {
    std::vector<std::pair<NodePtr, size_t>> stack;
    auto visit = [&](const NodePtr& n) -> absl::Status {
      if (!differentiable(*n) || index_.contains(n.get())) return absl::OkStatus();
      index_.emplace(n.get(), -1);  // on the stack
      const bool through = flows(*n);
      if (through && n->grad_inputs().empty() && n->def().min_inputs > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "autodiff: trying to backward through the graph a second time (or after its values "
            "were freed): the ",
            n->def().name, " ", ir::type_str(n->type()),
            " on the path no longer has its inputs. Pass retain_graph=true to the first "
            "backward() if you need to backward through the graph again"));
      }
      stack.emplace_back(n, through ? 0 : n->grad_inputs().size());
      return absl::OkStatus();
    };
    for (const NodePtr& out : outputs) {
      if (absl::Status s = visit(out); !s.ok()) return s;
      while (!stack.empty()) {
        // By index, not reference: visit() grows the stack.
        const size_t top = stack.size() - 1;
        const ir::NodeList& inputs = stack[top].first->grad_inputs();
        if (stack[top].second < inputs.size()) {
          NodePtr in = inputs[stack[top].second++];
          if (absl::Status s = visit(in); !s.ok()) return s;
        } else {
          index_[stack[top].first.get()] = static_cast<int64_t>(order_.size());
          order_.push_back(std::move(stack[top].first));
          stack.pop_back();
        }
      }
    }
    return absl::OkStatus();
  }

  // needed: the node is a `wrt` node or the gradient flows from it into one. Nodes that are not
  // needed get no gradient nodes (dead branches).
  void mark_needed() {
    needed_.assign(order_.size(), false);
    for (size_t k = 0; k < order_.size(); ++k) {
      const Node& n = *order_[k];
      bool need = wanted_.contains(&n);
      if (!need && flows(n)) {
        for (const NodePtr& in : n.grad_inputs()) {
          auto it = index_.find(in.get());
          if (it != index_.end() && needed_[it->second]) {
            need = true;
            break;
          }
        }
      }
      needed_[k] = need;
    }
  }

  absl::Status propagate(const NodePtr& node, const NodePtr& grad) {
    if (!flows(*node)) return absl::OkStatus();
    const ir::NodeList& inputs = node->grad_inputs();
    bool any = false;
    for (const NodePtr& in : inputs) {
      auto it = index_.find(in.get());
      any |= it != index_.end() && needed_[it->second];
    }
    if (!any) return absl::OkStatus();
    const ir::VjpFn vjp = node->def().vjp;
    if (vjp == nullptr) {
      return absl::InternalError(
          absl::StrCat("autodiff: ", node->def().name, " has no gradient rule (VJP)"));
    }
    absl::StatusOr<std::vector<NodePtr>> grads = vjp(node, grad);
    if (!grads.ok()) return grads.status();
    if (grads->size() != inputs.size()) {
      return absl::InternalError(absl::StrCat("autodiff: the VJP of ", node->def().name, " gave ",
                                              grads->size(), " gradients for ", inputs.size(),
                                              " operands"));
    }
    for (size_t k = 0; k < inputs.size(); ++k) {
      NodePtr& g = (*grads)[k];
      auto it = index_.find(inputs[k].get());
      if (g == nullptr || it == index_.end() || !needed_[it->second]) continue;
      if (g->type() != inputs[k]->type()) {
        return absl::InternalError(absl::StrCat(
            "autodiff: the VJP of ", node->def().name, " gave operand ", k, " a gradient of type ",
            ir::type_str(g->type()), " for a value of type ", ir::type_str(inputs[k]->type())));
      }
      contributions_[it->second].push_back(std::move(g));
    }
    return absl::OkStatus();
  }

  const AutodiffOptions& options_;
  absl::flat_hash_map<const Node*, bool> wanted_;
  absl::flat_hash_map<const Node*, int64_t> index_;  // position in order_; -1 while on the stack
  std::vector<NodePtr> order_;
  std::vector<bool> needed_;
  std::vector<std::vector<NodePtr>> contributions_;
};

}  // namespace

absl::StatusOr<std::vector<ir::NodePtr>> autodiff(absl::Span<const ir::NodePtr> outputs,
                                                  absl::Span<const ir::NodePtr> seeds,
                                                  absl::Span<const ir::NodePtr> wrt,
                                                  const AutodiffOptions& options) {
  return Autodiff(options).run(outputs, seeds, wrt);
}

}  // namespace smelt::compiler
