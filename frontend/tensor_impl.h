// What a Tensor handle points at: the tensor's current node, and its autograd state. In-place
// operations (add_, zero_, an optimizer's update) swap the node, so every holder of the handle
// sees the new value while the IR stays immutable.
#pragma once

#include <smelt/tensor.h>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "ir/node.h"

namespace smelt::detail {

class TensorImpl : public std::enable_shared_from_this<TensorImpl> {
 public:
  explicit TensorImpl(ir::NodePtr node) : node_(std::move(node)) {}

  ir::NodePtr node() const {
    std::lock_guard<std::mutex> lock(mu_);
    return node_;
  }
  // Swaps in a new value. A tensor the user marked requires_grad stays a leaf: its new node
  // becomes the leaf its gradients accumulate into (an optimizer's update of a parameter).
  void set_node(ir::NodePtr node);

  // ---- autograd (frontend/autograd.cpp) ---------------------------------------------------------
  // Whether the user marked this tensor requires_grad (a leaf).
  bool is_grad_leaf() const {
    std::lock_guard<std::mutex> lock(mu_);
    return grad_leaf_;
  }
  // Marks or unmarks this tensor as a leaf that requires grad, and its node with it.
  void set_grad_leaf(bool on);
  // The accumulated gradient (.grad()); undefined until a backward pass reaches this leaf.
  Tensor& grad() { return grad_; }

 private:
  // A std::mutex, not an absl::Mutex: every op reads a node through here, and Debian's Abseil has
  // deadlock detection on (about 70 ns per lock).
  mutable std::mutex mu_;
  ir::NodePtr node_;
  bool grad_leaf_ = false;
  Tensor grad_;
};

// ---- in-place updates (frontend/inplace_ops.cpp)
// -------------------------------------------------

// Records that `impl` got a pending value in place; the next realization computes it as well.
void note_inplace(const std::shared_ptr<TensorImpl>& impl);
// The noted tensors whose value is still pending, with that value's node; clears the record.
std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>> take_pending_inplace();
// Notes them again (a realization that took them failed).
void restore_pending_inplace(
    const std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>>& pending);

}  // namespace smelt::detail
