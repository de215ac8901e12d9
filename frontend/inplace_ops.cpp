// In-place operations: compute the result lazily like any op, check that it fits the tensor
// (shape, dtype kind, autograd), then swap it in as the tensor's value (TensorImpl::set_node), so
// every handle to the tensor sees it. The IR stays immutable: the old value's node is untouched,
// which is why views taken before keep it, and why autograd through an in-place op on a
// non-leaf needs no version counter.
#include <smelt/autograd.h>
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/ops.h>
#include <smelt/tensor.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/shape.h"

namespace smelt {
namespace detail {
namespace {

// Tensors changed in place whose new value is still pending. A lazy in-place update is state the
// user expects to persist, so the next realization computes it too (see take_pending_inplace):
// otherwise a hand-written training loop that only reads the loss would keep every earlier
// step's update pending, and each step's graph would grow (and compile anew).
std::mutex g_inplace_mu;
std::vector<std::weak_ptr<TensorImpl>> g_inplace;  // guarded by g_inplace_mu

}  // namespace

void note_inplace(const std::shared_ptr<TensorImpl>& impl) {
  std::lock_guard<std::mutex> lock(g_inplace_mu);
  for (const std::weak_ptr<TensorImpl>& w : g_inplace) {
    if (!w.owner_before(impl) && !impl.owner_before(w)) return;  // already noted
  }
  g_inplace.push_back(impl);
}

std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>> take_pending_inplace() {
  std::vector<std::weak_ptr<TensorImpl>> noted;
  {
    std::lock_guard<std::mutex> lock(g_inplace_mu);
    if (g_inplace.empty()) return {};
    noted.swap(g_inplace);
  }
  std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>> pending;
  for (const std::weak_ptr<TensorImpl>& w : noted) {
    std::shared_ptr<TensorImpl> impl = w.lock();
    if (impl == nullptr) continue;
    ir::NodePtr node = impl->node();
    if (!node->is_leaf()) pending.emplace_back(std::move(impl), std::move(node));
  }
  return pending;
}

void restore_pending_inplace(
    const std::vector<std::pair<std::shared_ptr<TensorImpl>, ir::NodePtr>>& pending) {
  for (const auto& [impl, node] : pending) note_inplace(impl);
}

}  // namespace detail

namespace {

std::string describe(const Tensor& t) {
  return absl::StrCat(dtype_name(t.dtype()), " ", ir::shape_str(t.shape()));
}

// The kinds a value may change into in place: a floating result only into a floating tensor,
// an integer one into an integer or floating tensor, Bool into anything (PyTorch's rule).
bool fits_kind(DType result, DType target) {
  if (is_floating(result)) return is_floating(target);
  if (is_integral(result)) return target != DType::Bool;
  return true;
}

// Checks that `self` may change in place at all (before any work is built for it).
void check_mutable(const char* op, const Tensor& self) {
  if (!self.defined()) throw Error(absl::StrCat(op, ": the tensor is undefined"));
  if (self.impl()->is_grad_leaf() && GradMode::is_enabled()) {
    throw Error(absl::StrCat(
        op, ": ", describe(self),
        " is a leaf that requires grad; changing it in place would hide the change from "
        "autograd. Do it under `NoGradGuard no_grad;` (PyTorch's `with torch.no_grad():`), as "
        "an optimizer's update does"));
  }
}

// Makes `result` the value of `self`: same shape, converted to self's dtype.
const Tensor& assign(const char* op, const Tensor& self, const Tensor& result) {
  if (result.shape() != self.shape()) {
    throw Error(absl::StrCat(op, ": the result has shape ", ir::shape_str(result.shape()),
                             " but the tensor being changed in place is ", describe(self),
                             "; the other operand must broadcast to the tensor's shape"));
  }
  if (!fits_kind(result.dtype(), self.dtype())) {
    throw Error(absl::StrCat(op, ": the result is ", dtype_name(result.dtype()),
                             ", which cannot be stored in place into ", describe(self),
                             "; convert the tensor to a floating dtype first (t = t.to(...))"));
  }
  self.impl()->set_node(detail::node_of(result.to(self.dtype()), op));
  detail::note_inplace(self.impl());
  return self;
}

template <typename Other, typename F>
const Tensor& binary_inplace(const char* op, const Tensor& self, const Other& other, F&& f) {
  check_mutable(op, self);
  return assign(op, self, f(self, other));
}

}  // namespace

const Tensor& Tensor::add_(const Tensor& other) const {
  return binary_inplace("add_", *this, other,
                        [](const Tensor& a, const Tensor& b) { return a + b; });
}
const Tensor& Tensor::add_(Scalar other) const {
  return binary_inplace("add_", *this, other, [](const Tensor& a, Scalar b) { return a + b; });
}
const Tensor& Tensor::sub_(const Tensor& other) const {
  return binary_inplace("sub_", *this, other,
                        [](const Tensor& a, const Tensor& b) { return a - b; });
}
const Tensor& Tensor::sub_(Scalar other) const {
  return binary_inplace("sub_", *this, other, [](const Tensor& a, Scalar b) { return a - b; });
}
const Tensor& Tensor::mul_(const Tensor& other) const {
  return binary_inplace("mul_", *this, other,
                        [](const Tensor& a, const Tensor& b) { return a * b; });
}
const Tensor& Tensor::mul_(Scalar other) const {
  return binary_inplace("mul_", *this, other, [](const Tensor& a, Scalar b) { return a * b; });
}
const Tensor& Tensor::div_(const Tensor& other) const {
  return binary_inplace("div_", *this, other,
                        [](const Tensor& a, const Tensor& b) { return a / b; });
}
const Tensor& Tensor::div_(Scalar other) const {
  return binary_inplace("div_", *this, other, [](const Tensor& a, Scalar b) { return a / b; });
}

const Tensor& Tensor::clamp_(Scalar lo, Scalar hi) const {
  check_mutable("clamp_", *this);
  return assign("clamp_", *this, smelt::clamp(*this, lo, hi));
}

const Tensor& Tensor::relu_() const {
  check_mutable("relu_", *this);
  return assign("relu_", *this, smelt::relu(*this));
}

namespace {

const Tensor& fill(const char* op, const Tensor& self, Scalar value) {
  check_mutable(op, self);
  if (value.is_floating() && !is_floating(self.dtype())) {
    throw Error(absl::StrCat(op, ": the value ", value.to_double(),
                             " is floating but the tensor is ", describe(self)));
  }
  return assign(op, self, full_like(self, value));
}

}  // namespace

const Tensor& Tensor::zero_() const { return fill("zero_", *this, 0); }
const Tensor& Tensor::fill_(Scalar value) const { return fill("fill_", *this, value); }

const Tensor& Tensor::copy_(const Tensor& src) const {
  check_mutable("copy_", *this);
  if (!src.defined()) throw Error("copy_: the source tensor is undefined");
  Tensor value = src.device() == device() ? src : src.to(device());
  if (value.shape() != shape()) {
    // Broadcasting only toward this tensor's shape (the checks name the shapes).
    try {
      value = value.expand(shape());
    } catch (const Error&) {
      throw Error(absl::StrCat("copy_: the source ", describe(src), " does not broadcast to ",
                               describe(*this)));
    }
  }
  // A copy converts any dtype, as PyTorch's copy_ does. It gets a node of its own: sharing the
  // source's would make this tensor the owner of that node's gradient (a copy of a parameter
  // into another model's parameter took the first model's gradients).
  value = value.to(dtype());
  if (detail::node_of(value, "copy_") == detail::node_of(src, "copy_")) value = value.clone();
  impl()->set_node(detail::node_of(value, "copy_"));
  detail::note_inplace(impl());
  return *this;
}

}  // namespace smelt
