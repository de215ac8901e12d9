// What a Tensor handle points at: the tensor's current node. In-place operations (add_, zero_,
// an optimizer's update) swap the node, so every holder of the handle sees the new value while
// the IR stays immutable.
#pragma once

#include <memory>

#include "absl/synchronization/mutex.h"
#include "ir/node.h"

namespace smelt::detail {

class TensorImpl {
 public:
  explicit TensorImpl(ir::NodePtr node) : node_(std::move(node)) {}

  ir::NodePtr node() const {
    absl::MutexLock lock(&mu_);
    return node_;
  }
  void set_node(ir::NodePtr node) {
    absl::MutexLock lock(&mu_);
    node_ = std::move(node);
  }

 private:
  mutable absl::Mutex mu_;
  ir::NodePtr node_;
};

}  // namespace smelt::detail
