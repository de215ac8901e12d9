// Reductions (sum, mean, max, min, argmax, argmin, var, std) and the softmax family built on
// them. The IR reduces over an explicit, sorted list of axes; the frontend resolves PyTorch's
// "no dim means all dims" and negative dims here.
#include <smelt/error.h>
#include <smelt/ops.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

using ir::OpCode;

// `dims` normalized and sorted; an empty list means every dim (PyTorch). A 0-d tensor accepts
// dim 0 / -1 and has no axes to reduce.
std::vector<int64_t> reduce_axes(absl::string_view op, const std::vector<int64_t>& dims,
                                 int64_t rank) {
  std::vector<int64_t> axes;
  if (dims.empty()) {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    return axes;
  }
  for (int64_t d : dims) {
    const int64_t axis = detail::normalize_dim(op, d, rank);
    if (std::find(axes.begin(), axes.end(), axis) != axes.end()) {
      throw Error(absl::StrCat(op, ": dim ", axis, " appears more than once in [",
                               absl::StrJoin(dims, ", "), "]"));
    }
    axes.push_back(axis);
  }
  std::sort(axes.begin(), axes.end());
  if (rank == 0) axes.clear();
  return axes;
}

int64_t reduced_count(const ir::Shape& shape, const std::vector<int64_t>& axes) {
  int64_t n = 1;
  for (int64_t a : axes) n *= shape[a];
  return n;
}

void check_floating(absl::string_view op, const ir::NodePtr& n) {
  if (!is_floating(n->dtype())) {
    throw Error(absl::StrCat(op, ": needs a floating dtype, got ", dtype_name(n->dtype()),
                             "; call .to(DType::Float32) first"));
  }
}

// max/min/argmax/argmin have no identity: an empty reduction has no answer.
void check_nonempty(absl::string_view op, const ir::NodePtr& n, const std::vector<int64_t>& axes,
                    bool all_dims) {
  if (n->numel() != 0) return;
  if (all_dims) {
    throw Error(absl::StrCat(op, ": cannot reduce the empty tensor ", ir::shape_str(n->shape()),
                             " over all dims; there is no ", op, " of no elements"));
  }
  for (int64_t a : axes) {
    if (n->shape()[a] == 0) {
      throw Error(absl::StrCat(op, ": cannot reduce dim ", a, " of ", ir::shape_str(n->shape()),
                               ", which has size 0"));
    }
  }
}

ir::NodePtr reduce_node(OpCode code, ir::NodePtr n, const std::vector<int64_t>& axes,
                        bool keepdim) {
  return detail::make_node(code, {std::move(n)},
                           {{"axes", ir::IntList(axes)}, {"keepdim", keepdim}});
}

Tensor sum_impl(const Tensor& t, const std::vector<int64_t>& dims, bool keepdim) {
  ir::NodePtr n = detail::node_of(t, "sum");
  const std::vector<int64_t> axes = reduce_axes("sum", dims, n->rank());
  // PyTorch sums Bool and Int32 in Int64, so counts do not overflow.
  if (n->dtype() == DType::Bool || n->dtype() == DType::Int32) {
    n = detail::cast_node(std::move(n), DType::Int64);
  }
  return detail::wrap(reduce_node(OpCode::Sum, std::move(n), axes, keepdim));
}

// Like sum: Bool and Int32 multiply in Int64 (PyTorch). An empty product is 1.
Tensor prod_impl(const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  ir::NodePtr n = detail::node_of(t, "prod");
  const std::vector<int64_t> axes =
      dim ? reduce_axes("prod", {*dim}, n->rank()) : reduce_axes("prod", {}, n->rank());
  if (n->dtype() == DType::Bool || n->dtype() == DType::Int32) {
    n = detail::cast_node(std::move(n), DType::Int64);
  }
  return detail::wrap(reduce_node(OpCode::Prod, std::move(n), axes, dim ? keepdim : false));
}

// Running sums along dim; Bool and Int32 accumulate in Int64, as PyTorch's cumsum does. A 0-d
// tensor is its own cumsum (along dim 0 or -1).
Tensor cumsum_impl(const Tensor& t, int64_t dim) {
  ir::NodePtr n = detail::node_of(t, "cumsum");
  const int64_t axis = detail::normalize_dim("cumsum", dim, n->rank());
  if (n->dtype() == DType::Bool || n->dtype() == DType::Int32) {
    n = detail::cast_node(std::move(n), DType::Int64);
  }
  const bool scalar = n->rank() == 0;
  if (scalar) n = detail::reshape_node(std::move(n), {1});
  ir::NodePtr out =
      detail::make_node(OpCode::Cumsum, {std::move(n)}, {{"dim", axis}, {"reverse", false}});
  return detail::wrap(scalar ? detail::reshape_node(std::move(out), {}) : std::move(out));
}

// Positions in sorted order along dim. Bool sorts as Int32 (false before true); a 0-d tensor is
// its own sort (position 0).
Tensor argsort_impl(const Tensor& t, int64_t dim, bool descending, const char* op,
                    std::optional<int64_t> k = std::nullopt) {
  ir::NodePtr n = detail::node_of(t, op);
  const int64_t axis = detail::normalize_dim(op, dim, n->rank());
  if (n->dtype() == DType::Bool) n = detail::cast_node(std::move(n), DType::Int32);
  const bool scalar = n->rank() == 0;
  if (scalar) n = detail::reshape_node(std::move(n), {1});
  ir::Attrs attrs{{"dim", axis}, {"descending", descending}};
  if (k.has_value()) attrs.set("k", *k);
  ir::NodePtr out = detail::make_node(OpCode::ArgSort, {std::move(n)}, std::move(attrs));
  return detail::wrap(scalar ? detail::reshape_node(std::move(out), {}) : std::move(out));
}

Tensor mean_impl(const Tensor& t, const std::vector<int64_t>& dims, bool keepdim) {
  ir::NodePtr n = detail::node_of(t, "mean");
  check_floating("mean", n);
  const int64_t count = reduced_count(n->shape(), reduce_axes("mean", dims, n->rank()));
  return sum_impl(t, dims, keepdim) / static_cast<double>(count);
}

Tensor extremum_impl(OpCode code, const Tensor& t, const std::vector<int64_t>& dims, bool keepdim) {
  const absl::string_view name = ir::op_name(code);
  ir::NodePtr n = detail::node_of(t, name);
  const std::vector<int64_t> axes = reduce_axes(name, dims, n->rank());
  check_nonempty(name, n, axes, dims.empty());
  return detail::wrap(reduce_node(code, std::move(n), axes, keepdim));
}

// argmax/argmin along one dim (`dim` absent: of the flattened tensor, a 0-d result).
Tensor arg_extremum_impl(OpCode code, const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  const absl::string_view name = ir::op_name(code);
  ir::NodePtr n = detail::node_of(t, name);
  int64_t axis = 0;
  if (dim) {
    axis = detail::normalize_dim(name, *dim, n->rank());
    if (n->rank() > 0) check_nonempty(name, n, {axis}, false);
  } else {
    check_nonempty(name, n, {}, true);
    const int64_t count = n->numel();
    n = detail::reshape_node(std::move(n), {count});
    keepdim = false;
  }
  return detail::wrap(
      detail::make_node(code, {std::move(n)}, {{"axis", axis}, {"keepdim", keepdim}}));
}

Tensor var_impl(absl::string_view op, const Tensor& t, const std::vector<int64_t>& dims,
                bool unbiased, bool keepdim) {
  ir::NodePtr n = detail::node_of(t, op);
  check_floating(op, n);
  const int64_t count = reduced_count(n->shape(), reduce_axes(op, dims, n->rank()));
  const Tensor centered = t - mean_impl(t, dims, /*keepdim=*/true);
  // N - 1 (Bessel's correction) when unbiased; a single element then gives 0/0 = NaN, as in
  // PyTorch.
  const int64_t divisor = std::max<int64_t>(0, count - (unbiased ? 1 : 0));
  return sum_impl(centered * centered, dims, keepdim) / static_cast<double>(divisor);
}

}  // namespace

// ---- Tensor methods -----------------------------------------------------------------------------

Tensor Tensor::sum() const { return sum_impl(*this, {}, false); }
Tensor Tensor::cumsum(int64_t dim) const { return cumsum_impl(*this, dim); }

Tensor Tensor::argsort(int64_t dim, bool descending) const {
  return argsort_impl(*this, dim, descending, "argsort");
}

// The values are gathered at the sorted positions, so their gradient scatters back there.
// Values and positions are companions: reading one realizes the other too, so the sort runs
// once however the two are read.
std::tuple<Tensor, Tensor> Tensor::sort(int64_t dim, bool descending) const {
  Tensor positions = argsort_impl(*this, dim, descending, "sort");
  Tensor values = this->dim() == 0 ? clone() : gather(dim, positions);
  detail::pair_results(values, positions);
  return {values, positions};
}

std::tuple<Tensor, Tensor> Tensor::topk(int64_t k, int64_t dim, bool largest) const {
  ir::NodePtr n = detail::node_of(*this, "topk");
  const int64_t axis = detail::normalize_dim("topk", dim, n->rank());
  const int64_t size = n->rank() == 0 ? 1 : n->shape()[axis];
  if (k < 0 || k > size) {
    throw Error(absl::StrCat("topk: k = ", k, " is out of range for dim ", axis, " of ",
                             ir::shape_str(n->shape()), " (valid: 0 to ", size, ")"));
  }
  if (n->rank() == 0) {  // its one element, or nothing
    Tensor positions = argsort_impl(*this, dim, largest, "topk");
    if (k == 1) return {clone(), positions};
    return {reshape({1}).slice(0, 0, 0), positions.reshape({1}).slice(0, 0, 0)};
  }
  // Only the first k positions are sorted out (a selection), not the whole line.
  Tensor positions = argsort_impl(*this, dim, largest, "topk", k);
  Tensor values = gather(axis, positions);
  detail::pair_results(values, positions);  // as sort's
  return {values, positions};
}
Tensor cumsum(const Tensor& a, int64_t dim) { return cumsum_impl(a, dim); }
Tensor Tensor::prod() const { return prod_impl(*this, std::nullopt, false); }
Tensor Tensor::prod(int64_t dim, bool keepdim) const { return prod_impl(*this, dim, keepdim); }
Tensor Tensor::sum(int64_t dim, bool keepdim) const { return sum_impl(*this, {dim}, keepdim); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const {
  return sum_impl(*this, dims, keepdim);
}

Tensor Tensor::mean() const { return mean_impl(*this, {}, false); }
Tensor Tensor::mean(int64_t dim, bool keepdim) const { return mean_impl(*this, {dim}, keepdim); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return mean_impl(*this, dims, keepdim);
}

Tensor Tensor::max() const { return extremum_impl(OpCode::Max, *this, {}, false); }
Tensor Tensor::max(int64_t dim, bool keepdim) const {
  return extremum_impl(OpCode::Max, *this, {dim}, keepdim);
}
Tensor Tensor::max(const std::vector<int64_t>& dims, bool keepdim) const {
  return extremum_impl(OpCode::Max, *this, dims, keepdim);
}
Tensor Tensor::min() const { return extremum_impl(OpCode::Min, *this, {}, false); }
Tensor Tensor::min(int64_t dim, bool keepdim) const {
  return extremum_impl(OpCode::Min, *this, {dim}, keepdim);
}
Tensor Tensor::min(const std::vector<int64_t>& dims, bool keepdim) const {
  return extremum_impl(OpCode::Min, *this, dims, keepdim);
}

Tensor Tensor::argmax() const {
  return arg_extremum_impl(OpCode::ArgMax, *this, std::nullopt, false);
}
Tensor Tensor::argmax(int64_t dim, bool keepdim) const {
  return arg_extremum_impl(OpCode::ArgMax, *this, dim, keepdim);
}
Tensor Tensor::argmin() const {
  return arg_extremum_impl(OpCode::ArgMin, *this, std::nullopt, false);
}
Tensor Tensor::argmin(int64_t dim, bool keepdim) const {
  return arg_extremum_impl(OpCode::ArgMin, *this, dim, keepdim);
}

Tensor Tensor::var(bool unbiased) const { return var_impl("var", *this, {}, unbiased, false); }
Tensor Tensor::var(int64_t dim, bool unbiased, bool keepdim) const {
  return var_impl("var", *this, {dim}, unbiased, keepdim);
}
Tensor Tensor::var(const std::vector<int64_t>& dims, bool unbiased, bool keepdim) const {
  return var_impl("var", *this, dims, unbiased, keepdim);
}
Tensor Tensor::std(bool unbiased) const {
  return smelt::sqrt(var_impl("std", *this, {}, unbiased, false));
}
Tensor Tensor::std(int64_t dim, bool unbiased, bool keepdim) const {
  return smelt::sqrt(var_impl("std", *this, {dim}, unbiased, keepdim));
}
Tensor Tensor::std(const std::vector<int64_t>& dims, bool unbiased, bool keepdim) const {
  return smelt::sqrt(var_impl("std", *this, dims, unbiased, keepdim));
}

// ---- softmax ------------------------------------------------------------------------------------

namespace {

// Checks a softmax-family call; true if `a` is empty (the result is then an empty copy).
bool check_softmax(absl::string_view op, const Tensor& a, int64_t dim) {
  ir::NodePtr n = detail::node_of(a, op);
  check_floating(op, n);
  detail::normalize_dim(op, dim, n->rank());
  return n->numel() == 0;
}

}  // namespace

// Both forms start from x - max(x, dim), so exp never overflows. The shift does not change the
// result, so it is detached: its gradient would be exactly zero, and the backward pass need not
// build (or fuse) the max's gradient nodes at all.
Tensor softmax(const Tensor& a, int64_t dim) {
  if (check_softmax("softmax", a, dim)) return a.clone();
  const Tensor e = exp(a - a.max(dim, /*keepdim=*/true).detach());
  return e / e.sum(dim, /*keepdim=*/true);
}

Tensor log_softmax(const Tensor& a, int64_t dim) {
  if (check_softmax("log_softmax", a, dim)) return a.clone();
  const Tensor s = a - a.max(dim, /*keepdim=*/true).detach();
  return s - log(exp(s).sum(dim, /*keepdim=*/true));
}

Tensor Tensor::softmax(int64_t dim) const { return smelt::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return smelt::log_softmax(*this, dim); }

}  // namespace smelt
