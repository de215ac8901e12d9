#include "compiler/passes/simplify.h"

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ir/op_registry.h"
#include "ir/ref_tensor.h"

namespace smelt::compiler {
namespace {

using ir::NodePtr;
using ir::OpCode;

// The key of a node for CSE: its op, attributes and operands (by identity).
struct Key {
  OpCode op;
  const ir::Attrs* attrs;
  std::vector<const ir::Node*> inputs;
  Device device;

  friend bool operator==(const Key& a, const Key& b) {
    return a.op == b.op && a.device == b.device && a.inputs == b.inputs && *a.attrs == *b.attrs;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.op, k.attrs->hash(), k.inputs,
                      static_cast<int>(k.device.type()), k.device.index());
  }
};

class Simplifier {
 public:
  explicit Simplifier(SimplifyStats& stats) : stats_(stats) {}

  ir::Graph run(const ir::Graph& graph) {
    for (ir::Node* n : ir::topo_order(graph.outputs)) visit(n);
    ir::Graph out;
    for (const NodePtr& root : graph.outputs) out.outputs.push_back(new_of_.at(root.get()));
    return out;
  }

 private:
  void visit(ir::Node* n) {
    if (n->is_leaf() || n->inputs().empty()) {
      new_of_[n] = self(n);
      return;
    }
    std::vector<NodePtr> inputs;
    inputs.reserve(n->inputs().size());
    bool changed = false;
    for (const NodePtr& in : n->inputs()) {
      inputs.push_back(new_of_.at(in.get()));
      changed = changed || inputs.back() != in;
    }
    NodePtr result = rewrite(*n, inputs);
    if (result == nullptr) {
      result = changed ? remake(*n, std::move(inputs)) : self(n);
    }
    new_of_[n] = intern(std::move(result));
  }

  // The NodePtr that owns n (n is reachable from the outputs, so some operand list holds it).
  NodePtr self(ir::Node* n) {
    auto it = owner_.find(n);
    if (it != owner_.end()) return it->second;
    return nullptr;  // filled below by remember_owners
  }

  NodePtr remake(const ir::Node& n, std::vector<NodePtr> inputs) {
    absl::StatusOr<NodePtr> made = ir::Node::make(n.op(), std::move(inputs), n.attrs(), n.device());
    // The operands have the types the originals had, so the op's type rule cannot fail.
    return made.ok() ? *std::move(made) : nullptr;
  }

  NodePtr intern(NodePtr n) {
    if (n == nullptr || n->is_leaf() || n->inputs().empty()) return n;
    Key key{n->op(), &n->attrs(), {}, n->device()};
    for (const NodePtr& in : n->inputs()) key.inputs.push_back(in.get());
    auto [it, inserted] = seen_.try_emplace(std::move(key), n);
    if (!inserted) {
      ++stats_.merged;
      return it->second;
    }
    return n;
  }

  // ---- rules: a replacement for `n` with operands `in`, or null to keep the op ----------------

  NodePtr rewrite(const ir::Node& n, const std::vector<NodePtr>& in) {
    const ir::OpDef& def = ir::op_def(n.op());
    if (def.kind == ir::OpKind::Elementwise) {
      if (NodePtr folded = fold(n, in)) return folded;
      return identity(n, in);
    }
    if (def.kind == ir::OpKind::Movement) return view(n, in);
    return nullptr;
  }

  // The value of `n` if it is one number broadcast: a constant seen through reshape/expand.
  static const ir::Node* scalar_constant(const NodePtr& n) {
    const ir::Node* x = n.get();
    while (x->op() == OpCode::Reshape || x->op() == OpCode::Expand) {
      if (x->is_leaf()) return nullptr;
      x = x->inputs()[0].get();
    }
    return x->op() == OpCode::Constant ? x : nullptr;
  }
  static bool is_value(const NodePtr& n, double v) {
    const ir::Node* c = scalar_constant(n);
    return c != nullptr && c->attrs().get_float("value") == v;
  }

  NodePtr fold(const ir::Node& n, const std::vector<NodePtr>& in) {
    std::vector<ir::RefTensor> values;
    for (const NodePtr& x : in) {
      const ir::Node* c = scalar_constant(x);
      if (c == nullptr) return nullptr;
      ir::RefTensor t = ir::RefTensor::zeros(c->dtype(), {});
      t.set(0, c->attrs().get_float("value"));
      values.push_back(std::move(t));
    }
    std::vector<const ir::RefTensor*> ptrs;
    for (const ir::RefTensor& t : values) ptrs.push_back(&t);
    const ir::OpDef& def = ir::op_def(n.op());
    absl::StatusOr<ir::RefTensor> r =
        def.ref_eval(ptrs, n.attrs(), ir::TypeInfo{n.dtype(), ir::Shape{}});
    if (!r.ok()) return nullptr;
    const double v = r->get(0);
    // A constant holds a double: Int64 values beyond 2^53 would not survive the trip.
    if (n.dtype() == DType::Int64 && std::fabs(v) > 9007199254740992.0) return nullptr;
    absl::StatusOr<NodePtr> c =
        ir::Node::make(OpCode::Constant, {}, {{"dtype", n.dtype()}, {"value", v}}, n.device());
    if (!c.ok()) return nullptr;
    ++stats_.folded;
    return broadcast(*std::move(c), n.shape());
  }

  // `c` (0-d) viewed at `shape`, as the frontend broadcasts scalars.
  NodePtr broadcast(NodePtr c, const ir::Shape& shape) {
    if (shape.empty()) return c;
    ir::IntList ones(shape.size(), 1);
    NodePtr r = intern(make(OpCode::Reshape, {std::move(c)}, {{"shape", ones}}));
    if (ir::IntList(shape.begin(), shape.end()) == ones) return r;
    return make(OpCode::Expand, {std::move(r)},
                {{"shape", ir::IntList(shape.begin(), shape.end())}});
  }

  NodePtr make(OpCode op, std::vector<NodePtr> inputs, ir::Attrs attrs) {
    const Device device = inputs.empty() ? Device::cpu() : inputs[0]->device();
    absl::StatusOr<NodePtr> made = ir::Node::make(op, std::move(inputs), std::move(attrs), device);
    return made.ok() ? *std::move(made) : nullptr;
  }

  NodePtr identity(const ir::Node& n, const std::vector<NodePtr>& in) {
    NodePtr keep;
    switch (n.op()) {
      case OpCode::Add:
        if (is_value(in[1], 0)) keep = in[0];
        if (is_value(in[0], 0)) keep = in[1];
        break;
      case OpCode::Sub:
        if (is_value(in[1], 0)) keep = in[0];
        break;
      case OpCode::Mul:
        if (is_value(in[1], 1)) keep = in[0];
        if (is_value(in[0], 1)) keep = in[1];
        break;
      case OpCode::Div:
        if (is_value(in[1], 1)) keep = in[0];
        break;
      case OpCode::Neg:
        if (in[0]->op() == OpCode::Neg && !in[0]->is_leaf()) keep = in[0]->inputs()[0];
        break;
      case OpCode::Cast:
        if (in[0]->dtype() == n.dtype()) keep = in[0];
        break;
      default:
        break;
    }
    // The replacement must be exactly the value: same dtype and shape (Bool add is "or", so
    // x + false is x too; every rule above keeps the type).
    if (keep == nullptr || keep->type() != n.type()) return nullptr;
    ++stats_.identities;
    return keep;
  }

  NodePtr view(const ir::Node& n, const std::vector<NodePtr>& in) {
    const NodePtr& x = in[0];
    const bool same_shape = x->shape() == n.shape();
    switch (n.op()) {
      case OpCode::Reshape:
        if (same_shape) return count_view(x);
        if (x->op() == OpCode::Reshape && !x->is_leaf()) {
          const NodePtr& inner = x->inputs()[0];
          if (inner->shape() == n.shape()) return count_view(inner);
          return count_view(make(OpCode::Reshape, {inner}, n.attrs()));
        }
        return nullptr;
      case OpCode::Expand:
        return same_shape ? count_view(x) : nullptr;
      case OpCode::Permute: {
        const ir::IntList& p = n.attrs().get_ints("perm");
        bool identity = true;
        for (size_t i = 0; i < p.size(); ++i)
          identity = identity && p[i] == static_cast<int64_t>(i);
        if (identity) return count_view(x);
        if (x->op() == OpCode::Matmul && !x->is_leaf() && swaps_last_two(p) &&
            single_use(n.inputs()[0].get())) {
          // (A B)^T = B^T A^T. The transposes are views the matmul reads through strides (BLAS
          // flags), so the product is written in the layout asked for instead of being copied
          // into it by a kernel: autodiff's weight gradients are such permutes of a matmul.
          // Only when nothing else reads A B, or the product would be computed twice.
          NodePtr bt = permuted(x->inputs()[1], p);
          NodePtr at = permuted(x->inputs()[0], p);
          if (bt != nullptr && at != nullptr) {
            ++stats_.transposed_products;
            return make(OpCode::Matmul, {std::move(bt), std::move(at)}, {});
          }
          return nullptr;
        }
        if (x->op() == OpCode::Permute && !x->is_leaf()) return count_view(permuted(x, p));
        return nullptr;
      }
      case OpCode::Slice:
        if (same_shape && n.attrs().get_int("step") == 1 && n.attrs().get_int("start") == 0) {
          return count_view(x);
        }
        return nullptr;
      default:
        return nullptr;
    }
  }

  // A permutation that keeps the leading (batch) dims and swaps the last two.
  static bool swaps_last_two(const ir::IntList& p) {
    const size_t r = p.size();
    if (r < 2) return false;
    for (size_t i = 0; i + 2 < r; ++i) {
      if (p[i] != static_cast<int64_t>(i)) return false;
    }
    return p[r - 2] == static_cast<int64_t>(r - 1) && p[r - 1] == static_cast<int64_t>(r - 2);
  }

  // `x` permuted by `p`, composed with a permute x already is (dropped when that gives the
  // identity).
  NodePtr permuted(const NodePtr& x, const ir::IntList& p) {
    if (x->op() == OpCode::Permute && !x->is_leaf()) {
      // Result dim i is x's dim p[i], which is x's operand's dim inner[p[i]].
      const ir::IntList& inner = x->attrs().get_ints("perm");
      ir::IntList composed(p.size());
      bool identity = true;
      for (size_t i = 0; i < p.size(); ++i) {
        composed[i] = inner[p[i]];
        identity = identity && composed[i] == static_cast<int64_t>(i);
      }
      if (identity) return x->inputs()[0];
      return make(OpCode::Permute, {x->inputs()[0]}, {{"perm", composed}});
    }
    return make(OpCode::Permute, {x}, {{"perm", p}});
  }

  // True when the original graph reads `n` exactly once (one operand slot, not an output).
  bool single_use(const ir::Node* n) const {
    auto it = uses_.find(n);
    return it != uses_.end() && it->second == 1;
  }

  NodePtr count_view(NodePtr n) {
    if (n != nullptr) ++stats_.views;
    return n;
  }

 public:
  // Owners of every reachable node, so a node that stays as it is keeps its NodePtr.
  void remember_owners(const ir::Graph& graph) {
    for (const NodePtr& r : graph.outputs) {
      owner_.emplace(r.get(), r);
      ++uses_[r.get()];
    }
    for (ir::Node* n : ir::topo_order(graph.outputs)) {
      if (n->is_leaf()) continue;
      for (const NodePtr& in : n->inputs()) {
        owner_.emplace(in.get(), in);
        ++uses_[in.get()];
      }
    }
  }

 private:
  SimplifyStats& stats_;
  absl::flat_hash_map<const ir::Node*, NodePtr> new_of_;
  absl::flat_hash_map<const ir::Node*, NodePtr> owner_;
  // Operand slots (and outputs) that read each node of the original graph.
  absl::flat_hash_map<const ir::Node*, int> uses_;
  absl::flat_hash_map<Key, NodePtr> seen_;
};

}  // namespace

ir::Graph simplify(const ir::Graph& graph, SimplifyStats* stats) {
  SimplifyStats local;
  Simplifier s(stats != nullptr ? *stats : local);
  s.remember_owners(graph);
  return s.run(graph);
}

}  // namespace smelt::compiler
