// PyTorch conveniences built from the registry's ops (no op of their own, so the compiler fuses
// them like any other graph and autodiff needs no new rule): masked_fill, logsumexp, norm,
// any/all, isnan/isinf/isfinite, allclose, chunk, roll. Each checks its arguments with its own
// name.
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/ops.h>

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

// node_of throws the frontend's error for an undefined tensor, naming `op`.
void check_defined(const char* op, const Tensor& t) { detail::node_of(t, op); }

void check_floating_input(const char* op, const Tensor& t) {
  check_defined(op, t);
  if (!t.is_floating_point()) {
    throw Error(absl::StrCat(op, ": needs a floating tensor, got ", dtype_name(t.dtype()),
                             "; call .to(DType::Float32) first"));
  }
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

Tensor masked_fill(const Tensor& a, const Tensor& mask, Scalar value) {
  check_defined("masked_fill", a);
  check_defined("masked_fill", mask);
  if (mask.dtype() != DType::Bool) {
    throw Error(absl::StrCat("masked_fill: mask must be Bool, got ", dtype_name(mask.dtype()),
                             "; compare first (e.g. x > 0)"));
  }
  // where() would promote to the value's type; masked_fill keeps a's (2.5 into Int64 is 2).
  return where(mask.expand(a.shape()), value, a).to(a.dtype());
}

Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  check_floating_input("logsumexp", a);
  // The max is subtracted first so exp cannot overflow; an infinite max (all -inf, or a +inf
  // present) shifts by 0 instead, which gives -inf or +inf as the plain formula does. The shift
  // is a constant for autodiff: its gradient terms cancel.
  Tensor m = a.max(dim, /*keepdim=*/true).detach();
  m = where(isfinite(m), m, 0.0);
  Tensor out = (a - m).exp().sum(dim, /*keepdim=*/true).log() + m;
  return keepdim ? out : out.squeeze(detail::normalize_dim("logsumexp", dim, a.dim()));
}

namespace {
Tensor norm_impl(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  check_floating_input("norm", a);
  if (!(p > 0)) throw Error(absl::StrCat("norm: p must be positive (or infinity), got ", p));
  if (p == kInf) return a.abs().max(dims, keepdim);
  if (p == 1) return a.abs().sum(dims, keepdim);
  if (p == 2) return (a * a).sum(dims, keepdim).sqrt();
  return a.abs().pow(p).sum(dims, keepdim).pow(1.0 / p);
}
}  // namespace

Tensor norm(const Tensor& a, double p) { return norm_impl(a, p, {}, false); }
Tensor norm(const Tensor& a, double p, int64_t dim, bool keepdim) {
  return norm_impl(a, p, {dim}, keepdim);
}

namespace {
// How many elements are nonzero (over `dims`; all when empty), as Int64.
Tensor count_nonzero(const char* op, const Tensor& a, const std::vector<int64_t>& dims,
                     bool keepdim) {
  check_defined(op, a);
  return a.to(DType::Bool).sum(dims, keepdim);
}
}  // namespace

Tensor any(const Tensor& a) { return count_nonzero("any", a, {}, false) > 0; }
Tensor any(const Tensor& a, int64_t dim, bool keepdim) {
  return count_nonzero("any", a, {dim}, keepdim) > 0;
}
Tensor all(const Tensor& a) { return count_nonzero("all", logical_not(a), {}, false) == 0; }
Tensor all(const Tensor& a, int64_t dim, bool keepdim) {
  return count_nonzero("all", logical_not(a), {dim}, keepdim) == 0;
}

// For integer tensors: a != a is all false and a == a all true, on a's device.
Tensor isnan(const Tensor& a) {
  check_defined("isnan", a);
  return a != a;
}

Tensor isinf(const Tensor& a) {
  check_defined("isinf", a);
  if (!a.is_floating_point()) return a != a;
  return a.abs() == kInf;
}

Tensor isfinite(const Tensor& a) {
  check_defined("isfinite", a);
  if (!a.is_floating_point()) return a == a;
  return a.abs() < kInf;  // false for NaN too
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  check_defined("allclose", a);
  check_defined("allclose", b);
  const Tensor af = a.is_floating_point() ? a : a.to(DType::Float64);
  const Tensor bf = b.is_floating_point() ? b : b.to(DType::Float64);
  // Equal values pass first, so infinities of the same sign are close, as in PyTorch.
  Tensor close = logical_or(af == bf, (af - bf).abs() <= atol + rtol * bf.abs());
  if (equal_nan) close = logical_or(close, logical_and(isnan(af), isnan(bf)));
  return logical_not(close).to(DType::Int64).sum().item<int64_t>() == 0;
}

std::vector<Tensor> chunk(const Tensor& a, int64_t chunks, int64_t dim) {
  check_defined("chunk", a);
  if (chunks < 1) throw Error(absl::StrCat("chunk: chunks must be >= 1, got ", chunks));
  const int64_t d = detail::normalize_dim("chunk", dim, a.dim());
  const int64_t size = a.size(d);
  // PyTorch's rule: pieces of ceil(size / chunks); the last may be shorter, and there may be
  // fewer than `chunks` pieces.
  const int64_t step = std::max<int64_t>(1, (size + chunks - 1) / chunks);
  std::vector<Tensor> pieces;
  for (int64_t start = 0; start < size; start += step) {
    pieces.push_back(a.slice(d, start, std::min(size, start + step)));
  }
  if (pieces.empty()) pieces.push_back(a);  // an empty dim gives the tensor itself
  return pieces;
}

Tensor roll(const Tensor& a, int64_t shifts, int64_t dim) {
  check_defined("roll", a);
  const int64_t d = detail::normalize_dim("roll", dim, a.dim());
  const int64_t size = a.size(d);
  if (size == 0) return a;
  const int64_t s = ((shifts % size) + size) % size;
  if (s == 0) return a.clone();
  return cat({a.slice(d, size - s, size), a.slice(d, 0, size - s)}, d);
}

Tensor Tensor::masked_fill(const Tensor& mask, Scalar value) const {
  return smelt::masked_fill(*this, mask, value);
}
Tensor Tensor::any() const { return smelt::any(*this); }
Tensor Tensor::any(int64_t dim, bool keepdim) const { return smelt::any(*this, dim, keepdim); }
Tensor Tensor::all() const { return smelt::all(*this); }
Tensor Tensor::all(int64_t dim, bool keepdim) const { return smelt::all(*this, dim, keepdim); }
Tensor Tensor::logsumexp(int64_t dim, bool keepdim) const {
  return smelt::logsumexp(*this, dim, keepdim);
}
Tensor Tensor::norm(double p) const { return smelt::norm(*this, p); }
Tensor Tensor::norm(double p, int64_t dim, bool keepdim) const {
  return smelt::norm(*this, p, dim, keepdim);
}
std::vector<Tensor> Tensor::chunk(int64_t chunks, int64_t dim) const {
  return smelt::chunk(*this, chunks, dim);
}

}  // namespace smelt
