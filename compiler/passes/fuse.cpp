#include "compiler/passes/fuse.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "compiler/strided_view.h"
#include "ir/text.h"

namespace smelt::compiler {
namespace {

using ir::Node;
using ir::OpCode;
using ir::OpKind;

bool is_library(const Node* n) {
  const OpKind k = n->def().kind;
  return k == OpKind::Matmul || k == OpKind::Gather || k == OpKind::Window || k == OpKind::Scan;
}

bool is_inline_source(const Node* n) { return n->op() == OpCode::Constant && !n->realized(); }

// The axes a reduction reduces (normalized and sorted).
std::vector<int64_t> reduced_axes(const Node* r) {
  if (r->op() == OpCode::ArgMax || r->op() == OpCode::ArgMin) {
    return {r->attrs().get_int("axis")};
  }
  return r->attrs().get_ints("axes");
}

// `shape` with the reduced `axes` set to 1 (keepdim) or dropped.
ir::Shape reduced_shape(const ir::Shape& shape, const std::vector<int64_t>& axes, bool keep) {
  ir::Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    const bool reduced = std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) != axes.end();
    if (!reduced) {
      out.push_back(shape[d]);
    } else if (keep) {
      out.push_back(1);
    }
  }
  return out;
}

// Rough cost of computing one element of `n` itself (not its inputs): the registry's trait for
// elementwise ops; views and library calls cost nothing here.
int op_cost(const Node* n) {
  return n->def().kind == OpKind::Elementwise ? n->def().traits.cost : 0;
}

class Planner {
 public:
  Planner(const ir::Graph& g, const FusionOptions& opt) : graph_(g), opt_(opt) {
    plan_.order = ir::topo_order(g.outputs);
    for (Node* n : plan_.order) {
      for (const ir::NodePtr& in : n->inputs()) users_[in.get()].push_back(n);
    }
    for (const ir::NodePtr& out : g.outputs) roots_.insert(out.get());
    for (Node* n : plan_.order) {
      if (may_be_stage(n)) row_candidates_.insert(n);
    }
    // Reductions that can never fuse into a consumer (several users, or one that is not
    // elementwise at the same shape) are cuts whatever else is decided; knowing that up front
    // keeps "does this region contain a reduction" from counting them.
    for (Node* n : plan_.order) {
      if (n->def().kind != OpKind::Reduce || row_candidates_.contains(n)) continue;
      const auto& users = users_[n];
      if (users.size() != 1 || users[0]->def().kind != OpKind::Elementwise ||
          users[0]->shape() != n->shape()) {
        surely_cut_.insert(n);
      }
    }
    // Library calls read buffers: an operand that is a strided view of a buffer is read in
    // place (BLAS takes strides and transposes), anything else gets a buffer of its own.
    for (Node* n : plan_.order) {
      if (!is_library(n)) continue;
      for (size_t i = 0; i < n->inputs().size(); ++i) {
        const Node* operand = n->inputs()[i].get();
        if (n->def().kind == OpKind::Matmul) {
          auto view = as_strided_view(operand);
          if (view && !is_inline_source(view->base)) {
            if (pending(view->base)) {
              forced_.emplace(view->base, absl::StrCat("operand of ", n->def().name,
                                                       " (read through a strided view)"));
            }
            continue;
          }
        }
        // index_select and index_add read their source as one block: a reshape of a buffer
        // (gather's flattened source) is read in place (compiler/lower.cpp), so the buffer is
        // what needs one. (Should the same reshape also be the index, that operand forces it.)
        if ((n->op() == OpCode::IndexSelect || n->op() == OpCode::IndexAdd) && i == 0) {
          operand = reshape_base(operand);
        }
        // A constant operand too: it is inline for kernels, but a library call reads memory.
        if (pending(operand) || is_inline_source(operand)) {
          forced_.emplace(operand, absl::StrCat("operand of ", n->def().name, " (a library call)"));
        }
      }
    }
  }

  FusionPlan run() {
    // Size caps first: they bound every inline region, so the per-node walks in decide() cost
    // O(cap) and planning stays linear in the graph, however long its chains.
    enforce_caps();
    decide();
    group_outputs();
    return std::move(plan_);
  }

 private:
  bool pending(const Node* n) const { return !n->is_leaf() && !is_inline_source(n); }

  void materialize(const Node* n, std::string reason) {
    plan_.materialized.emplace(n, std::move(reason));
  }

  // Decides users before producers (reverse topological order), so every node knows which
  // kernels its users end up in.
  void decide() {
    for (auto it = plan_.order.rbegin(); it != plan_.order.rend(); ++it) {
      Node* n = *it;
      if (is_inline_source(n) && (roots_.contains(n) || forced_.contains(n))) {
        // A requested constant, or a library call's operand, still needs a buffer.
        materialize(n, roots_.contains(n) ? std::string("requested value") : forced_.at(n));
        owners_[n] = {n};
        continue;
      }
      if (!pending(n)) continue;
      const std::vector<Node*>& users = users_[n];
      std::string reason = cut_reason(n, users);
      if (!reason.empty()) {
        materialize(n, std::move(reason));
        owners_[n] = {n};
        continue;
      }
      // Inline: n runs inside every kernel that one of its users runs in.
      absl::flat_hash_set<const Node*>& own = owners_[n];
      for (Node* u : users) {
        for (const Node* o : owners_[u]) own.insert(o);
      }
      if (n->def().kind == OpKind::Reduce && !plan_.stage_of.contains(n)) {
        plan_.epilogue_of[n] = *own.begin();  // cut_reason made sure there is exactly one
        reduce_owner_[*own.begin()] = n;
      }
    }
  }

  std::string cut_reason(const Node* n, const std::vector<Node*>& users) {
    if (!opt_.enabled) return "fusion disabled";
    if (roots_.contains(n)) return "requested value";
    if (is_library(n)) return absl::StrCat(n->def().name, " is a library call");
    if (forced_.contains(n)) return forced_.at(n);
    if (n->def().kind == OpKind::Reduce) return reduce_cut_reason(n, users);
    // Elementwise and movement nodes are recomputed where they are used unless that duplicates
    // expensive work: a reduction inside them, or costly math used several times or broadcast.
    const int cost = inline_cost(n);
    if (users.size() > 1 || owners_of_users(users) > 1) {
      if (contains_reduction(n)) return "shared value computed by a reduction";
      if (cost >= opt_.recompute_cost) {
        return absl::StrCat("shared by ", users.size(), " users; too costly to recompute (cost ",
                            cost, ")");
      }
    }
    for (const Node* u : users) {
      if (u->op() == OpCode::Expand && u->numel() > n->numel()) {
        if (contains_reduction(n)) return "reduction result broadcast by expand";
        if (cost >= opt_.recompute_cost) return "costly value broadcast by expand";
      }
      if (u->def().kind == OpKind::Reduce && contains_reduction(n)) {
        return "reduction feeding another reduction";
      }
    }
    return "";
  }

  // A reduction runs in its consumer's kernel (as that kernel's reduction, followed by the
  // consumer's elementwise ops) when that is the only place it is needed and nothing between
  // them changes the shape.
  std::string reduce_cut_reason(const Node* r, const std::vector<Node*>& users) {
    if (row_candidates_.contains(r)) {
      if (const Node* k = stage_kernel(r)) {
        plan_.stage_of[r] = k;
        return "";
      }
    }
    if (users.size() != 1) return "reduction with several users";
    const Node* u = users[0];
    if (u->def().kind != OpKind::Elementwise || u->shape() != r->shape()) {
      return absl::StrCat("reduction consumed by ", u->def().name, " at another shape");
    }
    const auto& own = owners_[u];
    if (own.size() != 1) return "reduction consumer is computed in several kernels";
    const Node* m = *own.begin();
    if (m->def().kind != OpKind::Elementwise || m->shape() != r->shape()) {
      return "reduction consumer's kernel has another shape";
    }
    if (reduce_owner_.contains(m)) return "consumer kernel already holds a reduction";
    if (rows_.contains(m)) return "consumer kernel is a row kernel";
    if (!same_shape_path(r, m)) return "a view lies between the reduction and its consumer";
    return "";
  }

  // ---- multi-output kernels ----------------------------------------------------------------

  // A kernel that may share its loop with others: elementwise, with no reduction of its own.
  bool groupable(const Node* k) const {
    return k->def().kind == OpKind::Elementwise && !reduce_owner_.contains(k) &&
           !rows_.contains(k) && k->numel() > 0;
  }

  // The kernels that read materialized node m: its users' kernels.
  absl::flat_hash_set<const Node*> readers(const Node* m) {
    absl::flat_hash_set<const Node*> out;
    for (const Node* u : users_[m]) {
      if (plan_.is_materialized(u)) {
        out.insert(u);
      } else {
        for (const Node* o : owners_[u]) out.insert(o);
      }
    }
    return out;
  }

  // The buffers kernel k's inline region reads (members of `group` excluded: they are computed).
  void region_inputs(const Node* k, const absl::flat_hash_set<const Node*>& group,
                     absl::flat_hash_set<const Node*>& inputs) {
    std::vector<const Node*> stack{k};
    absl::flat_hash_set<const Node*> seen{k};
    while (!stack.empty()) {
      const Node* x = stack.back();
      stack.pop_back();
      for (const ir::NodePtr& in : x->inputs()) {
        const Node* p = in.get();
        if (is_inline_source(p) || !seen.insert(p).second) continue;
        if (p->is_leaf() || (plan_.is_materialized(p) && !group.contains(p))) {
          inputs.insert(p);
        } else {
          stack.push_back(p);
        }
      }
    }
  }

  // Joins materialized elementwise kernels of one shape into multi-output kernels, greedily in
  // plan order. The joined kernel runs where its last member is, so a member may join only if
  // no kernel between it and that point reads it; a member another member reads is computed
  // inline there (its region has no reduction, so that recomputes only elementwise work).
  void group_outputs() {
    if (opt_.max_outputs <= 1) return;
    absl::flat_hash_map<const Node*, size_t> position;
    for (size_t i = 0; i < plan_.order.size(); ++i) position[plan_.order[i]] = i;
    struct Group {
      std::vector<const Node*> members;
      absl::flat_hash_set<const Node*> set;
      absl::flat_hash_set<const Node*> latest_readers;  // readers of members, outside the group
    };
    absl::flat_hash_map<ir::Shape, Group> open;  // the group each shape is collecting
    std::vector<Group> done;
    for (const Node* k : plan_.order) {
      if (!plan_.is_materialized(k) || !groupable(k)) continue;
      auto it = open.find(k->shape());
      bool joins =
          it != open.end() && static_cast<int>(it->second.members.size()) < opt_.max_outputs;
      if (joins) {
        // No reader of a member may run before the joined kernel (at k).
        for (const Node* r : it->second.latest_readers) {
          if (r != k && position.at(r) < position.at(k)) joins = false;
        }
      }
      if (joins) {
        absl::flat_hash_set<const Node*> set = it->second.set;
        set.insert(k);
        absl::flat_hash_set<const Node*> inputs;
        for (const Node* m : set) region_inputs(m, set, inputs);
        joins = static_cast<int>(inputs.size()) <= opt_.max_kernel_inputs;
      }
      if (!joins) {
        if (it != open.end()) done.push_back(std::move(it->second));
        it = open.insert_or_assign(k->shape(), Group{}).first;
      }
      Group& g = it->second;
      g.members.push_back(k);
      g.set.insert(k);
      for (const Node* r : readers(k)) {
        if (!g.set.contains(r)) g.latest_readers.insert(r);
      }
      g.latest_readers.erase(k);
    }
    for (auto& [shape, g] : open) done.push_back(std::move(g));
    for (const Group& g : done) {
      for (size_t i = 0; i + 1 < g.members.size(); ++i) {
        plan_.grouped_into[g.members[i]] = g.members.back();
      }
    }
  }

  // A reduction that may run as a row kernel's stage, if its users turn out to allow it (see
  // stage_kernel). Until it is decided, contains_reduction() does not count it, so the values
  // between it and its consumer are not cut for holding a reduction: if it then cannot be a
  // stage, it gets a buffer of its own, and they read that instead of recomputing it.
  bool may_be_stage(const Node* r) const {
    if (opt_.max_stages <= 0 || r->def().kind != OpKind::Reduce || !pending(r) ||
        roots_.contains(r)) {
      return false;
    }
    if (r->op() != OpCode::Sum && r->op() != OpCode::Prod && r->op() != OpCode::Max &&
        r->op() != OpCode::Min) {
      return false;
    }
    const ir::Shape& in = r->inputs()[0]->shape();
    int64_t row = 1;
    for (int64_t d : reduced_axes(r)) {
      if (d >= static_cast<int64_t>(in.size())) return false;  // a 0-d input reduces nothing
      row *= in[d];
    }
    // A row of one point needs no stage; an empty one has nothing to broadcast back.
    return row >= 2 && ir::numel(in) > 0 &&
           row * static_cast<int64_t>(dtype_size(r->dtype())) <= opt_.max_row_bytes;
  }

  // The kernel that can compute reduction r as a stage, or nullptr. Every user of r must run in
  // that one kernel k, and every path from r up to k's row values must be: elementwise ops at
  // r's reduced shape, a reshape between its keepdim and dropped forms, one expand back to r's
  // input shape S, and elementwise ops at S, ending at k itself (elementwise of shape S: its
  // outputs are stored per point of the row), at k's main reduction (over the same axes of a
  // value of shape S), or at another stage of k. Then r's value at every point of those paths is
  // the stage's result for the row being computed, and r is computed once per row.
  const Node* stage_kernel(const Node* r) {
    const Node* k = nullptr;
    for (const Node* u : users_[r]) {
      const auto& own = owners_[u];
      if (own.size() != 1 || (k != nullptr && *own.begin() != k)) return nullptr;
      k = *own.begin();
    }
    if (k == nullptr) return nullptr;
    const ir::Shape& shape = r->inputs()[0]->shape();
    const std::vector<int64_t> axes = reduced_axes(r);
    const Node* anchor = k;
    if (auto it = reduce_owner_.find(k); it != reduce_owner_.end()) anchor = it->second;
    if (anchor->def().kind == OpKind::Reduce) {
      if (anchor->inputs()[0]->shape() != shape || reduced_axes(anchor) != axes) return nullptr;
    } else if (anchor->def().kind != OpKind::Elementwise || anchor->shape() != shape) {
      return nullptr;
    }
    auto row = rows_.find(k);
    if (row != rows_.end() && (row->second.shape != shape || row->second.axes != axes ||
                               row->second.stages >= opt_.max_stages)) {
      return nullptr;
    }
    const ir::Shape keep = reduced_shape(shape, axes, true);
    const ir::Shape drop = reduced_shape(shape, axes, false);
    auto reduced = [&](const ir::Shape& s) { return s == keep || s == drop; };
    std::vector<const Node*> stack(users_[r].begin(), users_[r].end());
    absl::flat_hash_set<const Node*> seen;
    while (!stack.empty()) {
      const Node* u = stack.back();
      stack.pop_back();
      if (!seen.insert(u).second) continue;
      const auto& own = owners_[u];
      if (own.size() != 1 || !own.contains(k)) return nullptr;
      if (u == anchor) continue;
      if (auto st = plan_.stage_of.find(u); st != plan_.stage_of.end() && st->second == k) continue;
      const ir::Shape& us = u->shape();
      bool ok = false;
      if (u->def().kind == OpKind::Elementwise) {
        ok = us == shape || reduced(us);
      } else if (u->op() == OpCode::Reshape) {
        ok = reduced(us) && reduced(u->inputs()[0]->shape());
      } else if (u->op() == OpCode::Expand) {
        ok = us == shape && u->inputs()[0]->shape() == keep;
      }
      if (!ok) return nullptr;
      for (const Node* x : users_[u]) stack.push_back(x);
    }
    Row& entry = rows_[k];
    entry.shape = shape;
    entry.axes = axes;
    ++entry.stages;
    return k;
  }

  // Every inline node from r up to m is elementwise of r's shape.
  bool same_shape_path(const Node* r, const Node* m) {
    std::vector<const Node*> stack{r};
    absl::flat_hash_set<const Node*> seen;
    while (!stack.empty()) {
      const Node* x = stack.back();
      stack.pop_back();
      for (const Node* u : users_[x]) {
        if (!owners_[u].contains(m) || !seen.insert(u).second) continue;
        if (u->def().kind != OpKind::Elementwise || u->shape() != r->shape()) return false;
        if (u != m) stack.push_back(u);
      }
    }
    return true;
  }

  size_t owners_of_users(const std::vector<Node*>& users) {
    absl::flat_hash_set<const Node*> all;
    for (const Node* u : users) {
      for (const Node* o : owners_[u]) all.insert(o);
    }
    return all.size();
  }

  // The inline region of n: n and the pending, unmaterialized nodes it reads, transitively.
  // Producers are decided after n, so at this point "unmaterialized" means "not yet known to be
  // cut": reductions and library calls, which are always cut or are epilogue reductions, count
  // as boundaries of the region.
  // `visit` returns false to stop the walk early.
  template <typename F>
  void walk_region(const Node* n, F&& visit) {
    std::vector<const Node*> stack{n};
    absl::flat_hash_set<const Node*> seen{n};
    while (!stack.empty()) {
      const Node* x = stack.back();
      stack.pop_back();
      if (!visit(x)) return;
      if (x != n && (x->def().kind == OpKind::Reduce || is_library(x))) continue;
      for (const ir::NodePtr& in : x->inputs()) {
        const Node* p = in.get();
        if (!pending(p) || plan_.materialized.contains(p) || forced_.contains(p) ||
            surely_cut_.contains(p) || !seen.insert(p).second) {
          continue;
        }
        stack.push_back(p);
      }
    }
  }

  int inline_cost(const Node* n) {
    int cost = 0;
    // Only "below the threshold or not" matters: stop counting there.
    walk_region(n, [&](const Node* x) {
      cost += op_cost(x);
      return cost < opt_.recompute_cost;
    });
    return cost;
  }

  bool contains_reduction(const Node* n) {
    bool found = false;
    walk_region(n, [&](const Node* x) {
      // Library calls (matmul, conv, gather) always get buffers of their own: a region that
      // reads one recomputes nothing of it.
      found |= x != n && x->def().kind == OpKind::Reduce && !row_candidates_.contains(x);
      return !found;
    });
    return found;
  }

  // Cuts wherever an inline region grows past a cap: one forward pass with a saturating
  // estimate of each node's region (which over-counts shared operands), confirmed by an exact
  // walk bounded by the cap. Linear in the graph for chains of any length. Returns whether
  // anything was cut.
  bool enforce_caps() {
    constexpr int64_t kSaturate = int64_t{1} << 40;
    absl::flat_hash_map<const Node*, std::pair<int64_t, int64_t>> est;  // (nodes, inputs)
    bool cut = false;
    for (const Node* n : plan_.order) {
      if (!pending(n)) continue;
      int64_t nodes = 1, inputs = 0;
      for (const ir::NodePtr& in : n->inputs()) {
        const Node* p = in.get();
        if (is_inline_source(p) && !forced_.contains(p)) continue;  // forced: read as a buffer
        auto it = est.find(p);
        if (it == est.end()) {
          ++inputs;  // a leaf
        } else {
          nodes = std::min(kSaturate, nodes + it->second.first);
          inputs = std::min(kSaturate, inputs + it->second.second);
        }
      }
      if (roots_.contains(n) || is_library(n) || forced_.contains(n)) {
        est[n] = {0, 1};  // always a boundary: consumers read it as one input
        continue;
      }
      if ((nodes > opt_.max_kernel_nodes || inputs > opt_.max_kernel_inputs) && exceeds_caps(n)) {
        forced_[n] = inputs > opt_.max_kernel_inputs
                         ? absl::StrCat("kernel input cap (", opt_.max_kernel_inputs, ")")
                         : absl::StrCat("kernel size cap (", opt_.max_kernel_nodes, " nodes)");
        est[n] = {0, 1};
        cut = true;
        continue;
      }
      est[n] = {nodes, inputs};
    }
    return cut;
  }

  // Exact check of n's inline region against the caps, walking at most cap + 1 nodes.
  bool exceeds_caps(const Node* n) {
    absl::flat_hash_set<const Node*> seen{n}, inputs;
    std::vector<const Node*> stack{n};
    while (!stack.empty()) {
      const Node* x = stack.back();
      stack.pop_back();
      for (const ir::NodePtr& in : x->inputs()) {
        const Node* p = in.get();
        if (is_inline_source(p) && !forced_.contains(p)) continue;  // forced: read as a buffer
        if (!pending(p) || roots_.contains(p) || is_library(p) || forced_.contains(p)) {
          inputs.insert(p);
          if (static_cast<int>(inputs.size()) > opt_.max_kernel_inputs) return true;
        } else if (seen.insert(p).second) {
          if (static_cast<int>(seen.size()) > opt_.max_kernel_nodes) return true;
          stack.push_back(p);
        }
      }
    }
    return false;
  }

  const ir::Graph& graph_;
  const FusionOptions& opt_;
  FusionPlan plan_;
  absl::flat_hash_map<const Node*, std::vector<Node*>> users_;
  absl::flat_hash_map<const Node*, absl::flat_hash_set<const Node*>> owners_;
  absl::flat_hash_set<const Node*> roots_;
  // Kernels holding a main reduction fused as an epilogue: kernel -> that reduction.
  absl::flat_hash_map<const Node*, const Node*> reduce_owner_;
  absl::flat_hash_map<const Node*, std::string> forced_;
  absl::flat_hash_set<const Node*> surely_cut_;
  absl::flat_hash_set<const Node*> row_candidates_;
  // Row kernels: the shape and axes their stages reduce, and how many there are.
  struct Row {
    ir::Shape shape;
    std::vector<int64_t> axes;
    int stages = 0;
  };
  absl::flat_hash_map<const Node*, Row> rows_;
};

}  // namespace

FusionPlan fuse(const ir::Graph& graph, const FusionOptions& options) {
  return Planner(graph, options).run();
}

std::string fusion_plan_to_string(const ir::Graph& graph, const FusionPlan& plan) {
  // Kernels are numbered in plan order, which is the order lowering emits its steps in.
  absl::flat_hash_map<const Node*, int> kernel_of;
  for (const Node* n : plan.order) {
    if (plan.is_materialized(n) && !plan.grouped_into.contains(n)) {
      kernel_of.emplace(n, static_cast<int>(kernel_of.size()));
    }
  }
  // print_graph writes the header, then one line per node of print_order, then `return`.
  const std::vector<const Node*> nodes = ir::print_order(graph);
  const std::string text = ir::print_graph(graph);
  // Members of a multi-output kernel take the number of the kernel they run in.
  for (const auto& [member, leader] : plan.grouped_into) kernel_of[member] = kernel_of.at(leader);
  std::string out;
  size_t pos = 0;
  for (size_t line = 0; pos < text.size(); ++line) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    out.append(text, pos, end - pos);
    if (line >= 1 && line <= nodes.size()) {
      const Node* n = nodes[line - 1];
      if (auto m = plan.materialized.find(n); m != plan.materialized.end()) {
        absl::StrAppend(&out, "  # kernel ", kernel_of.at(n), ": ", m->second);
      } else if (auto e = plan.epilogue_of.find(n); e != plan.epilogue_of.end()) {
        auto k = kernel_of.find(e->second);
        if (k != kernel_of.end()) {
          absl::StrAppend(&out, "  # fused into kernel ", k->second, " (reduction epilogue)");
        }
      } else if (auto st = plan.stage_of.find(n); st != plan.stage_of.end()) {
        auto k = kernel_of.find(st->second);
        if (k != kernel_of.end()) {
          absl::StrAppend(&out, "  # fused into kernel ", k->second, " (row stage)");
        }
      }
    }
    out += '\n';
    pos = end + 1;
  }
  absl::StrAppend(&out, "# ", plan.num_kernels(), " kernels\n");
  return out;
}

}  // namespace smelt::compiler
