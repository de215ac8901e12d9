// Tensor operations as free functions, grouped by family. All are lazy: they check their
// arguments at once (throwing smelt::Error that names the op, the shapes and dtypes, and what is
// valid) and compute nothing until a value is read.
//
// Elementwise operations broadcast like NumPy (shapes align from the right; a dim of size 1
// stretches) and promote dtypes like PyTorch: the result has the higher of the two dtypes in
// Bool < Int32 < Int64 < Float32 < Float64, except that a 0-d tensor or a Scalar only lifts the
// category (bool, integer, floating), e.g. an int32 tensor + an int64 0-d tensor is int32.
// Dims may be negative, counting from the end.
#pragma once

#include <smelt/scalar.h>
#include <smelt/tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace smelt {

// ---- arithmetic ---------------------------------------------------------------------------------
// `/` is true division: integer operands give Float32. Every binary op takes a Scalar on either
// side.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, Scalar b);
Tensor operator+(Scalar a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, Scalar b);
Tensor operator-(Scalar a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, Scalar b);
Tensor operator*(Scalar a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, Scalar b);
Tensor operator/(Scalar a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor neg(const Tensor& a);

// ---- comparisons: Bool results, computed in the promoted dtype ------------------------------
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, Scalar b);
Tensor operator==(Scalar a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, Scalar b);
Tensor operator!=(Scalar a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, Scalar b);
Tensor operator<(Scalar a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, Scalar b);
Tensor operator<=(Scalar a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, Scalar b);
Tensor operator>(Scalar a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, Scalar b);
Tensor operator>=(Scalar a, const Tensor& b);

// ---- logical: operands are converted to Bool (nonzero is true) ------------------------------
Tensor logical_not(const Tensor& a);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

// ---- unary math ---------------------------------------------------------------------------------
// exp, log, sqrt, rsqrt, tanh, sigmoid, sin and cos of an integer or Bool tensor give Float32.
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor sin(const Tensor& a);
Tensor cos(const Tensor& a);
Tensor abs(const Tensor& a);
// -1, 0 or 1 by the sign of each element.
Tensor sign(const Tensor& a);
// max(a, 0); not defined for Bool.
Tensor relu(const Tensor& a);
// Running sums along dim (Tensor::cumsum).
Tensor cumsum(const Tensor& a, int64_t dim);
// Rounding to whole numbers: floor (down), ceil (up), round (to nearest, halves to even: 0.5 -> 0,
// 1.5 -> 2, like PyTorch), trunc (toward zero). Integer tensors come back unchanged (a copy);
// Bool is refused. Their gradient is zero everywhere.
Tensor floor(const Tensor& a);
Tensor ceil(const Tensor& a);
Tensor round(const Tensor& a);
Tensor trunc(const Tensor& a);
// Rounds to `decimals` digits after the point (negative: before it) as PyTorch does, by scaling
// with 10^|decimals|, rounding halves to even and scaling back. Floating tensors only.
Tensor round(const Tensor& a, int64_t decimals);
// The fractional part, a - trunc(a) (with a's sign). Floating tensors only; gradient 1.
Tensor frac(const Tensor& a);

// ---- binary math --------------------------------------------------------------------------------
Tensor pow(const Tensor& a, const Tensor& exponent);
Tensor pow(const Tensor& a, Scalar exponent);
Tensor pow(Scalar a, const Tensor& exponent);
// Elementwise maximum / minimum (NaN if either is NaN).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, Scalar b);
Tensor maximum(Scalar a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, Scalar b);
Tensor minimum(Scalar a, const Tensor& b);
// a where `cond` (a Bool tensor) is true, else b; all three broadcast.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, Scalar b);
Tensor where(const Tensor& cond, Scalar a, const Tensor& b);
Tensor where(const Tensor& cond, Scalar a, Scalar b);
// minimum(maximum(a, lo), hi): with lo > hi every element becomes hi, as in PyTorch.
Tensor clamp(const Tensor& a, Scalar lo, Scalar hi);
Tensor clamp(const Tensor& a, const Tensor& lo, const Tensor& hi);
Tensor clamp_min(const Tensor& a, Scalar lo);
Tensor clamp_max(const Tensor& a, Scalar hi);

// ---- softmax (numerically stable: the max along `dim` is subtracted first) ------------------
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);

// ---- linear algebra -----------------------------------------------------------------------------
// Like torch.matmul: 1-d x 1-d is a dot product (0-d); a 1-d operand gets a dim of 1 prepended
// (left) or appended (right) that is removed afterwards; higher ranks are batches of matrices
// whose batch dims broadcast. Mixed dtypes are promoted; Bool is not supported.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- composites (frontend/composite_ops.cpp), as in PyTorch -------------------------------------
// `value` where mask (Bool, broadcast to a's shape) is true, else a; a's dtype.
Tensor masked_fill(const Tensor& a, const Tensor& mask, Scalar value);
// log(sum(exp(a), dim)), stable for large values (the max is subtracted first). Floating only.
Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim = false);
// The p-norm over all elements (a 0-d result) or along dim: p = 2, 1, any p > 0, or infinity
// (the largest |a|). Floating only. Like sqrt, the 2-norm's gradient at an all-zero input is NaN.
Tensor norm(const Tensor& a, double p = 2.0);
Tensor norm(const Tensor& a, double p, int64_t dim, bool keepdim = false);
// Bool: whether any / every element is nonzero (over all elements, a 0-d result, or along dim).
Tensor any(const Tensor& a);
Tensor any(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor all(const Tensor& a);
Tensor all(const Tensor& a, int64_t dim, bool keepdim = false);
// Bool masks of NaN, +-infinity, and neither (integer tensors: false, false, true).
Tensor isnan(const Tensor& a);
Tensor isinf(const Tensor& a);
Tensor isfinite(const Tensor& a);
// True when |a - b| <= atol + rtol |b| everywhere after broadcasting (NaNs equal only with
// equal_nan). Realizes both.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8,
              bool equal_nan = false);
// Pieces of ceil(size / chunks) along dim (views; the last may be shorter, and there may be fewer
// than `chunks`).
std::vector<Tensor> chunk(const Tensor& a, int64_t chunks, int64_t dim = 0);
// The elements shifted by `shifts` along dim, wrapping around (negative shifts go back).
Tensor roll(const Tensor& a, int64_t shifts, int64_t dim);

// ---- convolution and pooling (composites of pad, strided slices, matmul and maximum) ------------
// A window's [height, width] pair (size, stride, padding or dilation), like PyTorch's
// int-or-tuple arguments: `3` is {3, 3}, `{3, 5}` is 3 high and 5 wide.
struct Size2 {
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT(google-explicit-constructor): `3` is {3, 3}
  Size2(int64_t h, int64_t w) : h(h), w(w) {}
  bool operator==(const Size2& other) const = default;
  int64_t h, w;
};

// Like torch.nn.functional.conv2d: input [N, C, H, W] (or unbatched [C, H, W]), weight
// [out_channels, C / groups, kh, kw], an optional bias [out_channels] (pass Tensor() for none);
// stride, zero padding and dilation (spacing of the kernel's taps) per axis (`1` or `{1, 2}`).
// With groups > 1, input channels and output channels split into that many groups, each
// convolved on its own (both counts must divide). Floating dtypes only.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1, int64_t groups = 1);
// The maximum over kernel_size windows (`2` or {2, 3}); stride defaults to kernel_size, as in
// PyTorch. Padding (at most half the kernel on each axis) never wins the maximum.
Tensor max_pool2d(const Tensor& input, Size2 kernel_size,
                  std::optional<Size2> stride = std::nullopt, Size2 padding = 0);
// The mean over kernel_size windows, like torch.nn.functional.avg_pool2d: stride defaults to
// kernel_size; zero padding (at most half the kernel) counts in the mean unless
// count_include_pad is false. Floating inputs.
Tensor avg_pool2d(const Tensor& input, Size2 kernel_size,
                  std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                  bool count_include_pad = true);
// The mean over output_size cells that tile the input as PyTorch's adaptive pooling does (cell i
// of n -> out covers [floor(i n / out), ceil((i + 1) n / out))); {1, 1} is global average pooling.
Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size);

// ---- joining ------------------------------------------------------------------------------------
// Concatenates along an existing dim; all other dims must match. dtypes are promoted. As in
// PyTorch, 1-d empty tensors (shape [0]) are skipped.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Joins equal-shaped tensors along a new dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);

}  // namespace smelt
