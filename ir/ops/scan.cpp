// Scans: whole-line operations along one dim, library calls (OpKind::Scan): cumsum here, argsort
// at the end. Running reductions: cumsum(x) {dim, reverse}: out[..., j, ...] is the sum
// of x[..., 0..j, ...] along dim (of x[..., j..n-1, ...] when reverse), like torch.cumsum (and
// torch.flip(torch.cumsum(torch.flip(x)))) for the reverse one, which is cumsum's own gradient).
// A library call (OpKind::Scan): every element depends on all before it along dim, which the
// elementwise/reduction kernels cannot express. Floating sums accumulate in double, as PyTorch's
// CPU kernel does; integer sums wrap. Bool is refused (the frontend sums it as Int64).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

absl::StatusOr<TypeInfo> infer_cumsum(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& x = in[0];
  const int64_t dim = a.get_int("dim");
  if (absl::Status s = check_dim("cumsum", dim, x.shape); !s.ok()) return s;
  if (x.dtype == DType::Bool) {
    return absl::InvalidArgumentError("cumsum: not defined for bool; cast to an integer first");
  }
  return x;
}

absl::StatusOr<RefTensor> ref_cumsum(absl::Span<const RefTensor* const> in, const Attrs& a,
                                     const TypeInfo& out) {
  const RefTensor& x = *in[0];
  const int64_t dim = a.get_int("dim");
  const bool reverse = a.get_bool("reverse");
  const int64_t n = x.shape[dim];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.shape[d];
  for (size_t d = dim + 1; d < x.shape.size(); ++d) inner *= x.shape[d];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t e = 0; e < inner; ++e) {
      double fsum = 0;
      uint64_t isum = 0;  // wraps like the integer adds of every backend
      for (int64_t s = 0; s < n; ++s) {
        const int64_t j = reverse ? n - 1 - s : s;
        const int64_t k = (o * n + j) * inner + e;
        if (x.floating()) {
          fsum += x.f[k];
          r.set(k, fsum);
        } else {
          isum += static_cast<uint64_t>(x.i[k]);
          r.set_int(k, static_cast<int64_t>(isum));
        }
      }
    }
  }
  return r;
}

// d out_j / d x_i = 1 for every j at or after i: the gradient is the running sum of g taken
// from the other end.
absl::StatusOr<std::vector<NodePtr>> vjp_cumsum(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  NodePtr dx = b.op(
      OpCode::Cumsum, {g},
      {{"dim", node->attrs().get_int("dim")}, {"reverse", !node->attrs().get_bool("reverse")}});
  return b.finish(*node, {dx});
}

// argsort(x) {dim, descending, k}: along dim, the positions of x's elements in sorted order (a
// stable sort: equal elements keep their order). NaN sorts above every number, so last when
// ascending and first when descending, as in PyTorch. With k, only the first k positions (dim
// becomes k long): topk's, without sorting the rest. Int64 positions: no gradient.
absl::StatusOr<TypeInfo> infer_argsort(absl::Span<const TypeInfo> in, const Attrs& a) {
  const TypeInfo& x = in[0];
  const int64_t dim = a.get_int("dim");
  if (absl::Status s = check_dim("argsort", dim, x.shape); !s.ok()) return s;
  Shape out = x.shape;
  if (a.has("k")) {
    const int64_t k = a.get_int("k");
    if (k < 0 || k > x.shape[dim]) {
      return absl::InvalidArgumentError(absl::StrCat("argsort: k = ", k, " is not within 0..",
                                                     x.shape[dim], " (dim ", dim, " of ",
                                                     shape_str(x.shape), ")"));
    }
    out[dim] = k;
  }
  return TypeInfo{DType::Int64, out};
}

absl::StatusOr<RefTensor> ref_argsort(absl::Span<const RefTensor* const> in, const Attrs& a,
                                      const TypeInfo& out) {
  const RefTensor& x = *in[0];
  const int64_t dim = a.get_int("dim");
  const bool descending = a.get_bool("descending");
  const int64_t n = x.shape[dim];
  const int64_t k = out.shape[dim];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.shape[d];
  for (size_t d = dim + 1; d < x.shape.size(); ++d) inner *= x.shape[d];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t e = 0; e < inner; ++e) {
      auto at = [&](int64_t j) { return (o * n + j) * inner + e; };
      // Whether element j comes before element k (ties: neither).
      auto before = [&](int64_t j, int64_t k) {
        if (!x.floating()) return descending ? x.i[at(j)] > x.i[at(k)] : x.i[at(j)] < x.i[at(k)];
        const double u = x.f[at(j)], v = x.f[at(k)];
        if (std::isnan(u) || std::isnan(v)) return descending ? !std::isnan(v) : !std::isnan(u);
        return descending ? u > v : u < v;
      };
      std::iota(order.begin(), order.end(), int64_t{0});
      std::stable_sort(order.begin(), order.end(), before);
      for (int64_t s = 0; s < k; ++s) r.i[(o * k + s) * inner + e] = order[s];
    }
  }
  return r;
}

}  // namespace

void register_scan_ops(OpRegistrar& r) {
  OpDef& d = r.def(OpCode::Cumsum);
  d.min_inputs = d.max_inputs = 1;
  d.attrs = {{"dim", AttrKind::Int}, {"reverse", AttrKind::Bool}};
  d.infer = &infer_cumsum;
  d.ref_eval = &ref_cumsum;
  d.vjp = &vjp_cumsum;

  OpDef& sort = r.def(OpCode::ArgSort);
  sort.min_inputs = sort.max_inputs = 1;
  sort.attrs = {{"dim", AttrKind::Int},
                {"descending", AttrKind::Bool},
                {"k", AttrKind::Int, /*optional=*/true}};
  sort.infer = &infer_argsort;
  sort.ref_eval = &ref_argsort;
}

}  // namespace smelt::ir
