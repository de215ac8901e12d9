// What a Tensor handle points at: the tensor's current node, and its autograd state. In-place
// operations (add_, zero_, an optimizer's update) swap the node, so every holder of the handle
// sees the new value while the IR stays immutable.
#pragma once

#include <smelt/tensor.h>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "base/recycling_allocator.h"
#include "base/spin_lock.h"
#include "ir/node.h"

namespace smelt::detail {

class TensorImpl : public std::enable_shared_from_this<TensorImpl> {
 public:
  explicit TensorImpl(ir::NodePtr node) : node_(std::move(node)) {}

  // A new handle on `node`; its block comes from the same kind of per-thread free list as nodes
  // (every op makes one, and a step frees as many).
  static std::shared_ptr<TensorImpl> make(ir::NodePtr node) {
    return std::allocate_shared<TensorImpl>(base::RecyclingAllocator<TensorImpl>(),
                                            std::move(node));
  }

  ir::NodePtr node() const {
    std::lock_guard<base::SpinLock> lock(mu_);
    return node_;
  }
  // Swaps in a new value. A tensor the user marked requires_grad stays a leaf: its new node
  // becomes the leaf its gradients accumulate into (an optimizer's update of a parameter).
  void set_node(ir::NodePtr node);

  // ---- autograd (frontend/autograd.cpp) ---------------------------------------------------------
  // Whether the user marked this tensor requires_grad (a leaf).
  bool is_grad_leaf() const {
    std::lock_guard<base::SpinLock> lock(mu_);
    return grad_leaf_;
  }
  // Marks or unmarks this tensor as a leaf that requires grad, and its node with it.
  void set_grad_leaf(bool on);
  // The accumulated gradient (.grad()); undefined until a backward pass reaches this leaf.
  Tensor& grad() { return grad_; }

  // The other result of the call that made this one (sort's and topk's values and positions,
  // which share their selection): realizing one realizes the other with it while it is held and
  // pending, so the shared work runs once (graph_builder.h, with_companions).
  void set_companion(const std::shared_ptr<TensorImpl>& other) {
    std::lock_guard<base::SpinLock> lock(mu_);
    companion_ = other;
  }
  std::shared_ptr<TensorImpl> companion() const {
    std::lock_guard<base::SpinLock> lock(mu_);
    return companion_.lock();
  }

 private:
  // Every op reads a node through here, and the critical sections copy or swap a pointer: a spin
  // lock, not a std::mutex (two calls into pthreads per read) or an absl::Mutex (Debian's Abseil
  // has deadlock detection on: about 70 ns per lock).
  mutable base::SpinLock mu_;
  ir::NodePtr node_;
  bool grad_leaf_ = false;
  Tensor grad_;
  std::weak_ptr<TensorImpl> companion_;
};

// ---- in-place updates (frontend/inplace_ops.cpp)
// -------------------------------------------------

// Records that `impl` got a pending value in place; the next realization computes it as well.
// backward() notes its loss the same way (frontend/autograd.cpp).
void note_inplace(const std::shared_ptr<TensorImpl>& impl);
// The noted tensors whose value is still pending, with that value's node; clears the record.
std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>> take_pending_inplace();
// Notes them again (a realization that took them failed).
void restore_pending_inplace(
    const std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>>& pending);

}  // namespace smelt::detail
