#include "ir/node.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/recycling_allocator.h"
#include "base/tls.h"
#include "ir/hash.h"

namespace smelt::ir {
namespace {

std::atomic<uint64_t> g_next_id{0};

uint64_t leaf_hash(const TypeInfo& type, Device device) {
  uint64_t h = hash_combine(0x6c656166 /* "leaf" */, static_cast<uint64_t>(type.dtype));
  h = hash_combine(h, static_cast<uint64_t>(device.type()) * 1024 + device.index());
  for (int64_t d : type.shape) h = hash_combine(h, static_cast<uint64_t>(d));
  return hash_combine(h, type.shape.size());
}

}  // namespace

Node::Node(Key, OpCode op, TypeInfo&& type, Device device, Attrs&& attrs, NodeList&& inputs)
    : op_(op),
      type_(std::move(type)),
      device_(device),
      attrs_(std::move(attrs)),
      inputs_(std::move(inputs)),
      id_(g_next_id.fetch_add(1, std::memory_order_relaxed)) {
  leaf_hash_ = leaf_hash(type_, device_);
  uint64_t h = hash_combine(static_cast<uint64_t>(op_) + 1, leaf_hash_);
  h = hash_combine(h, attrs_.hash());
  for (const NodePtr& in : inputs_) {
    const bool leaf = in->is_leaf();
    h = hash_combine(h, leaf ? in->leaf_hash_ : in->hash_);  // in->input_hash()
    if (!leaf) pending_depth_ = std::max(pending_depth_, in->pending_depth());
  }
  hash_ = h;
  if (op_ != OpCode::Input) ++pending_depth_;
}

Node::~Node() {
  // The common case: release() below (or set_realized) has taken the operands already.
  if (inputs_.empty() && kept_inputs_.empty()) return;
  NodeList all = std::move(inputs_);
  for (NodePtr& in : kept_inputs_) all.push_back(std::move(in));
  release(std::move(all));
}

void Node::release(NodeList nodes) {
  // Free a graph from a worklist: a 100,000-node chain must not recurse through destructors.
  while (!nodes.empty()) {
    NodePtr n = std::move(nodes.back());
    nodes.pop_back();
    if (n.use_count() == 1) {
      // We hold the last reference: adopt its inputs so its destructor has nothing to recurse on.
      for (NodePtr& in : n->inputs_) nodes.push_back(std::move(in));
      for (NodePtr& in : n->kept_inputs_) nodes.push_back(std::move(in));
      n->inputs_.clear();
      n->kept_inputs_.clear();
    }
  }
}

uint64_t Node::next_id() { return g_next_id.load(std::memory_order_relaxed); }

absl::Status check_signature(const OpDef& def, int n, const Attrs& attrs) {
  if (n < def.min_inputs || (def.max_inputs >= 0 && n > def.max_inputs)) {
    return absl::InvalidArgumentError(
        absl::StrCat(def.name, ": takes ",
                     def.min_inputs == def.max_inputs ? absl::StrCat(def.min_inputs)
                     : def.max_inputs < 0             ? absl::StrCat("at least ", def.min_inputs)
                                          : absl::StrCat(def.min_inputs, " to ", def.max_inputs),
                     " operands, got ", n));
  }
  if (def.infer == nullptr) {
    return absl::UnimplementedError(absl::StrCat(def.name, ": op has no type rule"));
  }
  // The common case in one pass: every attribute is in the schema with its kind, and every
  // required one is there (names are unique, so counting them suffices). Anything else takes the
  // checks below, which find the first problem in the order the error messages promise.
  size_t required = 0, required_present = 0;
  for (const AttrSpec& spec : def.attrs) required += spec.optional ? 0 : 1;
  bool fine = true;
  for (const auto& [name, value] : attrs.items()) {
    const AttrSpec* match = nullptr;
    for (const AttrSpec& spec : def.attrs) {
      if (spec.name == name) {
        match = &spec;
        break;
      }
    }
    if (match == nullptr || attr_kind(value) != match->kind) {
      fine = false;
      break;
    }
    required_present += match->optional ? 0 : 1;
  }
  if (fine && required_present == required) return absl::OkStatus();
  for (const AttrSpec& spec : def.attrs) {
    const AttrValue* v = attrs.find(spec.name);
    if (v == nullptr) {
      if (spec.optional) continue;
      return absl::InvalidArgumentError(
          absl::StrCat(def.name, ": missing attribute '", spec.name.str(), "'"));
    }
    if (attr_kind(*v) != spec.kind) {
      return absl::InvalidArgumentError(absl::StrCat(def.name, ": attribute '", spec.name.str(),
                                                     "' must be ", attr_kind_name(spec.kind),
                                                     ", got ", attr_kind_name(attr_kind(*v))));
    }
  }
  for (const auto& [name, value] : attrs.items()) {
    bool known = false;
    for (const AttrSpec& spec : def.attrs) known |= spec.name == name;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(def.name, ": unknown attribute '", name.str(), "'"));
    }
  }
  return absl::OkStatus();
}

namespace {
// Node::make's per-thread array of operand types; `busy` while a call uses it.
struct Scratch {
  std::vector<TypeInfo> types;
  bool busy = false;
};
thread_local Scratch t_scratch SMELT_FAST_TLS;
}  // namespace

absl::StatusOr<NodePtr> Node::make(OpCode op, NodeList&& inputs, Attrs&& attrs, Device device) {
  const OpDef& def = op_def(op);
  if (absl::Status s = check_signature(def, static_cast<int>(inputs.size()), attrs); !s.ok()) {
    return s;
  }
  // The operand types, copied into a per-thread scratch array whose shapes keep their capacity:
  // building a node allocates nothing here in steady state. A type rule never builds nodes, but
  // if one ever did, the nested call takes a local array instead.
  Scratch& scratch = t_scratch;  // one TLS lookup
  std::vector<TypeInfo> local;
  std::vector<TypeInfo>& types = scratch.busy ? local : scratch.types;
  struct Release {
    bool* busy;
    ~Release() {
      if (busy != nullptr) *busy = false;
    }
  } release_scratch{&types == &scratch.types ? &scratch.busy : nullptr};
  scratch.busy = true;
  if (types.size() < inputs.size()) types.resize(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const NodePtr& in = inputs[k];
    if (in == nullptr) return absl::InvalidArgumentError(absl::StrCat(def.name, ": null operand"));
    types[k].dtype = in->dtype();
    types[k].shape.assign(in->shape().begin(), in->shape().end());
  }
  if (!inputs.empty()) {
    device = inputs[0]->device();
    for (const NodePtr& in : inputs) {
      if (in->device() != device) {
        return absl::InvalidArgumentError(
            absl::StrCat(def.name, ": operands are on different devices (", device.str(), " and ",
                         in->device().str(), "); move them to one device first"));
      }
    }
  }
  absl::StatusOr<TypeInfo> type =
      def.infer(absl::MakeConstSpan(types.data(), inputs.size()), attrs);
  if (!type.ok()) return type.status();
  return std::allocate_shared<Node>(base::RecyclingAllocator<Node>(), Key(), op, *std::move(type),
                                    device, std::move(attrs), std::move(inputs));
}

NodePtr Node::make_input(DType dtype, Shape shape, base::BufferPtr buffer) {
  Device device = buffer ? buffer->device() : Device::cpu();
  Attrs attrs{{"dtype", dtype}, {"shape", shape}};
  NodePtr n = std::allocate_shared<Node>(base::RecyclingAllocator<Node>(), Key(), OpCode::Input,
                                         TypeInfo{dtype, std::move(shape)}, device,
                                         std::move(attrs), NodeList{});
  if (buffer) {
    n->buffer_.store(std::move(buffer), std::memory_order_release);
    n->realized_.store(true, std::memory_order_release);
  }
  return n;
}

void Node::set_realized(base::BufferPtr buffer, bool keep_inputs) {
  keep_inputs |= grad_role() == GradRole::kInterior && !grad_released();
  // Move the inputs aside before publishing the buffer: a reader that sees realized() must find
  // them in kept_inputs_.
  NodeList inputs = std::move(inputs_);
  inputs_.clear();
  if (keep_inputs) kept_inputs_ = std::move(inputs);
  const bool has_buffer = buffer != nullptr;  // realized() stays as it was for a null one
  buffer_.store(std::move(buffer), std::memory_order_release);
  realized_.store(has_buffer, std::memory_order_release);
  if (!keep_inputs) release(std::move(inputs));
}

std::weak_ptr<void> Node::grad_owner() const {
  std::lock_guard<std::mutex> lock(owner_mu_);
  return grad_owner_;
}

void Node::set_grad_owner(std::weak_ptr<void> owner) {
  std::lock_guard<std::mutex> lock(owner_mu_);
  grad_owner_ = std::move(owner);
}

void Node::release_grad_graph() {
  grad_released_.store(true, std::memory_order_release);
  if (!realized()) return;
  NodeList kept = std::move(kept_inputs_);
  kept_inputs_.clear();  // a moved-from inline list keeps its (now null) elements
  release(std::move(kept));
}

}  // namespace smelt::ir
