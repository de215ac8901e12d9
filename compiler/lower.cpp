#include "compiler/lower.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/shape.h"

namespace smelt::compiler {
namespace {

using ir::Node;
using ir::OpCode;
using ir::OpKind;

ReduceOp reduce_op_of(OpCode op) {
  switch (op) {
    case OpCode::Sum:
      return ReduceOp::kSum;
    case OpCode::Prod:
      return ReduceOp::kProd;
    case OpCode::Max:
      return ReduceOp::kMax;
    case OpCode::Min:
      return ReduceOp::kMin;
    case OpCode::ArgMax:
      return ReduceOp::kArgMax;
    case OpCode::ArgMin:
      return ReduceOp::kArgMin;
    default:
      return ReduceOp::kNone;
  }
}

// The axes a reduction node reduces, normalized and sorted.
std::vector<int64_t> reduced_axes(const Node* r) {
  if (r->op() == OpCode::ArgMax || r->op() == OpCode::ArgMin) {
    return {r->attrs().get_int("axis")};
  }
  return r->attrs().get_ints("axes");
}

bool keepdim(const Node* r) { return r->attrs().get_bool("keepdim"); }

// Where an element of a node's value is: one index expression per dim, valid where `guard`
// holds (-1: everywhere). Outside the guard the indices may be out of range; loads clamp them.
struct Point {
  std::vector<int32_t> idx;
  int32_t guard = -1;

  friend bool operator==(const Point&, const Point&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Point& p) {
    return H::combine(std::move(h), p.idx, p.guard);
  }
};

// Builds one kernel: renders a materialized node's value at a point of the kernel's domain by
// inlining every unmaterialized producer. Recursion depth is bounded by the fusion plan's
// kernel size cap, not by the graph.
class KernelRenderer {
 public:
  // `others`: the rest of a multi-output kernel's members (FusionPlan::grouped_into), stored
  // after root's value at the same points.
  KernelRenderer(const FusionPlan& plan, const Node* root, KernelStep& step,
                 std::vector<const Node*> others = {})
      : plan_(plan), root_(root), others_(std::move(others)), step_(step), b_(step.kernel) {
    members_.insert(root_);
    members_.insert(others_.begin(), others_.end());
  }

  absl::Status build() {
    Kernel& k = step_.kernel;
    const Node* reduction = root_->def().kind == OpKind::Reduce ? root_ : nullptr;
    for (const auto& [r, consumer] : plan_.epilogue_of) {
      if (consumer == root_) reduction = r;
    }
    for (const auto& [r, owner] : plan_.stage_of) {
      if (owner == root_) stages_.emplace(r, -1);
    }
    const ir::Shape& out_shape = root_->shape();
    std::vector<int> out_axis(out_shape.size(), -1);
    if (!stages_.empty() && reduction == nullptr) {
      // A row kernel storing every point of its rows: the kept dims are the outer axes, the
      // dims its stages reduce the inner ones (all stages reduce the same axes of this shape).
      const std::vector<int64_t> axes = reduced_axes(stages_.begin()->first);
      for (bool outer : {true, false}) {
        for (size_t d = 0; d < out_shape.size(); ++d) {
          const bool kept =
              std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) == axes.end();
          if (kept == outer && out_shape[d] != 1) {
            out_axis[d] = static_cast<int>(k.domain.size());
            k.domain.push_back(out_shape[d]);
          }
        }
        if (outer) k.num_outer = static_cast<int>(k.domain.size());
      }
    } else {
      // Domain: the output's dims (size-1 dims need no loop), then the reduction's reduced dims.
      // `out_point` indexes the value stored; `red_point` the reduction's input.
      for (size_t d = 0; d < out_shape.size(); ++d) {
        if (out_shape[d] != 1) {
          out_axis[d] = static_cast<int>(k.domain.size());
          k.domain.push_back(out_shape[d]);
        }
      }
      k.num_outer = static_cast<int>(k.domain.size());
    }
    std::vector<int> red_axis;
    if (reduction != nullptr) {
      const ir::Shape& in_shape = reduction->inputs()[0]->shape();
      const std::vector<int64_t> axes = reduced_axes(reduction);
      red_axis.assign(in_shape.size(), -1);
      for (int64_t d : axes) {
        // A 0-d input has nothing to reduce (argmax of a scalar names axis 0 of a [] shape).
        if (d < static_cast<int64_t>(in_shape.size()) && in_shape[d] != 1) {
          red_axis[d] = static_cast<int>(k.domain.size());
          k.domain.push_back(in_shape[d]);
        }
      }
      k.reduce = reduce_op_of(reduction->op());
      k.reduce_dtype = reduction->dtype();
    }
    Point out_point;
    for (size_t d = 0; d < out_shape.size(); ++d) {
      out_point.idx.push_back(out_axis[d] >= 0 ? b_.loop_var(out_axis[d]) : b_.iconst(0));
    }
    if (reduction != nullptr) {
      // The reduction's output index (same shape as the kernel's output, or the root itself)
      // gives its kept dims; the reduced dims get the inner loop variables.
      const ir::Shape& in_shape = reduction->inputs()[0]->shape();
      const std::vector<int64_t> axes = reduced_axes(reduction);
      Point red_point;
      size_t out_d = 0;
      for (size_t d = 0; d < in_shape.size(); ++d) {
        const bool reduced =
            std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) != axes.end();
        if (reduced) {
          red_point.idx.push_back(red_axis[d] >= 0 ? b_.loop_var(red_axis[d]) : b_.iconst(0));
          if (keepdim(reduction)) ++out_d;
        } else {
          red_point.idx.push_back(out_point.idx[out_d++]);
        }
      }
      reduction_ = reduction;
      row_point_ = red_point;
      k.reduce_value = render(reduction->inputs()[0].get(), red_point);
      if (!status_.ok()) return status_;
    } else {
      row_point_ = out_point;
    }
    const int32_t value = reduction == root_ ? b_.acc() : render(root_, out_point);
    if (!status_.ok()) return status_;
    const ir::Strides cs = ir::contiguous_strides(out_shape);
    int32_t index = b_.iconst(0);
    for (size_t d = 0; d < out_shape.size(); ++d) {
      index = b_.add(index, b_.mul(out_point.idx[d], b_.iconst(cs[d])));
    }
    k.outputs.push_back(KOutput{root_->dtype(), value, index, root_->numel()});
    step_.outputs.push_back(root_);
    for (const Node* m : others_) {  // same shape, no reduction: the same points
      const int32_t v = render(m, out_point);
      if (!status_.ok()) return status_;
      k.outputs.push_back(KOutput{m->dtype(), v, index, m->numel()});
      step_.outputs.push_back(m);
    }
    if (static_cast<size_t>(k.stages.size()) != stages_.size()) {
      return absl::InternalError(absl::StrCat("lower: ", stages_.size() - k.stages.size(),
                                              " row stages of ", root_->def().name,
                                              " are not reached from it"));
    }
    k.name = absl::StrCat(
        "k_", root_->def().name,
        reduction && reduction != root_ ? absl::StrCat("_", reduction->def().name) : "",
        k.stages.empty() ? "" : absl::StrCat("_rows", k.stages.size()),
        others_.empty() ? "" : absl::StrCat("_x", others_.size() + 1));
    return absl::OkStatus();
  }

 private:
  int32_t input_slot(const Node* n) {
    auto [it, inserted] = slots_.try_emplace(n, static_cast<int32_t>(step_.inputs.size()));
    if (inserted) {
      step_.inputs.push_back(n);
      step_.kernel.inputs.push_back(KInput{n->dtype(), n->numel()});
    }
    return it->second;
  }

  // Members of the kernel are computed, never loaded, even where one reads another.
  bool is_boundary(const Node* n) const {
    return n->is_leaf() || (plan_.is_materialized(n) && !members_.contains(n));
  }

  int32_t render(const Node* n, const Point& p) {
    auto key = std::make_pair(n, p);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    int32_t e = render_uncached(n, p);
    memo_.emplace(std::move(key), e);
    return e;
  }

  int32_t render_uncached(const Node* n, const Point& p) {
    if (is_boundary(n)) {
      const int32_t slot = input_slot(n);
      const ir::Strides cs = ir::contiguous_strides(n->shape());
      int32_t index = b_.iconst(0);
      for (size_t d = 0; d < cs.size(); ++d) {
        if (n->shape()[d] != 1) index = b_.add(index, b_.mul(p.idx[d], b_.iconst(cs[d])));
      }
      // Outside its guard a load may compute any index; read element 0 instead (unless the
      // index's range already stays within the input, as concat's held indices do).
      const bool in_range = b_.min_of(index) >= 0 && b_.max_of(index) < n->numel();
      if (p.guard >= 0 && !in_range) index = b_.select(p.guard, index, b_.iconst(0));
      return b_.load(slot, index);
    }
    if (n == reduction_ && n != root_) return b_.acc();
    if (auto st = stages_.find(n); st != stages_.end()) return stage(st);
    const ir::Attrs& a = n->attrs();
    auto in = [&](int k) { return n->inputs()[k].get(); };
    switch (n->def().kind) {
      case OpKind::Source:  // constant
        return b_.constant(n->dtype(), a.get_float("value"));
      case OpKind::Elementwise: {
        if (n->op() == OpCode::Copy) return render(in(0), p);
        if (n->op() == OpCode::Where) {
          return b_.select(render(in(0), p), render(in(1), p), render(in(2), p));
        }
        int32_t ops[3] = {-1, -1, -1};
        for (size_t k = 0; k < n->inputs().size(); ++k) ops[k] = render(in(k), p);
        return b_.apply(n->op(), n->dtype(), ops[0], ops[1], ops[2]);
      }
      case OpKind::Movement:
        return render_movement(n, p);
      default:
        fail(absl::InternalError(
            absl::StrCat("lower: ", n->def().name, " reached inside a fused kernel")));
        return b_.iconst(0);
    }
  }

  int32_t render_movement(const Node* n, const Point& p) {
    const Node* src = n->inputs()[0].get();
    const ir::Shape& in_shape = src->shape();
    const ir::Attrs& a = n->attrs();
    Point q{{}, p.guard};
    switch (n->op()) {
      case OpCode::Reshape: {
        // Through the row-major linear index; the builder's div/mod rules fold the common
        // splits and merges back to plain loop variables.
        const ir::Strides out_cs = ir::contiguous_strides(n->shape());
        int32_t linear = b_.iconst(0);
        for (size_t d = 0; d < out_cs.size(); ++d) {
          if (n->shape()[d] != 1) linear = b_.add(linear, b_.mul(p.idx[d], b_.iconst(out_cs[d])));
        }
        const ir::Strides in_cs = ir::contiguous_strides(in_shape);
        for (size_t d = 0; d < in_shape.size(); ++d) {
          q.idx.push_back(in_shape[d] == 1 ? b_.iconst(0)
                                           : b_.mod(b_.div(linear, in_cs[d]), in_shape[d]));
        }
        return render(src, q);
      }
      case OpCode::Permute: {
        const auto& perm = a.get_ints("perm");
        q.idx.assign(perm.size(), -1);
        for (size_t i = 0; i < perm.size(); ++i) q.idx[perm[i]] = p.idx[i];
        return render(src, q);
      }
      case OpCode::Expand: {
        for (size_t d = 0; d < in_shape.size(); ++d) {
          q.idx.push_back(in_shape[d] == 1 ? b_.iconst(0) : p.idx[d]);
        }
        return render(src, q);
      }
      case OpCode::Slice: {
        const int64_t dim = a.get_int("dim");
        q.idx = p.idx;
        q.idx[dim] =
            b_.add(b_.iconst(a.get_int("start")), b_.mul(p.idx[dim], b_.iconst(a.get_int("step"))));
        return render(src, q);
      }
      case OpCode::Pad: {
        const auto& before = a.get_ints("before");
        int32_t valid = -1;
        for (size_t d = 0; d < in_shape.size(); ++d) {
          q.idx.push_back(b_.add(p.idx[d], b_.iconst(-before[d])));
          const int32_t ok = within(p.idx[d], before[d], before[d] + in_shape[d]);
          valid = valid < 0 ? ok : b_.logical_and(valid, ok);
        }
        if (valid < 0) return render(src, q);  // 0-d: nothing to pad
        q.guard = p.guard < 0 ? valid : b_.logical_and(p.guard, valid);
        return b_.select(valid, render(src, q), b_.constant(n->dtype(), a.get_float("value")));
      }
      case OpCode::Concat: {
        const int64_t dim = a.get_int("dim");
        // Select among the operands by the range of `dim` each covers; the last is the default.
        int64_t offset = 0;
        std::vector<std::pair<int32_t, int32_t>> parts;  // (valid, value)
        for (const ir::NodePtr& operand : n->inputs()) {
          const int64_t size = operand->shape()[dim];
          Point r = p;
          const int32_t valid = within(p.idx[dim], offset, offset + size);
          // The index within the operand, held at its first element outside the operand's
          // range: then its range is the operand's extent, so that a reshape of contiguous data
          // under the concat folds its div/mod away (the optimizer's flat vectors).
          r.idx[dim] = b_.add(b_.select(valid, p.idx[dim], b_.iconst(offset)), b_.iconst(-offset));
          r.guard = p.guard < 0 ? valid : b_.logical_and(p.guard, valid);
          parts.emplace_back(valid, render(operand.get(), r));
          offset += size;
        }
        int32_t value = parts.back().second;
        for (size_t k = parts.size() - 1; k-- > 0;) {
          value = b_.select(parts[k].first, parts[k].second, value);
        }
        return value;
      }
      default:
        fail(absl::InternalError(absl::StrCat("lower: unknown movement op ", n->def().name)));
        return b_.iconst(0);
    }
  }

  // A row stage's result. The planner made sure that wherever the kernel reads it, the kept
  // dims of the point are the current row's (fusion's stage_kernel), so it is one value per row,
  // computed once, by a sweep over the row point's reduced dims.
  int32_t stage(absl::flat_hash_map<const Node*, int>::iterator st) {
    if (st->second < 0) {
      const Node* r = st->first;
      const int32_t value = render(r->inputs()[0].get(), row_point_);
      Kernel& k = step_.kernel;
      if (k.exprs[value].dtype != r->dtype()) {
        fail(absl::InternalError(absl::StrCat("lower: row stage ", r->def().name, " of ",
                                              dtype_name(k.exprs[value].dtype), " values is ",
                                              dtype_name(r->dtype()))));
      }
      st = stages_.find(r);  // render() may have added earlier stages
      st->second = static_cast<int>(k.stages.size());
      k.stages.push_back(KStage{reduce_op_of(r->op()), r->dtype(), value});
    }
    return b_.stage(st->second);
  }

  // lo <= x < hi, folded when the range of x decides it.
  int32_t within(int32_t x, int64_t lo, int64_t hi) {
    return b_.logical_and(b_.lt(b_.iconst(lo - 1), x), b_.lt(x, b_.iconst(hi)));
  }

  void fail(absl::Status s) {
    if (status_.ok()) status_ = std::move(s);
  }

  const FusionPlan& plan_;
  const Node* root_;
  std::vector<const Node*> others_;
  absl::flat_hash_set<const Node*> members_;
  KernelStep& step_;
  KernelBuilder b_;
  const Node* reduction_ = nullptr;
  // Row stages of this kernel -> their index in Kernel::stages (-1 until rendered).
  absl::flat_hash_map<const Node*, int> stages_;
  Point row_point_;  // the point of the row value (shape of the stages' inputs)
  absl::flat_hash_map<const Node*, int32_t> slots_;
  absl::flat_hash_map<std::pair<const Node*, Point>, int32_t> memo_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<LoweredProgram> lower(const ir::Graph& graph, const FusionPlan& plan,
                                     bool coalesce) {
  LoweredProgram program;
  absl::flat_hash_map<const Node*, bool> leaf_seen;
  // Multi-output kernels: each leader's other members, in plan order.
  absl::flat_hash_map<const Node*, std::vector<const Node*>> members_of;
  for (const Node* n : plan.order) {
    if (auto g = plan.grouped_into.find(n); g != plan.grouped_into.end()) {
      members_of[g->second].push_back(n);
    }
  }
  auto note_leaf = [&](const Node* n) {
    if (n->is_leaf() && leaf_seen.emplace(n, true).second) program.leaves.push_back(n);
  };
  for (const Node* n : plan.order) {
    note_leaf(n);
    auto reason = plan.materialized.find(n);
    if (reason == plan.materialized.end() || plan.grouped_into.contains(n)) continue;
    if (n->def().kind == OpKind::Matmul) {
      auto has_buffer = [&](const Node* x) { return x->is_leaf() || plan.is_materialized(x); };
      auto a = as_strided_view(n->inputs()[0].get(), has_buffer);
      auto b = as_strided_view(n->inputs()[1].get(), has_buffer);
      if (!a || !b) return absl::InternalError("lower: matmul operand is not a strided view");
      MatmulStep step{*a, *b, n};
      if (n->op() == OpCode::Addmm) {
        // BLAS adds into its output: the addend must be a whole buffer of the output's type.
        const Node* c = n->inputs()[2].get();
        if (!has_buffer(c)) return absl::InternalError("lower: addmm's addend has no buffer");
        step.addend = c;
        step.alpha = n->attrs().get_float("alpha");
        step.beta = n->attrs().get_float("beta");
      }
      program.steps.push_back(std::move(step));
      continue;
    }
    if (n->def().kind == OpKind::Window) {
      WindowStep ws{{}, n};
      for (const ir::NodePtr& in : n->inputs()) ws.inputs.push_back(in.get());
      program.steps.push_back(std::move(ws));
      continue;
    }
    if (n->def().kind == OpKind::Scan) {
      const bool sort = n->op() == OpCode::ArgSort;
      const int64_t dim = n->attrs().get_int("dim");
      program.steps.push_back(ScanStep{n->inputs()[0].get(), n, dim,
                                       n->attrs().get_bool(sort ? "descending" : "reverse"),
                                       n->shape()[dim]});
      continue;
    }
    if (n->op() == OpCode::IndexSelect || n->op() == OpCode::IndexAdd) {
      const Node* operand = n->inputs()[0].get();
      const Node* src = reshaped_buffer(
          operand, [&](const Node* x) { return x->is_leaf() || plan.is_materialized(x); });
      if (src == nullptr) return absl::InternalError("lower: gather source has no buffer");
      program.steps.push_back(GatherStep{src, operand->shape(), n->inputs()[1].get(), n,
                                         n->attrs().get_int("dim"), n->op() == OpCode::IndexAdd});
      continue;
    }
    KernelStep step;
    step.reason = reason->second;
    auto others = members_of.find(n);
    KernelRenderer renderer(
        plan, n, step,
        others == members_of.end() ? std::vector<const Node*>{} : std::move(others->second));
    if (absl::Status s = renderer.build(); !s.ok()) return s;
    if (coalesce) coalesce_axes(step.kernel);
    program.steps.push_back(std::move(step));
  }
  return program;
}

}  // namespace smelt::compiler
