// Movement ops: the value's elements rearranged, never computed. Backends fold them into the
// index arithmetic of their consumers (a view: shape, strides, offset, and pad's mask); the
// reference evaluator simply copies.
//
// Every attribute arrives resolved: no -1 in reshape, no negative dims or indices, slice bounds
// already clamped. The type rules check that, so a frontend bug surfaces here, not as a wrong
// read.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

// Calls fn(idx) for each multi-index of `shape` in row-major order (nothing for an empty shape,
// once for a scalar).
template <class Fn>
void for_each_index(const Shape& shape, Fn fn) {
  const int64_t n = numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    fn(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

void copy_element(const RefTensor& src, int64_t from, RefTensor& dst, int64_t to) {
  if (dst.floating()) {
    dst.f[to] = src.f[from];
  } else {
    dst.i[to] = src.i[from];
  }
}

// The value of `out` read from `x` through a view: the element at multi-index idx comes from
// x's row-major position offset + sum(idx[d] * strides[d]).
RefTensor read_view(const RefTensor& x, const TypeInfo& out, const Strides& strides,
                    int64_t offset) {
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  int64_t k = 0;
  for_each_index(out.shape, [&](const std::vector<int64_t>& idx) {
    int64_t from = offset;
    for (size_t d = 0; d < idx.size(); ++d) from += idx[d] * strides[d];
    copy_element(x, from, r, k++);
  });
  return r;
}

// ---- reshape {shape}: the same elements in row-major order, under a new shape -----------------

absl::StatusOr<TypeInfo> infer_reshape(absl::Span<const TypeInfo> in, const Attrs& a) {
  const IntList& shape = a.get_ints("shape");
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat("reshape: target shape ", shape_str(shape),
                                                     " has a negative dim (the frontend "
                                                     "resolves -1)"));
    }
  }
  if (numel(shape) != numel(in[0].shape)) {
    return absl::InvalidArgumentError(
        absl::StrCat("reshape: cannot reshape ", shape_str(in[0].shape), " (", numel(in[0].shape),
                     " elements) to ", shape_str(shape), " (", numel(shape), " elements)"));
  }
  return TypeInfo{in[0].dtype, shape};
}

absl::StatusOr<RefTensor> ref_reshape(absl::Span<const RefTensor* const> in, const Attrs&,
                                      const TypeInfo& out) {
  RefTensor r = *in[0];
  r.shape = out.shape;
  return r;
}

// ---- permute {perm}: result dim i is operand dim perm[i] ---------------------------------------

absl::StatusOr<TypeInfo> infer_permute(absl::Span<const TypeInfo> in, const Attrs& a) {
  const IntList& perm = a.get_ints("perm");
  const Shape& shape = in[0].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<bool> seen(rank, false);
  bool ok = static_cast<int64_t>(perm.size()) == rank;
  for (size_t k = 0; ok && k < perm.size(); ++k) {
    ok = perm[k] >= 0 && perm[k] < rank && !seen[perm[k]];
    if (ok) seen[perm[k]] = true;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("permute: ", shape_str(perm), " is not a permutation of the dims of ",
                     shape_str(shape), " (need each of 0 to ", rank - 1, " once)"));
  }
  Shape out(rank);
  for (int64_t k = 0; k < rank; ++k) out[k] = shape[perm[k]];
  return TypeInfo{in[0].dtype, out};
}

absl::StatusOr<RefTensor> ref_permute(absl::Span<const RefTensor* const> in, const Attrs& a,
                                      const TypeInfo& out) {
  const IntList& perm = a.get_ints("perm");
  const Strides in_strides = contiguous_strides(in[0]->shape);
  Strides strides(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) strides[k] = in_strides[perm[k]];
  return read_view(*in[0], out, strides, 0);
}

// ---- expand {shape}: dims of size 1 repeat to the target size (same rank; a stride of 0) ------

absl::StatusOr<TypeInfo> infer_expand(absl::Span<const TypeInfo> in, const Attrs& a) {
  const IntList& target = a.get_ints("shape");
  const Shape& shape = in[0].shape;
  // Formatted only on failure: this runs for every broadcast the frontend builds.
  auto what = [&] {
    return absl::StrCat("expand: cannot expand ", shape_str(shape), " to ", shape_str(target),
                        ": ");
  };
  if (target.size() != shape.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what(), "ranks differ (the IR needs an explicit reshape)"));
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (target[d] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what(), "target dim ", d, " is negative (the frontend resolves -1)"));
    }
    if (shape[d] != target[d] && shape[d] != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what(), "dim ", d, " is ", shape[d], " (must be ", target[d], " or 1)"));
    }
  }
  return TypeInfo{in[0].dtype, target};
}

absl::StatusOr<RefTensor> ref_expand(absl::Span<const RefTensor* const> in, const Attrs&,
                                     const TypeInfo& out) {
  const Shape& shape = in[0]->shape;
  Strides strides = contiguous_strides(shape);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) strides[d] = 0;
  }
  return read_view(*in[0], out, strides, 0);
}

// ---- slice {dim, start, end, step}: positions start, start+step, ... < end of one dim ----------

absl::StatusOr<TypeInfo> infer_slice(absl::Span<const TypeInfo> in, const Attrs& a) {
  const Shape& shape = in[0].shape;
  const int64_t dim = a.get_int("dim"), start = a.get_int("start"), end = a.get_int("end"),
                step = a.get_int("step");
  if (absl::Status s = check_dim("slice", dim, shape); !s.ok()) return s;
  if (step < 1) {
    return absl::InvalidArgumentError(absl::StrCat("slice: step must be >= 1, got ", step));
  }
  if (start < 0 || start > end || end > shape[dim]) {
    return absl::InvalidArgumentError(
        absl::StrCat("slice: start ", start, " and end ", end, " are out of range for dim ", dim,
                     " of ", shape_str(shape), " (need 0 <= start <= end <= ", shape[dim], ")"));
  }
  Shape out = shape;
  out[dim] = (end - start + step - 1) / step;
  return TypeInfo{in[0].dtype, out};
}

absl::StatusOr<RefTensor> ref_slice(absl::Span<const RefTensor* const> in, const Attrs& a,
                                    const TypeInfo& out) {
  const int64_t dim = a.get_int("dim");
  Strides strides = contiguous_strides(in[0]->shape);
  const int64_t offset = a.get_int("start") * strides[dim];
  strides[dim] *= a.get_int("step");
  return read_view(*in[0], out, strides, offset);
}

// ---- pad {before, after, value}: before[d] and after[d] elements of `value` around each dim ----

// Whether `v` fits the dtype a pad writes it to (a NaN or out-of-range integer would be UB).
bool representable(double v, DType dtype) {
  switch (dtype) {
    case DType::Int32:
      return v > -2147483649.0 && v < 2147483648.0;
    case DType::Int64:
      return v >= -9223372036854775808.0 && v < 9223372036854775808.0;
    default:
      return true;  // floats hold anything; Bool is v != 0
  }
}

absl::StatusOr<TypeInfo> infer_pad(absl::Span<const TypeInfo> in, const Attrs& a) {
  const Shape& shape = in[0].shape;
  const IntList& before = a.get_ints("before");
  const IntList& after = a.get_ints("after");
  if (before.size() != shape.size() || after.size() != shape.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pad: before ", shape_str(before), " and after ",
                                                   shape_str(after), " need one entry per dim of ",
                                                   shape_str(shape)));
  }
  Shape out = shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (before[d] < 0 || after[d] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pad: before ", shape_str(before), " and after ", shape_str(after), " of ",
                       shape_str(shape), " must be >= 0 (negative padding is a slice)"));
    }
    out[d] += before[d] + after[d];
  }
  const double value = a.get_float("value");
  if (!representable(value, in[0].dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("pad: value ", value, " cannot be stored in a ",
                                                   dtype_name(in[0].dtype), " tensor"));
  }
  return TypeInfo{in[0].dtype, out};
}

absl::StatusOr<RefTensor> ref_pad(absl::Span<const RefTensor* const> in, const Attrs& a,
                                  const TypeInfo& out) {
  const RefTensor& x = *in[0];
  const IntList& before = a.get_ints("before");
  const Strides strides = contiguous_strides(x.shape);
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  const double value = a.get_float("value");
  int64_t k = 0;
  for_each_index(out.shape, [&](const std::vector<int64_t>& idx) {
    int64_t from = 0;
    for (size_t d = 0; d < idx.size() && from >= 0; ++d) {
      const int64_t i = idx[d] - before[d];
      from = i >= 0 && i < x.shape[d] ? from + i * strides[d] : -1;
    }
    if (from >= 0) {
      copy_element(x, from, r, k);
    } else {
      r.set(k, value);
    }
    ++k;
  });
  return r;
}

// ---- concat {dim}: the operands one after another along dim ------------------------------------

absl::StatusOr<TypeInfo> infer_concat(absl::Span<const TypeInfo> in, const Attrs& a) {
  const int64_t dim = a.get_int("dim");
  const Shape& first = in[0].shape;
  if (first.empty()) {
    return absl::InvalidArgumentError(
        "concat: cannot concatenate 0-d tensors (reshape them first)");
  }
  if (absl::Status s = check_dim("concat", dim, first); !s.ok()) return s;
  Shape out = first;
  for (size_t k = 1; k < in.size(); ++k) {
    const Shape& s = in[k].shape;
    bool same = s.size() == first.size();
    for (size_t d = 0; same && d < s.size(); ++d) {
      same = static_cast<int64_t>(d) == dim || s[d] == first[d];
    }
    if (!same) {
      return absl::InvalidArgumentError(
          absl::StrCat("concat: operand ", k, " has shape ", shape_str(s), ", which differs from ",
                       "operand 0's ", shape_str(first), " outside dim ", dim));
    }
    if (in[k].dtype != in[0].dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "concat: operand ", k, " has dtype ", dtype_name(in[k].dtype), ", operand 0 has ",
          dtype_name(in[0].dtype), " (the IR needs explicit cast)"));
    }
    out[dim] += s[dim];
  }
  return TypeInfo{in[0].dtype, out};
}

absl::StatusOr<RefTensor> ref_concat(absl::Span<const RefTensor* const> in, const Attrs& a,
                                     const TypeInfo& out) {
  const int64_t dim = a.get_int("dim");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.shape[d];
  for (size_t d = dim + 1; d < out.shape.size(); ++d) inner *= out.shape[d];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  int64_t k = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const RefTensor* x : in) {
      // Each operand contributes one contiguous block of shape[dim] * inner per outer index.
      const int64_t block = x->shape[dim] * inner;
      for (int64_t j = 0; j < block; ++j) copy_element(*x, o * block + j, r, k++);
    }
  }
  return r;
}

// ---- vector-Jacobian products: each view's gradient goes through the inverse movement ---------

using Grads = absl::StatusOr<std::vector<NodePtr>>;

const NodePtr& operand(const NodePtr& node, size_t k) { return node->grad_inputs()[k]; }

Grads vjp_reshape(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node, {b.reshape(g, operand(node, 0)->shape())});
}

Grads vjp_permute(const NodePtr& node, const NodePtr& g) {
  const IntList& perm = node->attrs().get_ints("perm");
  IntList inverse(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) inverse[perm[k]] = static_cast<int64_t>(k);
  GradBuilder b;
  return b.finish(*node, {b.permute(g, inverse)});
}

// A broadcast: each stretched dim sums back to 1.
Grads vjp_expand(const NodePtr& node, const NodePtr& g) {
  const Shape& from = operand(node, 0)->shape();
  IntList axes;
  for (size_t d = 0; d < from.size(); ++d) {
    if (from[d] != node->shape()[d]) axes.push_back(static_cast<int64_t>(d));
  }
  GradBuilder b;
  return b.finish(*node, {b.sum_keepdim(g, axes)});
}

// The gradient lands back at positions start, start + step, ... of dim; zeros elsewhere. A step
// > 1 interleaves step - 1 zeros after each element: a new axis padded to `step` and merged.
Grads vjp_slice(const NodePtr& node, const NodePtr& g) {
  const Attrs& a = node->attrs();
  const int64_t dim = a.get_int("dim"), start = a.get_int("start"), step = a.get_int("step");
  const Shape& from = operand(node, 0)->shape();
  const int64_t n = node->shape()[dim];
  const size_t rank = from.size();
  GradBuilder b;
  NodePtr spread = g;
  int64_t covered = n;
  if (step > 1 && n > 0) {
    Shape split = g->shape();
    split.insert(split.begin() + dim + 1, 1);
    IntList before(rank + 1, 0), after(rank + 1, 0);
    after[dim + 1] = step - 1;
    spread = b.op(OpCode::Pad, {b.reshape(g, split)},
                  {{"before", before}, {"after", after}, {"value", 0.0}});
    Shape merged = g->shape();
    merged[dim] = n * step;
    spread = b.reshape(spread, merged);
    // The trailing zeros of the last element may run past the end of the dim.
    covered = std::min(n * step, from[dim] - start);
    if (covered < n * step) {
      spread = b.op(OpCode::Slice, {spread},
                    {{"dim", dim}, {"start", int64_t{0}}, {"end", covered}, {"step", int64_t{1}}});
    }
  }
  IntList before(rank, 0), after(rank, 0);
  before[dim] = start;
  after[dim] = from[dim] - start - covered;
  if (before[dim] == 0 && after[dim] == 0) return b.finish(*node, {spread});
  return b.finish(
      *node, {b.op(OpCode::Pad, {spread}, {{"before", before}, {"after", after}, {"value", 0.0}})});
}

// The padding is constant: only the interior gets a gradient.
Grads vjp_pad(const NodePtr& node, const NodePtr& g) {
  const IntList& before = node->attrs().get_ints("before");
  const Shape& from = operand(node, 0)->shape();
  GradBuilder b;
  NodePtr r = g;
  for (size_t d = 0; d < from.size(); ++d) {
    if (r != nullptr && r->shape()[d] == from[d]) continue;
    r = b.op(OpCode::Slice, {r},
             {{"dim", static_cast<int64_t>(d)},
              {"start", before[d]},
              {"end", before[d] + from[d]},
              {"step", int64_t{1}}});
  }
  return b.finish(*node, {r});
}

// Each operand gets its own stretch of dim.
Grads vjp_concat(const NodePtr& node, const NodePtr& g) {
  const int64_t dim = node->attrs().get_int("dim");
  GradBuilder b;
  std::vector<NodePtr> grads;
  int64_t at = 0;
  for (const NodePtr& in : node->grad_inputs()) {
    const int64_t len = in->shape()[dim];
    grads.push_back(b.op(OpCode::Slice, {g},
                         {{"dim", dim}, {"start", at}, {"end", at + len}, {"step", int64_t{1}}}));
    at += len;
  }
  return b.finish(*node, std::move(grads));
}

void def(OpRegistrar& r, OpCode op, std::vector<AttrSpec> attrs, InferFn infer, RefEvalFn ref,
         VjpFn vjp, int max_inputs = 1) {
  OpDef& d = r.def(op);
  d.min_inputs = 1;
  d.max_inputs = max_inputs;
  d.attrs = std::move(attrs);
  d.infer = infer;
  d.ref_eval = ref;
  d.vjp = vjp;
}

}  // namespace

void register_movement_ops(OpRegistrar& r) {
  def(r, OpCode::Reshape, {{"shape", AttrKind::IntList}}, &infer_reshape, &ref_reshape,
      &vjp_reshape);
  def(r, OpCode::Permute, {{"perm", AttrKind::IntList}}, &infer_permute, &ref_permute,
      &vjp_permute);
  def(r, OpCode::Expand, {{"shape", AttrKind::IntList}}, &infer_expand, &ref_expand, &vjp_expand);
  def(r, OpCode::Slice,
      {{"dim", AttrKind::Int},
       {"start", AttrKind::Int},
       {"end", AttrKind::Int},
       {"step", AttrKind::Int}},
      &infer_slice, &ref_slice, &vjp_slice);
  def(r, OpCode::Pad,
      {{"before", AttrKind::IntList}, {"after", AttrKind::IntList}, {"value", AttrKind::Float}},
      &infer_pad, &ref_pad, &vjp_pad);
  def(r, OpCode::Concat, {{"dim", AttrKind::Int}}, &infer_concat, &ref_concat, &vjp_concat,
      /*max_inputs=*/-1);
}

}  // namespace smelt::ir
