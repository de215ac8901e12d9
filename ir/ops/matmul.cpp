// matmul(a, b): batched matrix product, [..., m, k] x [..., k, n] -> [..., m, n]. The IR form is
// explicit: both operands have rank >= 2, the same rank and the same batch dims (the frontend
// reshapes 1-d operands and expands batch dims, as torch.matmul's broadcasting would), and one
// numeric dtype. Backends call a BLAS; the reference sums in double, or exactly in int64 with
// wrap-around for integers (Int32 wraps at 32 bits when stored).
//
// addmm(a, b, c) {alpha, beta} = alpha * (a @ b) + beta * c, c of the product's type, floating
// point: what BLAS computes in one call (torch.addmm). The frontend never builds it; the
// compiler's accumulate_matmul pass does, where an update like the optimizer's
// `buf * momentum + grad` adds to a product that nothing else reads.
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

absl::StatusOr<TypeInfo> infer_matmul(absl::Span<const TypeInfo> in, const Attrs&) {
  const Shape& a = in[0].shape;
  const Shape& b = in[1].shape;
  // Formatted only on failure (this runs for every matmul built).
  auto shapes = [&] { return absl::StrCat(shape_str(a), " by ", shape_str(b)); };
  if (a.size() < 2 || b.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul: cannot multiply ", shapes(),
                     ": operands need rank >= 2 (the frontend reshapes 1-d operands)"));
  }
  if (a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "matmul: cannot multiply ", shapes(), ": ranks differ (the IR needs explicit batch dims)"));
  }
  const size_t rank = a.size();
  for (size_t d = 0; d + 2 < rank; ++d) {
    if (a[d] != b[d]) {
      return absl::InvalidArgumentError(absl::StrCat("matmul: cannot multiply ", shapes(),
                                                     ": batch dims differ (the IR needs "
                                                     "explicit expand)"));
    }
  }
  if (a[rank - 1] != b[rank - 2]) {
    return absl::InvalidArgumentError(absl::StrCat("matmul: cannot multiply ", shapes(),
                                                   ": inner dimensions ", a[rank - 1], " and ",
                                                   b[rank - 2], " differ"));
  }
  if (in[0].dtype != in[1].dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul: operand dtypes ", dtype_name(in[0].dtype), " and ",
                     dtype_name(in[1].dtype), " differ (the IR needs explicit cast)"));
  }
  if (in[0].dtype == DType::Bool) {
    return absl::InvalidArgumentError("matmul: needs a numeric (non-bool) dtype, got bool");
  }
  Shape out = a;
  out[rank - 1] = b[rank - 1];
  return TypeInfo{in[0].dtype, out};
}

absl::StatusOr<TypeInfo> infer_addmm(absl::Span<const TypeInfo> in, const Attrs& attrs) {
  absl::StatusOr<TypeInfo> product = infer_matmul(in.first(2), attrs);
  if (!product.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("addmm: ", absl::StripPrefix(product.status().message(), "matmul: ")));
  }
  if (!is_floating(product->dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("addmm: needs a floating-point dtype, got ", dtype_name(product->dtype)));
  }
  if (in[2] != *product) {
    return absl::InvalidArgumentError(absl::StrCat(
        "addmm: the addend is ", dtype_name(in[2].dtype), shape_str(in[2].shape),
        " but the product is ", dtype_name(product->dtype), shape_str(product->shape)));
  }
  return product;
}

// One product per batch: out[m, n] = sum over k of a[m, k] * b[k, n], in the element type T
// (double, or int64 computed in uint64 so that overflow wraps instead of being UB).
template <class T, class Acc>
void batched_product(const std::vector<T>& a, const std::vector<T>& b, int64_t batches, int64_t m,
                     int64_t k, int64_t n, std::vector<Acc>& out) {
  for (int64_t p = 0; p < batches; ++p) {
    const T* pa = a.data() + p * m * k;
    const T* pb = b.data() + p * k * n;
    Acc* po = out.data() + p * m * n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        Acc sum = 0;
        for (int64_t l = 0; l < k; ++l) {
          sum += static_cast<Acc>(pa[i * k + l]) * static_cast<Acc>(pb[l * n + j]);
        }
        po[i * n + j] = sum;
      }
    }
  }
}

absl::StatusOr<RefTensor> ref_matmul(absl::Span<const RefTensor* const> in, const Attrs&,
                                     const TypeInfo& out) {
  const RefTensor& a = *in[0];
  const RefTensor& b = *in[1];
  const size_t rank = a.shape.size();
  const int64_t m = a.shape[rank - 2], k = a.shape[rank - 1], n = b.shape[rank - 1];
  const int64_t batches = numel(absl::MakeConstSpan(a.shape).first(rank - 2));
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  if (r.floating()) {
    std::vector<double> acc(r.numel());
    batched_product(a.f, b.f, batches, m, k, n, acc);
    for (int64_t e = 0; e < r.numel(); ++e) r.set(e, acc[e]);
  } else {
    std::vector<uint64_t> acc(r.numel());
    batched_product(a.i, b.i, batches, m, k, n, acc);
    for (int64_t e = 0; e < r.numel(); ++e) r.set_int(e, static_cast<int64_t>(acc[e]));
  }
  return r;
}

absl::StatusOr<RefTensor> ref_addmm(absl::Span<const RefTensor* const> in, const Attrs& attrs,
                                    const TypeInfo& out) {
  absl::StatusOr<RefTensor> r = ref_matmul(in.first(2), attrs, out);
  if (!r.ok()) return r;
  const double alpha = attrs.get_float("alpha"), beta = attrs.get_float("beta");
  const RefTensor& c = *in[2];
  for (int64_t e = 0; e < r->numel(); ++e) r->set(e, alpha * r->get(e) + beta * c.get(e));
  return r;
}

// d(a b) = g b^T for a and a^T g for b, with the batch dims untouched (the frontend's expand of
// broadcast batch dims has its own VJP, a sum). Transposes are views: the compiler reads them
// through strides, without a copy.
absl::StatusOr<std::vector<NodePtr>> vjp_matmul(const NodePtr& node, const NodePtr& g) {
  const NodePtr& a = node->grad_inputs()[0];
  const NodePtr& b = node->grad_inputs()[1];
  IntList swap(a->rank());
  for (size_t d = 0; d < swap.size(); ++d) swap[d] = static_cast<int64_t>(d);
  std::swap(swap[swap.size() - 1], swap[swap.size() - 2]);
  GradBuilder gb;
  return gb.finish(*node, {gb.op(OpCode::Matmul, {g, gb.permute(b, swap)}),
                           gb.op(OpCode::Matmul, {gb.permute(a, swap), g})});
}

// alpha a b + beta c: alpha times matmul's gradients for a and b, beta g for c.
absl::StatusOr<std::vector<NodePtr>> vjp_addmm(const NodePtr& node, const NodePtr& g) {
  const NodePtr& a = node->grad_inputs()[0];
  const NodePtr& b = node->grad_inputs()[1];
  const double alpha = node->attrs().get_float("alpha"), beta = node->attrs().get_float("beta");
  IntList swap(a->rank());
  for (size_t d = 0; d < swap.size(); ++d) swap[d] = static_cast<int64_t>(d);
  std::swap(swap[swap.size() - 1], swap[swap.size() - 2]);
  GradBuilder gb;
  const NodePtr ga = gb.scale(g, alpha);
  return gb.finish(*node, {gb.op(OpCode::Matmul, {ga, gb.permute(b, swap)}),
                           gb.op(OpCode::Matmul, {gb.permute(a, swap), ga}), gb.scale(g, beta)});
}

}  // namespace

void register_matmul_ops(OpRegistrar& r) {
  OpDef& d = r.def(OpCode::Matmul);
  d.min_inputs = d.max_inputs = 2;
  d.infer = &infer_matmul;
  d.ref_eval = &ref_matmul;
  d.vjp = &vjp_matmul;

  OpDef& acc = r.def(OpCode::Addmm);
  acc.min_inputs = acc.max_inputs = 3;
  acc.attrs = {{"alpha", AttrKind::Float}, {"beta", AttrKind::Float}};
  acc.infer = &infer_addmm;
  acc.ref_eval = &ref_addmm;
  acc.vjp = &vjp_addmm;
}

}  // namespace smelt::ir
