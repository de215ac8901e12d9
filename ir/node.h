// Node: one value of the lazy graph. Its op, type, attributes, inputs and structural hash are
// fixed at creation. The only change a node ever sees is realization: it gets a buffer and drops
// its inputs, so the graph behind a realized value can be freed — unless autograd still needs
// them (see GradRole), in which case they move aside, out of every walk but autodiff's.
#pragma once

#include <smelt/device.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "base/buffer.h"
#include "ir/attrs.h"
#include "ir/op_registry.h"
#include "ir/shape.h"

namespace smelt::ir {

// Checks `n` operands and `attrs` against `def`'s arity and attribute schema (and that the op has
// a type rule). Errors name the op. Node::make and the verifier share it.
absl::Status check_signature(const OpDef& def, int n, const Attrs& attrs);

// How autograd treats a node. The frontend sets it (frontend/autograd.cpp); the autodiff pass
// reads it; every other pass ignores it, and it is not part of the hash.
enum class GradRole : uint8_t {
  kNone,      // no gradient flows here (no input requires grad, or built under NoGradGuard)
  kLeaf,      // a value the user marked requires_grad: gradients stop and accumulate here
  kInterior,  // computed from values that require grad: gradients flow on to its operands
};

class Node {
 public:
  // Validates arity, attribute schema, devices and the op's type rule, then builds the node.
  // `device` is used only by sources (ops without inputs); others take their inputs' device.
  static absl::StatusOr<NodePtr> make(OpCode op, NodeList&& inputs, Attrs&& attrs = {},
                                      Device device = Device::cpu());
  // The operands and attributes are taken by rvalue reference: a node's operand list and
  // attributes are inline arrays, so each move through a by-value parameter copies their elements.
  static absl::StatusOr<NodePtr> make(OpCode op, NodeList&& inputs, const Attrs& attrs,
                                      Device device = Device::cpu()) {
    return make(op, std::move(inputs), Attrs(attrs), device);
  }

  // An `input` node holding data that already exists (a realized leaf).
  static NodePtr make_input(DType dtype, Shape shape, base::BufferPtr buffer);

  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  OpCode op() const { return op_; }
  const OpDef& def() const { return op_def(op_); }
  DType dtype() const { return type_.dtype; }
  const Shape& shape() const { return type_.shape; }
  const TypeInfo& type() const { return type_; }
  int64_t rank() const { return static_cast<int64_t>(type_.shape.size()); }
  int64_t numel() const { return ir::numel(type_.shape); }
  Device device() const { return device_; }
  const Attrs& attrs() const { return attrs_; }

  // The operands; empty once the node is realized. Read only while holding the realize lock or
  // a reference that keeps realization away (see compiler/realize.h).
  const NodeList& inputs() const { return inputs_; }
  // The operands autodiff differentiates through: inputs() while pending; once realized, the
  // inputs it kept (empty if it kept none). Compiler walks never see kept inputs, so a realized
  // value stays a leaf for them.
  const NodeList& grad_inputs() const { return realized() ? kept_inputs_ : inputs_; }

  // Structural hash: op, type, device, attributes and the inputs' input_hash(), computed once.
  uint64_t hash() const { return hash_; }
  // The hash that consumers fold into theirs: a leaf (an input, or a value realized before the
  // consumer was built) hashes by its type alone, so graphs built each step over fresh parameter
  // values hash alike instead of carrying the whole history of how those values were made.
  uint64_t input_hash() const { return is_leaf() ? leaf_hash_ : hash_; }

  // Length of the longest chain of unrealized nodes ending here (realized inputs count 0), as
  // it was when the node was built. The frontend realizes a graph that grows too deep, so a
  // loop that never reads a value still runs in bounded memory.
  int64_t pending_depth() const { return pending_depth_; }

  // Creation order; unique per process. Printing and tie-breaks use it for determinism.
  uint64_t id() const { return id_; }
  // The id the next node will get: every node made after this call has an id >= it (how
  // autograd tells the nodes one backward pass built from the graph that was there before).
  static uint64_t next_id();

  bool is_leaf() const { return op_ == OpCode::Input || realized(); }
  // A flag set after the buffer is published (an atomic shared_ptr load takes a lock and two
  // reference count updates; realized() and is_leaf() run several times per node built).
  bool realized() const { return realized_.load(std::memory_order_acquire); }
  base::BufferPtr buffer() const { return buffer_.load(std::memory_order_acquire); }

  // Attaches the node's value (row-major, contiguous, of its dtype) and drops its inputs.
  // `keep_inputs` keeps them as grad_inputs(); so does a kInterior node whose graph has not been
  // released, since a future backward() still needs the path to its leaves.
  void set_realized(base::BufferPtr buffer, bool keep_inputs = false);

  // ---- autograd state (see GradRole) ------------------------------------------------------------
  GradRole grad_role() const { return grad_role_.load(std::memory_order_acquire); }
  void set_grad_role(GradRole role) { grad_role_.store(role, std::memory_order_release); }
  // For a kLeaf: the frontend object its gradient accumulates into (a TensorImpl; type-erased
  // because the IR cannot name frontend types). Expired when that tensor is gone.
  std::weak_ptr<void> grad_owner() const;
  void set_grad_owner(std::weak_ptr<void> owner);
  // True once a backward() without retain_graph went through this node: its saved graph is
  // gone, and a second backward through it is an error (as in PyTorch).
  bool grad_released() const { return grad_released_.load(std::memory_order_acquire); }
  // Marks the node released and drops the inputs it kept for autograd.
  void release_grad_graph();

  // ---- scratch of the realization walk (compiler/realize.cpp) -----------------------------------
  // Read and written only by that walk, under the realize lock: the walk that last reached this
  // node (0: none) and the node's position in that walk's order. They replace a visited set and
  // a node -> position map on every realization.
  uint64_t walk_epoch() const { return walk_epoch_; }
  uint32_t walk_position() const { return walk_position_; }
  void set_walk_epoch(uint64_t epoch) const { walk_epoch_ = epoch; }
  void set_walk_position(uint32_t position) const { walk_position_ = position; }

  // Only Node's factories can name this, so the public constructor (needed by allocate_shared,
  // which puts the node and its reference counts in one recycled block) is theirs alone.
  class Key {
    friend class Node;
    Key() = default;
  };
  Node(Key, OpCode op, TypeInfo&& type, Device device, Attrs&& attrs, NodeList&& inputs);

 private:
  static void release(NodeList nodes);

  const OpCode op_;
  const TypeInfo type_;
  const Device device_;
  const Attrs attrs_;
  NodeList inputs_;
  NodeList kept_inputs_;  // inputs_ moved aside at realization, for autograd
  uint64_t hash_ = 0;
  uint64_t leaf_hash_ = 0;  // input_hash() once realized; cached, as program keys read it often
  int64_t pending_depth_ = 0;
  const uint64_t id_;
  mutable uint64_t walk_epoch_ = 0;
  mutable uint32_t walk_position_ = 0;
  std::atomic<base::BufferPtr> buffer_;
  std::atomic<bool> realized_{false};  // buffer_ is set (stored after it)
  std::atomic<GradRole> grad_role_{GradRole::kNone};
  std::atomic<bool> grad_released_{false};
  mutable std::mutex owner_mu_;  // guards grad_owner_
  std::weak_ptr<void> grad_owner_;
};

}  // namespace smelt::ir
