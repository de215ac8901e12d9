// Reductions. sum/prod/max/min fold the dims listed in {axes} (normalized to 0..rank-1, unique,
// sorted: the frontend resolves negative dims and "all dims"); {keepdim} keeps them as size 1.
// argmax/argmin give the Int64 position of the extreme value along one {axis}.
//
// The result dtype is the operand's: the frontend casts Bool and Int32 to Int64 before sum and
// prod, as PyTorch does, so the IR rejects Bool there (sum of bools is not "any"). Integer sums
// and products are exact in int64 and wrap (computed in uint64, stored with set_int, so Int32
// wraps at 32 bits). Reducing over an empty extent gives the identity: sum 0, prod 1; max, min,
// argmax and argmin have none, so the type rule rejects it.
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

enum class Fold : uint8_t { kSum, kProd, kMax, kMin };

absl::Status check_reducible(OpCode op, const Shape& shape, int64_t axis) {
  if (shape[axis] == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(op_name(op), ": cannot reduce over dim ", axis, " of size 0 (no identity)"));
  }
  return absl::OkStatus();
}

// The result shape: `shape` with each reduced dim dropped, or set to 1 under keepdim.
Shape reduced_shape(const Shape& shape, absl::Span<const int64_t> axes, bool keepdim) {
  Shape out;
  size_t next = 0;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (next < axes.size() && axes[next] == d) {
      ++next;
      if (keepdim) out.push_back(1);
    } else {
      out.push_back(shape[d]);
    }
  }
  return out;
}

template <OpCode kOp, Fold kFold>
absl::StatusOr<TypeInfo> infer_fold(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& x = in[0];
  const IntList& axes = a.get_ints("axes");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  for (size_t k = 0; k < axes.size(); ++k) {
    if (axes[k] < 0 || axes[k] >= rank || (k > 0 && axes[k] <= axes[k - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(op_name(kOp), ": axes ", shape_str(axes), " must be unique, sorted dims of ",
                       shape_str(x.shape),
                       rank == 0 ? " (it has none)" : absl::StrCat(" (0 to ", rank - 1, ")")));
    }
  }
  if ((kFold == Fold::kSum || kFold == Fold::kProd) && x.dtype == DType::Bool) {
    return absl::InvalidArgumentError(
        absl::StrCat(op_name(kOp),
                     ": cannot reduce a bool tensor (cast it to i64 first, as the frontend does)"));
  }
  if (kFold == Fold::kMax || kFold == Fold::kMin) {
    for (int64_t axis : axes) {
      if (absl::Status s = check_reducible(kOp, x.shape, axis); !s.ok()) return s;
    }
  }
  return TypeInfo{x.dtype, reduced_shape(x.shape, axes, a.get_bool("keepdim"))};
}

// The accumulator of one output element, in double for floating dtypes and int64 otherwise.
template <Fold kFold>
struct Accumulator {
  static double start_f() {
    switch (kFold) {
      case Fold::kSum:
        return 0.0;
      case Fold::kProd:
        return 1.0;
      case Fold::kMax:
        return -std::numeric_limits<double>::infinity();
      case Fold::kMin:
        return std::numeric_limits<double>::infinity();
    }
  }
  static int64_t start_i() {
    switch (kFold) {
      case Fold::kSum:
        return 0;
      case Fold::kProd:
        return 1;
      case Fold::kMax:
        return std::numeric_limits<int64_t>::min();
      case Fold::kMin:
        return std::numeric_limits<int64_t>::max();
    }
  }
  // max and min propagate NaN, as PyTorch's do.
  static double add_f(double acc, double x) {
    switch (kFold) {
      case Fold::kSum:
        return acc + x;
      case Fold::kProd:
        return acc * x;
      case Fold::kMax:
        return std::isnan(acc) || std::isnan(x) ? acc + x : (x > acc ? x : acc);
      case Fold::kMin:
        return std::isnan(acc) || std::isnan(x) ? acc + x : (x < acc ? x : acc);
    }
  }
  static int64_t add_i(int64_t acc, int64_t x) {
    const uint64_t ua = static_cast<uint64_t>(acc), ux = static_cast<uint64_t>(x);
    switch (kFold) {
      case Fold::kSum:
        return static_cast<int64_t>(ua + ux);
      case Fold::kProd:
        return static_cast<int64_t>(ua * ux);
      case Fold::kMax:
        return x > acc ? x : acc;
      case Fold::kMin:
        return x < acc ? x : acc;
    }
  }
};

// For each element of `shape` in row-major order, the row-major index of its place in the
// reduced result: an odometer over the dims, where reduced dims do not move the result index.
std::vector<int64_t> result_index_map(const Shape& shape, absl::Span<const int64_t> axes) {
  const size_t rank = shape.size();
  std::vector<bool> reduced(rank, false);
  for (int64_t axis : axes) reduced[axis] = true;
  Strides stride(rank, 0);  // the result's stride of each dim; 0 for reduced dims
  int64_t acc = 1;
  for (size_t d = rank; d-- > 0;) {
    if (!reduced[d]) {
      stride[d] = acc;
      acc *= shape[d];
    }
  }
  const int64_t n = numel(shape);
  std::vector<int64_t> map(n);
  std::vector<int64_t> idx(rank, 0);
  int64_t pos = 0;
  for (int64_t k = 0; k < n; ++k) {
    map[k] = pos;
    for (size_t d = rank; d-- > 0;) {
      pos += stride[d];
      if (++idx[d] < shape[d]) break;
      pos -= stride[d] * idx[d];
      idx[d] = 0;
    }
  }
  return map;
}

template <Fold kFold>
absl::StatusOr<RefTensor> ref_fold(absl::Span<const RefTensor* const> in, const Attrs& a,
                                   const TypeInfo& out) {
  using Acc = Accumulator<kFold>;
  const RefTensor& x = *in[0];
  const std::vector<int64_t> map = result_index_map(x.shape, a.get_ints("axes"));
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  const int64_t n = x.numel(), m = r.numel();
  if (x.floating()) {
    std::vector<double> acc(m, Acc::start_f());
    for (int64_t k = 0; k < n; ++k) acc[map[k]] = Acc::add_f(acc[map[k]], x.f[k]);
    for (int64_t k = 0; k < m; ++k) r.set(k, acc[k]);
  } else {
    std::vector<int64_t> acc(m, Acc::start_i());
    for (int64_t k = 0; k < n; ++k) acc[map[k]] = Acc::add_i(acc[map[k]], x.i[k]);
    for (int64_t k = 0; k < m; ++k) r.set_int(k, acc[k]);
  }
  return r;
}

// ---- vector-Jacobian products ------------------------------------------------------------------

using Grads = absl::StatusOr<std::vector<NodePtr>>;

// sum: every element of a reduced slice gets the slice's gradient.
Grads vjp_sum(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& x = node->grad_inputs()[0];
  return b.finish(*node, {b.unreduce(g, x->shape(), node->attrs().get_ints("axes"))});
}

// prod: d/dx_i = the product of the other elements. That is y / x_i where x_i != 0; at a zero it
// is the product of the nonzero elements if x_i is the slice's only zero, else 0. Division never
// produces the answer at a zero, so no NaN appears where PyTorch gives a number.
Grads vjp_prod(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& x = node->grad_inputs()[0];
  const IntList& axes = node->attrs().get_ints("axes");
  const Shape& shape = x->shape();
  NodePtr zero = b.zeros_like(x);
  NodePtr one = b.fill_like(x, 1.0);
  NodePtr is_zero = b.compare(OpCode::Eq, x, zero);
  NodePtr nonzero_prod = b.unreduce(
      b.op(OpCode::Prod, {b.where(is_zero, one, x)}, {{"axes", axes}, {"keepdim", true}}), shape,
      axes);
  NodePtr zeros_in_slice =
      b.unreduce(b.sum_keepdim(b.cast(is_zero, x->dtype()), axes), shape, axes);
  NodePtr at_zero = b.where(b.compare(OpCode::Eq, zeros_in_slice, one), nonzero_prod, zero);
  NodePtr others = b.where(is_zero, at_zero, b.div(b.unreduce(node, shape, axes), x));
  return b.finish(*node, {b.mul(b.unreduce(g, shape, axes), others)});
}

// max/min (torch.amax/amin): the gradient is shared evenly by the elements equal to the result.
Grads vjp_extremum(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  const NodePtr& x = node->grad_inputs()[0];
  const IntList& axes = node->attrs().get_ints("axes");
  NodePtr hit = b.cast(b.compare(OpCode::Eq, x, b.unreduce(node, x->shape(), axes)), x->dtype());
  NodePtr count = b.unreduce(b.sum_keepdim(hit, axes), x->shape(), axes);
  return b.finish(*node, {b.div(b.mul(b.unreduce(g, x->shape(), axes), hit), count)});
}

template <OpCode kOp, Fold kFold>
void def_fold(OpRegistrar& r) {
  OpDef& d = r.def(kOp);
  d.min_inputs = d.max_inputs = 1;
  d.attrs = {{"axes", AttrKind::IntList}, {"keepdim", AttrKind::Bool}};
  d.infer = &infer_fold<kOp, kFold>;
  d.ref_eval = &ref_fold<kFold>;
  switch (kFold) {
    case Fold::kSum:
      d.vjp = &vjp_sum;
      break;
    case Fold::kProd:
      d.vjp = &vjp_prod;
      break;
    case Fold::kMax:
    case Fold::kMin:
      d.vjp = &vjp_extremum;
      break;
  }
}

// argmax/argmin {axis, keepdim}: the first position of the largest (smallest) value along
// `axis`; ties go to the first, and a NaN counts as the extreme (its first position wins), as in
// PyTorch. A 0-d operand accepts axis 0 and gives 0.
template <OpCode kOp>
absl::StatusOr<TypeInfo> infer_arg(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& x = in[0];
  const int64_t axis = a.get_int("axis");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (rank == 0 && axis == 0) return TypeInfo{DType::Int64, {}};
  if (axis < 0 || axis >= rank) {
    return absl::InvalidArgumentError(absl::StrCat(op_name(kOp), ": axis ", axis,
                                                   " is not a dim of ", shape_str(x.shape),
                                                   " (valid: 0 to ", rank - 1, ")"));
  }
  if (absl::Status s = check_reducible(kOp, x.shape, axis); !s.ok()) return s;
  const int64_t axes[] = {axis};
  return TypeInfo{DType::Int64, reduced_shape(x.shape, axes, a.get_bool("keepdim"))};
}

// Whether `x` replaces `best` as the running extreme (strictly better, so ties keep the first).
template <bool kMax>
bool better(double x, double best) {
  if (std::isnan(best)) return false;
  if (std::isnan(x)) return true;
  return kMax ? x > best : x < best;
}
template <bool kMax>
bool better(int64_t x, int64_t best) {
  return kMax ? x > best : x < best;
}

template <bool kMax, class T>
void arg_extreme(const std::vector<T>& x, const Shape& shape, int64_t axis, RefTensor& r) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t size = shape.empty() ? 1 : shape[axis];
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < inner; ++k) {
      const T* row = x.data() + o * size * inner + k;
      int64_t best = 0;
      for (int64_t j = 1; j < size; ++j) {
        if (better<kMax>(row[j * inner], row[best * inner])) best = j;
      }
      r.i[o * inner + k] = best;
    }
  }
}

template <bool kMax>
absl::StatusOr<RefTensor> ref_arg(absl::Span<const RefTensor* const> in, const Attrs& a,
                                  const TypeInfo& out) {
  const RefTensor& x = *in[0];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  if (x.floating()) {
    arg_extreme<kMax>(x.f, x.shape, a.get_int("axis"), r);
  } else {
    arg_extreme<kMax>(x.i, x.shape, a.get_int("axis"), r);
  }
  return r;
}

template <OpCode kOp, bool kMax>
void def_arg(OpRegistrar& r) {
  OpDef& d = r.def(kOp);
  d.min_inputs = d.max_inputs = 1;
  d.attrs = {{"axis", AttrKind::Int}, {"keepdim", AttrKind::Bool}};
  d.infer = &infer_arg<kOp>;
  d.ref_eval = &ref_arg<kMax>;
}

}  // namespace

void register_reduce_ops(OpRegistrar& r) {
  def_fold<OpCode::Sum, Fold::kSum>(r);
  def_fold<OpCode::Prod, Fold::kProd>(r);
  def_fold<OpCode::Max, Fold::kMax>(r);
  def_fold<OpCode::Min, Fold::kMin>(r);
  def_arg<OpCode::ArgMax, true>(r);
  def_arg<OpCode::ArgMin, false>(r);
}

}  // namespace smelt::ir
