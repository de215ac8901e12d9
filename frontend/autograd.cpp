// Autograd: the requires-grad bookkeeping on nodes, backward(), grad(), detach(), grad mode.
//
// The lazy IR graph is the autograd graph. Every node the frontend builds while grad mode is on
// is marked GradRole::kInterior when an operand requires grad (graph_builder's make_node); a
// tensor the user marks requires_grad_() has its node marked kLeaf, with a link back to the
// tensor its gradient accumulates into. A kInterior node that gets realized keeps its inputs
// (Node::set_realized), so backward still finds the path to the leaves after loss.item().
// backward() walks that path, asks the autodiff pass (compiler/passes/autodiff) for the leaves'
// gradients as lazy nodes, accumulates them into the leaves' grad(), and, unless retain_graph,
// releases the path: a realized node drops the inputs it kept, and every node on it is marked so
// that a second backward through it throws, as in PyTorch.
#include <smelt/autograd.h>
#include <smelt/error.h>
#include <smelt/tensor.h>

#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/tls.h"
#include "compiler/passes/autodiff.h"
#include "frontend/graph_builder.h"
#include "frontend/status.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"

namespace smelt {
namespace {

using ir::GradRole;
using ir::NodePtr;

thread_local bool t_grad_enabled SMELT_FAST_TLS = true;

std::string describe(const NodePtr& n) {
  return absl::StrCat(dtype_name(n->dtype()), " ", ir::shape_str(n->shape()));
}

// What one backward walk found: the leaves that require grad, and the kInterior nodes between
// them and the outputs (the graph a backward without retain_graph frees).
struct GradGraph {
  std::vector<NodePtr> leaves;
  std::vector<NodePtr> interior;
};

// The nodes behind `outputs` that gradients flow through. Throws if a node on the way was already
// released by an earlier backward (PyTorch's "backward through the graph a second time").
GradGraph walk_grad_graph(absl::Span<const NodePtr> outputs, absl::string_view op) {
  GradGraph g;
  absl::flat_hash_set<const ir::Node*> seen;
  std::vector<NodePtr> stack;
  for (const NodePtr& out : outputs) {
    if (seen.insert(out.get()).second) stack.push_back(out);
  }
  while (!stack.empty()) {
    NodePtr n = std::move(stack.back());
    stack.pop_back();
    if (!is_floating(n->dtype())) continue;
    switch (n->grad_role()) {
      case GradRole::kNone:
        continue;
      case GradRole::kLeaf:
        g.leaves.push_back(std::move(n));
        continue;
      case GradRole::kInterior:
        break;
    }
    if (n->grad_released() || (n->grad_inputs().empty() && n->def().min_inputs > 0)) {
      throw Error(absl::StrCat(
          op,
          ": trying to backward through the graph a second time (or directly access saved "
          "values after they have already been freed): the ",
          n->def().name, " ", describe(n),
          " on the path was freed by an earlier backward. Specify retain_graph=true if you need "
          "to backward through the graph a second time"));
    }
    for (const NodePtr& in : n->grad_inputs()) {
      if (seen.insert(in.get()).second) stack.push_back(in);
    }
    g.interior.push_back(std::move(n));
  }
  return g;
}

// The seed gradient of output `k`: `gradient` checked against it, or ones for a one-element
// output.
NodePtr seed_for(const NodePtr& out, const Tensor& gradient, size_t k, absl::string_view op) {
  if (gradient.defined()) {
    NodePtr g = detail::node_of(gradient, op);
    if (g->shape() != out->shape()) {
      throw Error(absl::StrCat(op, ": mismatch in shape: the gradient of output ", k, " has shape ",
                               ir::shape_str(g->shape()), " but the output has shape ",
                               ir::shape_str(out->shape())));
    }
    if (g->device() != out->device()) {
      throw Error(absl::StrCat(op, ": the gradient of output ", k, " is on ", g->device().str(),
                               " but the output is on ", out->device().str()));
    }
    return detail::cast_node(std::move(g), out->dtype());
  }
  if (out->numel() != 1) {
    throw Error(absl::StrCat(op,
                             ": grad can be implicitly created only for scalar outputs, but "
                             "output ",
                             k, " has shape ", ir::shape_str(out->shape()),
                             "; pass a gradient of that shape (the vector of the "
                             "vector-Jacobian product) or reduce the output first, e.g. .sum()"));
  }
  return detail::constant_node(1.0, out->dtype(), out->shape(), out->device());
}

// With create_graph, the gradient nodes are part of the autograd graph too: every node built
// since `first_id` that has an operand requiring grad becomes kInterior (inputs first, so the
// marks propagate through chains of new nodes).
void record_gradient_graph(absl::Span<const NodePtr> grads, uint64_t first_id) {
  std::vector<NodePtr> roots;
  for (const NodePtr& g : grads) {
    if (g != nullptr) roots.push_back(g);
  }
  for (ir::Node* n : ir::grad_topo_order(roots)) {
    if (n->id() < first_id || !is_floating(n->dtype())) continue;
    for (const NodePtr& in : n->grad_inputs()) {
      if (in->grad_role() != GradRole::kNone) {
        n->set_grad_role(GradRole::kInterior);
        break;
      }
    }
  }
}

struct Request {
  std::vector<NodePtr> outputs;
  std::vector<NodePtr> seeds;
  std::vector<NodePtr> wrt;
  bool retain_graph = false;
  bool create_graph = false;
};

// Runs the autodiff pass for `r` over the graph `g` (walked already) and frees that graph unless
// retained. The gradients are lazy nodes; null for a `wrt` the outputs do not depend on.
std::vector<NodePtr> run_autodiff(const Request& r, const GradGraph& g) {
  const uint64_t first_id = ir::Node::next_id();
  compiler::AutodiffOptions options;
  options.flows_through = [](const ir::Node& n) { return n.grad_role() == GradRole::kInterior; };
  if (!r.create_graph) {
    // The frontend's depth trigger, applied to the backward chain as it grows: a deep forward
    // graph makes an equally deep gradient graph. (With create_graph the gradient nodes must keep
    // their inputs for the next differentiation, so nothing is realized early there.)
    options.on_gradient = [](NodePtr& grad) {
      if (grad->pending_depth() > detail::kMaxPendingDepth) {
        detail::realize_nodes({grad}, compiler::EvalReason::kGraphLimit);
      }
    };
  }
  std::vector<NodePtr> grads =
      detail::value_or_throw(compiler::autodiff(r.outputs, r.seeds, r.wrt, options));
  if (r.create_graph) record_gradient_graph(grads, first_id);
  if (!r.retain_graph) {
    for (const NodePtr& n : g.interior) n->release_grad_graph();
  }
  return grads;
}

}  // namespace

// ---- grad mode ----------------------------------------------------------------------------------

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

bool GradMode::is_enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool enabled) { t_grad_enabled = enabled; }

namespace detail {

void record_grad(const ir::NodePtr& node) {
  if (!t_grad_enabled || !is_floating(node->dtype())) return;
  for (const NodePtr& in : node->inputs()) {
    if (in->grad_role() != GradRole::kNone) {
      node->set_grad_role(GradRole::kInterior);
      return;
    }
  }
}

void TensorImpl::set_node(ir::NodePtr node) {
  std::lock_guard<base::SpinLock> lock(mu_);
  if (grad_leaf_) {
    node->set_grad_role(GradRole::kLeaf);
    node->set_grad_owner(weak_from_this());
  }
  node_ = std::move(node);
}

void TensorImpl::set_grad_leaf(bool on) {
  std::lock_guard<base::SpinLock> lock(mu_);
  grad_leaf_ = on;
  node_->set_grad_role(on ? GradRole::kLeaf : GradRole::kNone);
  node_->set_grad_owner(on ? weak_from_this() : std::weak_ptr<TensorImpl>());
}

}  // namespace detail

// ---- Tensor methods -----------------------------------------------------------------------------

Tensor& Tensor::requires_grad_(bool requires_grad) {
  NodePtr n = detail::node_of(*this, "requires_grad_");
  if (requires_grad && !is_floating(n->dtype())) {
    throw Error(
        absl::StrCat("requires_grad_: only tensors of floating point dtype can require "
                     "gradients, got ",
                     describe(n), "; convert it with .to(DType::Float32) first"));
  }
  if (n->grad_role() == GradRole::kInterior) {
    if (requires_grad) return *this;  // already does, through the values it came from
    throw Error(absl::StrCat(
        "requires_grad_: you can only change requires_grad of leaf tensors; this ", describe(n),
        " was computed from tensors that require grad. Use detach() for a copy that does not"));
  }
  impl()->set_grad_leaf(requires_grad);
  return *this;
}

bool Tensor::requires_grad() const {
  return detail::node_of(*this, "requires_grad")->grad_role() != GradRole::kNone;
}

bool Tensor::is_leaf() const {
  return detail::node_of(*this, "is_leaf")->grad_role() != GradRole::kInterior;
}

Tensor Tensor::grad() const {
  detail::node_of(*this, "grad");
  return impl()->grad();
}

Tensor& Tensor::mutable_grad() const {
  detail::node_of(*this, "mutable_grad");
  return impl()->grad();
}

Tensor Tensor::detach() const {
  NodePtr n = detail::node_of(*this, "detach");
  // A new node either way, with no grad role: the same data as a leaf, or an identity view of a
  // pending value that gradients do not flow through.
  if (base::BufferPtr buf = n->buffer()) {
    return Tensor(std::make_shared<detail::TensorImpl>(
        ir::Node::make_input(n->dtype(), n->shape(), std::move(buf))));
  }
  NodePtr view = detail::value_or_throw(
      ir::Node::make(ir::OpCode::Reshape, {std::move(n)}, {{"shape", this->shape()}}));
  return detail::wrap(std::move(view));
}

void Tensor::backward(const Tensor& gradient, std::optional<bool> retain_graph,
                      bool create_graph) const {
  NodePtr out = detail::node_of(*this, "backward");
  if (out->grad_role() == GradRole::kNone || !is_floating(out->dtype())) {
    throw Error(absl::StrCat("backward: the ", describe(out),
                             " tensor does not require grad and has no graph behind it; mark the "
                             "leaves with requires_grad_() before computing from them"));
  }
  Request r;
  r.outputs = {out};
  r.seeds = {seed_for(out, gradient, 0, "backward")};
  r.retain_graph = retain_graph.value_or(create_graph);
  r.create_graph = create_graph;
  const GradGraph g = walk_grad_graph(r.outputs, "backward");
  r.wrt = g.leaves;
  const std::vector<NodePtr> grads = run_autodiff(r, g);
  for (size_t k = 0; k < grads.size(); ++k) {
    if (grads[k] == nullptr) continue;
    std::shared_ptr<void> owner = g.leaves[k]->grad_owner().lock();
    if (owner == nullptr) continue;  // the leaf's tensor is gone: nobody can read its gradient
    auto* impl = static_cast<detail::TensorImpl*>(owner.get());
    Tensor& slot = impl->grad();
    if (!slot.defined()) {
      slot = detail::wrap(grads[k]);
    } else {
      // In place, as PyTorch accumulates: every handle to the gradient sees the sum.
      slot.impl()->set_node(
          detail::make_node(ir::OpCode::Add, {detail::node_of(slot, "backward"), grads[k]}));
    }
  }
  // A pending scalar loss is computed with the next realization (the optimizer's step, which
  // runs the forward pass anyway), as an in-place value is: a loop that reads loss.item() after
  // step() would otherwise run the whole forward pass again for it (PyTorch computed it eagerly).
  if (!out->is_leaf() && out->numel() == 1) detail::note_inplace(impl());
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph,
                         std::optional<bool> retain_graph, bool allow_unused) {
  if (outputs.empty()) throw Error("grad: expects at least one output");
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size()) {
    throw Error(absl::StrCat("grad: got ", grad_outputs.size(), " grad_outputs for ",
                             outputs.size(), " outputs; give one per output (or none)"));
  }
  Request r;
  for (size_t k = 0; k < outputs.size(); ++k) {
    NodePtr out = detail::node_of(outputs[k], "grad");
    if (out->grad_role() == GradRole::kNone || !is_floating(out->dtype())) {
      throw Error(absl::StrCat("grad: output ", k, " (", describe(out),
                               ") does not require grad and has no graph behind it"));
    }
    r.seeds.push_back(seed_for(out, grad_outputs.empty() ? Tensor() : grad_outputs[k], k, "grad"));
    r.outputs.push_back(std::move(out));
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    NodePtr in = detail::node_of(inputs[k], "grad");
    if (in->grad_role() == GradRole::kNone) {
      throw Error(absl::StrCat("grad: input ", k, " (", describe(in),
                               ") does not require grad; call requires_grad_() on it before "
                               "computing the outputs"));
    }
    r.wrt.push_back(std::move(in));
  }
  r.create_graph = create_graph;
  r.retain_graph = retain_graph.value_or(create_graph);
  const GradGraph g = walk_grad_graph(r.outputs, "grad");
  const std::vector<NodePtr> grads = run_autodiff(r, g);
  std::vector<Tensor> result;
  result.reserve(grads.size());
  for (size_t k = 0; k < grads.size(); ++k) {
    if (grads[k] == nullptr) {
      if (!allow_unused) {
        throw Error(absl::StrCat("grad: input ", k, " (", describe(r.wrt[k]),
                                 ") appears not to have been used in the graph of the outputs; "
                                 "pass allow_unused=true if this is the desired behavior"));
      }
      result.emplace_back();
      continue;
    }
    result.push_back(detail::wrap(grads[k]));
  }
  return result;
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         bool create_graph, bool allow_unused) {
  return grad(outputs, inputs, {}, create_graph, std::nullopt, allow_unused);
}

}  // namespace smelt
