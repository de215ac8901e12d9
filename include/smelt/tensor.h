// Tensor: a cheap handle to a lazily computed n-dimensional array.
//
// Every operation validates its arguments at once (a bad shape or dtype throws smelt::Error at
// the call that is wrong) and appends a node to a graph; nothing is computed until a value is
// needed: item(), to_vector(), printing, eval() (see eval.h). Copying a Tensor copies the
// handle, not the data.
#pragma once

#include <smelt/device.h>
#include <smelt/dtype.h>
#include <smelt/scalar.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <tuple>
#include <type_traits>
#include <vector>

namespace smelt {

namespace detail {
class TensorImpl;

// The C++ element types item<T>() and to_vector<T>() read into.
template <typename T>
inline constexpr bool kIsElementType = std::is_same_v<T, bool> || std::is_same_v<T, float> ||
                                       std::is_same_v<T, double> ||
                                       (std::is_integral_v<T> && std::is_signed_v<T> &&
                                        (sizeof(T) == 4 || sizeof(T) == 8));

template <typename T>
constexpr DType element_dtype() {
  if constexpr (std::is_same_v<T, bool>)
    return DType::Bool;
  else if constexpr (std::is_same_v<T, float>)
    return DType::Float32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::Float64;
  else if constexpr (sizeof(T) == 4)
    return DType::Int32;
  else
    return DType::Int64;
}
}  // namespace detail

class Tensor {
 public:
  // An undefined tensor (defined() is false); every op on it throws.
  Tensor() = default;
  explicit Tensor(std::shared_ptr<detail::TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- properties (known without computing anything) -----------------------------------------
  bool defined() const { return impl_ != nullptr; }
  // The sizes of the dims, e.g. {2, 3}; {} for a 0-d tensor.
  std::vector<int64_t> shape() const;
  std::vector<int64_t> sizes() const { return shape(); }  // LibTorch's name
  // The size of one dim; negative dims count from the end.
  int64_t size(int64_t dim) const;
  int64_t dim() const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_floating_point() const { return is_floating(dtype()); }

  // ---- reading values (these realize the tensor) --------------------------------------------
  // The value of a one-element tensor, converted to T (float, double, int32_t, int64_t, bool)
  // like PyTorch's item(): floats to integers truncate toward zero, anything to bool is != 0; a
  // value that does not fit T (NaN or out of range for an integer T) throws.
  template <typename T>
  T item() const;
  // A row-major copy of the data, each element converted to T as item() does.
  template <typename T>
  std::vector<T> to_vector() const;
  // Realizes this tensor now (eval({t}) for one tensor). Returns *this.
  const Tensor& eval() const;

  // ---- math (see ops.h for the free functions they forward to) --------------------------------
  Tensor matmul(const Tensor& other) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor abs() const;
  Tensor neg() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor sin() const;
  Tensor cos() const;
  Tensor floor() const;
  Tensor ceil() const;
  Tensor round(int64_t decimals = 0) const;
  Tensor trunc() const;
  Tensor frac() const;
  Tensor pow(Scalar exponent) const;
  Tensor pow(const Tensor& exponent) const;
  Tensor clamp(Scalar lo, Scalar hi) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor masked_fill(const Tensor& mask, Scalar value) const;
  Tensor any() const;
  Tensor any(int64_t dim, bool keepdim = false) const;
  Tensor all() const;
  Tensor all(int64_t dim, bool keepdim = false) const;
  Tensor logsumexp(int64_t dim, bool keepdim = false) const;
  Tensor norm(double p = 2.0) const;
  Tensor norm(double p, int64_t dim, bool keepdim = false) const;
  std::vector<Tensor> chunk(int64_t chunks, int64_t dim = 0) const;

  // ---- reductions -------------------------------------------------------------------------
  // No dim: over all elements (a 0-d result). A list of dims reduces each of them; an empty
  // list means all dims, as in PyTorch. keepdim keeps reduced dims as size 1.
  // sum of Bool/Int32 gives Int64 (PyTorch); mean/var/std need a floating dtype.
  Tensor sum() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  // Running sums along dim: element j is the sum of elements 0..j (torch.cumsum). Bool and Int32
  // give Int64; floating sums accumulate in double. Differentiable.
  Tensor cumsum(int64_t dim) const;
  // Sorting along dim (default: the last). argsort gives the Int64 positions of the elements in
  // sorted order; sort gives (values, positions); topk the k largest (or smallest) with their
  // positions, in sorted order. The sort is stable (equal elements keep their order) and NaN
  // sorts above every number, as in PyTorch. The values are differentiable (their gradient goes
  // back to the positions they came from).
  Tensor argsort(int64_t dim = -1, bool descending = false) const;
  std::tuple<Tensor, Tensor> sort(int64_t dim = -1, bool descending = false) const;
  std::tuple<Tensor, Tensor> topk(int64_t k, int64_t dim = -1, bool largest = true) const;
  // torch.gather: out[i][j][k] = self[i][index[i][j][k]][k] for dim 1 (and so on for the other
  // dims). index is Int64/Int32 with self's rank and at most self's size in every dim but `dim`;
  // the result has index's shape. Differentiable in self (the gradient adds back at the
  // positions read, repeats summed).
  Tensor gather(int64_t dim, const Tensor& index) const;
  // The product of the elements (one dim at a time, as torch.prod); Bool and Int32 give Int64.
  // Its gradient is exact with zeros among the elements (not prod / x).
  Tensor prod() const;
  Tensor prod(int64_t dim, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  // max/min with a dim give the values only (torch.amax / torch.amin).
  Tensor max() const;
  Tensor max(int64_t dim, bool keepdim = false) const;
  Tensor max(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor min() const;
  Tensor min(int64_t dim, bool keepdim = false) const;
  Tensor min(const std::vector<int64_t>& dims, bool keepdim = false) const;
  // Int64 indices of the first maximum/minimum; without a dim, into the flattened tensor.
  Tensor argmax() const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor argmin() const;
  Tensor argmin(int64_t dim, bool keepdim = false) const;
  // Variance and standard deviation; unbiased (divides by N - 1) unless `unbiased` is false
  // (divides by N). The `int dim` overloads keep `t.var(0)` from being ambiguous with the bool.
  Tensor var(bool unbiased = true) const;
  Tensor var(int64_t dim, bool unbiased = true, bool keepdim = false) const;
  Tensor var(int dim, bool unbiased = true, bool keepdim = false) const {
    return var(static_cast<int64_t>(dim), unbiased, keepdim);
  }
  Tensor var(const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false) const;
  Tensor std(bool unbiased = true) const;
  Tensor std(int64_t dim, bool unbiased = true, bool keepdim = false) const;
  Tensor std(int dim, bool unbiased = true, bool keepdim = false) const {
    return std(static_cast<int64_t>(dim), unbiased, keepdim);
  }
  Tensor std(const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false) const;

  // ---- shape (views: no data is copied) ----------------------------------------------------
  // New shape with the same number of elements; one dim may be -1 (inferred).
  Tensor reshape(const std::vector<int64_t>& shape) const;
  // reshape under PyTorch's other name (every tensor here is contiguous, so a view always works).
  Tensor view(const std::vector<int64_t>& shape) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  // Transpose of a 2-d tensor; a 0-d or 1-d tensor is returned as is (a new handle), like torch.
  Tensor t() const;
  Tensor unsqueeze(int64_t dim) const;
  // Removes `dim` if its size is 1 (otherwise a no-op, like torch); without a dim, every size-1
  // dim.
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  // Broadcasts to `shape`: size-1 dims stretch, -1 keeps a dim, extra leading dims are added.
  Tensor expand(const std::vector<int64_t>& shape) const;
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  // Merges dims start..end (inclusive) into one.
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  // Elements start, start+step, ... < end along `dim`. start/end are clamped like Python slices
  // (negative ones count from the end); step must be positive.
  Tensor slice(int64_t dim, int64_t start = 0, int64_t end = std::numeric_limits<int64_t>::max(),
               int64_t step = 1) const;
  // The entries of `index` (an Int32/Int64 tensor of rank <= 1) along `dim`. Indices out of range
  // throw when the result is realized.
  Tensor index_select(int64_t dim, const Tensor& index) const;
  // A copy of *this with source's slices along `dim` added at the positions `index` lists
  // (torch.index_add, out of place): index is Int32/Int64 of rank <= 1 with one entry per slice of
  // source, and source has this tensor's shape and dtype but index.numel() along dim. Repeated
  // indices add up; out-of-range ones throw when the result is realized. Differentiable in both.
  Tensor index_add(int64_t dim, const Tensor& index, const Tensor& source) const;

  // ---- conversion -------------------------------------------------------------------------
  // The same values as `dtype` (*this itself if it already is).
  Tensor to(DType dtype) const;
  // The tensor on `device` (*this itself if it already is there).
  Tensor to(Device device) const;
  Tensor cuda() const;
  Tensor cpu() const;
  // Tensors are always logically contiguous: returns *this.
  Tensor contiguous() const { return *this; }
  // A copy that shares nothing with this tensor.
  Tensor clone() const;

  // ---- in place (PyTorch's trailing underscore) ----------------------------------------------
  // Each replaces this tensor's value with the result, for every handle to it (copies of a
  // Tensor share one value), and returns *this; like everything else, the new value is lazy.
  // `other` must broadcast to this tensor's shape, and the result must convert to its dtype
  // without losing the kind (a floating result never goes into an integer tensor). A leaf that
  // requires grad can change in place only under NoGradGuard, as in PyTorch: the manual SGD step
  // is `{ NoGradGuard g; w.sub_(w.grad() * lr); }`. Views taken before the change (slice,
  // reshape, ...) keep the old value, unlike PyTorch's, which share storage.
  const Tensor& add_(const Tensor& other) const;
  const Tensor& add_(Scalar other) const;
  const Tensor& sub_(const Tensor& other) const;
  const Tensor& sub_(Scalar other) const;
  const Tensor& mul_(const Tensor& other) const;
  const Tensor& mul_(Scalar other) const;
  const Tensor& div_(const Tensor& other) const;
  const Tensor& div_(Scalar other) const;
  const Tensor& clamp_(Scalar lo, Scalar hi) const;
  const Tensor& relu_() const;
  const Tensor& zero_() const;
  const Tensor& fill_(Scalar value) const;
  // Copies `src` (broadcast to this shape, converted to this dtype and moved to this device).
  const Tensor& copy_(const Tensor& src) const;
  Tensor& operator+=(const Tensor& other) { return const_cast<Tensor&>(add_(other)); }
  Tensor& operator+=(Scalar other) { return const_cast<Tensor&>(add_(other)); }
  Tensor& operator-=(const Tensor& other) { return const_cast<Tensor&>(sub_(other)); }
  Tensor& operator-=(Scalar other) { return const_cast<Tensor&>(sub_(other)); }
  Tensor& operator*=(const Tensor& other) { return const_cast<Tensor&>(mul_(other)); }
  Tensor& operator*=(Scalar other) { return const_cast<Tensor&>(mul_(other)); }
  Tensor& operator/=(const Tensor& other) { return const_cast<Tensor&>(div_(other)); }
  Tensor& operator/=(Scalar other) { return const_cast<Tensor&>(div_(other)); }

  // ---- autograd (see autograd.h) -----------------------------------------------------------
  // Marks this tensor as a leaf whose gradient backward() accumulates into grad(). Only floating
  // tensors can require gradients. Turning it off works on leaves only (use detach() otherwise).
  // Returns *this.
  Tensor& requires_grad_(bool requires_grad = true);
  // True for a leaf marked requires_grad_() and for every result computed from one while
  // gradients are recorded (no NoGradGuard).
  bool requires_grad() const;
  // True unless this tensor was computed from tensors that require grad (PyTorch's is_leaf).
  bool is_leaf() const;
  // Computes the gradient of this tensor with respect to every leaf it was computed from and
  // adds it to the leaves' grad() (gradients accumulate across calls until reset). A tensor of
  // more than one element needs `gradient` (of its shape): the vector in the vector-Jacobian
  // product. The graph is freed afterwards unless `retain_graph` (default: create_graph); a
  // second backward through a freed graph throws. With `create_graph` the accumulated gradients
  // require grad themselves (higher-order derivatives). Lazy: appends the gradient computation
  // to the graph; values are computed when read.
  void backward(const Tensor& gradient = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                bool create_graph = false) const;
  // The gradient accumulated by backward(); undefined (defined() is false) before the first
  // backward that reaches this tensor.
  Tensor grad() const;
  // The gradient slot itself: assign Tensor() to reset it (how optimizers zero gradients), or a
  // tensor of this one's shape to set it.
  Tensor& mutable_grad() const;
  // The same values, cut off from the graph: the result does not require grad.
  Tensor detach() const;

  // The implementation object; for the library's own layers.
  const std::shared_ptr<detail::TensorImpl>& impl() const { return impl_; }

 private:
  // Realizes and writes the first `count` elements converted to `as` (item: count 1).
  void read_into(DType as, void* out, int64_t count, const char* op) const;

  std::shared_ptr<detail::TensorImpl> impl_;
};

// Prints like PyTorch (realizes the tensor):
//   tensor([1., 2., 3.])           floats that are all integral get a trailing "."
//   tensor([[1.5000, 2.0000],      otherwise 4 decimals, or scientific notation (1.0000e+08)
//           [3.0000, 4.0000]])     when the nonzero magnitudes span > 1000x, exceed 1e8, or
//   tensor([1, 2, 3])              fall below 1e-4
//   tensor([True, False])
//   tensor(3.5000)                 a 0-d tensor
//   tensor([1., 2.], dtype=float64)    dtypes other than float32, int64 and bool are named
//   tensor([], size=[0, 3])        empty tensors, like PyTorch, give their size unless [0]
// Rows wrap at 80 columns. A tensor with more than 1000 elements is summarized: 3 edge items per
// dim around "...", and (beyond PyTorch) its full size is appended: `, size=[2000, 3]`.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- template definitions ---------------------------------------------------------------------

template <typename T>
T Tensor::item() const {
  static_assert(detail::kIsElementType<T>,
                "item<T>: T must be float, double, int32_t, int64_t or bool");
  if constexpr (std::is_same_v<T, bool>) {
    uint8_t v = 0;
    read_into(DType::Bool, &v, 1, "item");
    return v != 0;
  } else {
    T v{};
    read_into(detail::element_dtype<T>(), &v, 1, "item");
    return v;
  }
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  static_assert(detail::kIsElementType<T>,
                "to_vector<T>: T must be float, double, int32_t, int64_t or bool");
  const int64_t n = numel();
  if constexpr (std::is_same_v<T, bool>) {
    std::vector<uint8_t> bytes(static_cast<size_t>(n));
    read_into(DType::Bool, bytes.data(), n, "to_vector");
    return std::vector<bool>(bytes.begin(), bytes.end());
  } else {
    std::vector<T> out(static_cast<size_t>(n));
    read_into(detail::element_dtype<T>(), out.data(), n, "to_vector");
    return out;
  }
}

}  // namespace smelt
