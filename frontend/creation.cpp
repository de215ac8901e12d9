// Tensors from C++ data, filled tensors, ranges and identity matrices.
#include <smelt/creation.h>
#include <smelt/error.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

void check_shape(absl::string_view op, const std::vector<int64_t>& shape) {
  for (int64_t d : shape) {
    if (d < 0) {
      throw Error(absl::StrCat(op, ": negative size in shape ", ir::shape_str(shape)));
    }
  }
}

// A realized tensor holding a copy of `data` (row-major, already of `dtype`'s storage type).
template <typename T>
Tensor from_data(absl::string_view op, DType dtype, const T* data, size_t count,
                 const std::vector<int64_t>& shape) {
  check_shape(op, shape);
  if (ir::numel(shape) != static_cast<int64_t>(count)) {
    throw Error(absl::StrCat(op, ": ", count, " values do not fill the shape ",
                             ir::shape_str(shape), " (", ir::numel(shape), " elements)"));
  }
  return detail::wrap(detail::host_node(dtype, shape, data));
}

std::vector<uint8_t> bool_bytes(const std::vector<bool>& data) {
  return std::vector<uint8_t>(data.begin(), data.end());
}

// The dtype a bare number gives a tensor: float Float32, integer Int64, bool Bool (PyTorch).
DType default_dtype(Scalar value) {
  if (value.is_floating()) return DType::Float32;
  return value.is_integral() ? DType::Int64 : DType::Bool;
}

template <typename T>
void fill_range(std::vector<uint8_t>& bytes, int64_t count, double start, double step) {
  bytes.resize(static_cast<size_t>(count) * sizeof(T));
  T* p = reinterpret_cast<T*>(bytes.data());
  for (int64_t k = 0; k < count; ++k) p[k] = static_cast<T>(start + step * static_cast<double>(k));
}

}  // namespace

// ---- literals ------------------------------------------------------------------------------

namespace detail {
void throw_ragged_rows(size_t expected, size_t got) {
  throw Error(absl::StrCat("tensor: rows of a 2-d literal must have equal lengths, got ", expected,
                           " and ", got));
}
}  // namespace detail

Tensor scalar_tensor(Scalar value, std::optional<DType> dtype) { return full({}, value, dtype); }

// ---- from vectors -----------------------------------------------------------------------------

Tensor from_vector(const std::vector<float>& data, const std::vector<int64_t>& shape) {
  return from_data("from_vector", DType::Float32, data.data(), data.size(), shape);
}
Tensor from_vector(const std::vector<double>& data, const std::vector<int64_t>& shape) {
  return from_data("from_vector", DType::Float64, data.data(), data.size(), shape);
}
Tensor from_vector(const std::vector<int64_t>& data, const std::vector<int64_t>& shape) {
  return from_data("from_vector", DType::Int64, data.data(), data.size(), shape);
}
Tensor from_vector(const std::vector<int32_t>& data, const std::vector<int64_t>& shape) {
  return from_data("from_vector", DType::Int32, data.data(), data.size(), shape);
}
Tensor from_vector(const std::vector<bool>& data, const std::vector<int64_t>& shape) {
  const std::vector<uint8_t> bytes = bool_bytes(data);
  return from_data("from_vector", DType::Bool, bytes.data(), bytes.size(), shape);
}
Tensor from_vector(const std::vector<float>& data) {
  return from_vector(data, {static_cast<int64_t>(data.size())});
}
Tensor from_vector(const std::vector<double>& data) {
  return from_vector(data, {static_cast<int64_t>(data.size())});
}
Tensor from_vector(const std::vector<int64_t>& data) {
  return from_vector(data, {static_cast<int64_t>(data.size())});
}
Tensor from_vector(const std::vector<int32_t>& data) {
  return from_vector(data, {static_cast<int64_t>(data.size())});
}
Tensor from_vector(const std::vector<bool>& data) {
  return from_vector(data, {static_cast<int64_t>(data.size())});
}

// ---- filled -------------------------------------------------------------------------------------

// Lazy: a 0-d constant viewed at the full shape, so nothing is allocated until it is used, and
// the compiler sees the value.
Tensor full(const std::vector<int64_t>& shape, Scalar value, std::optional<DType> dtype) {
  check_shape("full", shape);
  return detail::wrap(detail::constant_node(value, dtype.value_or(default_dtype(value)), shape));
}
Tensor zeros(const std::vector<int64_t>& shape, DType dtype) { return full(shape, 0, dtype); }
Tensor ones(const std::vector<int64_t>& shape, DType dtype) { return full(shape, 1, dtype); }
// Like PyTorch's, on the tensor's device as well as at its shape and dtype.
Tensor zeros_like(const Tensor& t) { return full_like(t, 0); }
Tensor ones_like(const Tensor& t) { return full_like(t, 1); }
Tensor full_like(const Tensor& t, Scalar value) {
  return detail::wrap(detail::constant_node(value, t.dtype(), t.shape(), t.device()));
}

// ---- ranges -------------------------------------------------------------------------------------

Tensor arange(Scalar end) { return arange(0, end, 1); }

Tensor arange(Scalar start, Scalar end, Scalar step) {
  const bool floating = start.is_floating() || end.is_floating() || step.is_floating();
  return arange(start, end, step, floating ? DType::Float32 : DType::Int64);
}

Tensor arange(Scalar start, Scalar end, Scalar step, DType dtype) {
  const double s = start.to_double(), e = end.to_double(), d = step.to_double();
  if (!std::isfinite(s) || !std::isfinite(e)) {
    throw Error(absl::StrCat("arange: start (", s, ") and end (", e, ") must be finite"));
  }
  if (d == 0 || !std::isfinite(d)) {
    throw Error(absl::StrCat("arange: step must be finite and nonzero, got ", d));
  }
  if ((d > 0 && e < s) || (d < 0 && e > s)) {
    throw Error(absl::StrCat("arange: the range from ", s, " to ", e,
                             " is inconsistent with the sign of step ", d));
  }
  // PyTorch's size: ceil((end - start) / step), computed in double.
  const int64_t count = static_cast<int64_t>(std::ceil((e - s) / d));
  std::vector<uint8_t> bytes;
  switch (dtype) {
    case DType::Float32:
      fill_range<float>(bytes, count, s, d);
      break;
    case DType::Float64:
      fill_range<double>(bytes, count, s, d);
      break;
    case DType::Int32:
      fill_range<int32_t>(bytes, count, s, d);
      break;
    case DType::Int64:
      fill_range<int64_t>(bytes, count, s, d);
      break;
    case DType::Bool:
      throw Error("arange: dtype bool is not supported");
  }
  return detail::wrap(detail::host_node(dtype, {count}, bytes.data()));
}

Tensor linspace(Scalar start, Scalar end, int64_t steps, DType dtype) {
  const double s = start.to_double(), e = end.to_double();
  if (!std::isfinite(s) || !std::isfinite(e)) {
    throw Error(absl::StrCat("linspace: start (", s, ") and end (", e, ") must be finite"));
  }
  if (steps < 0) throw Error(absl::StrCat("linspace: steps must be >= 0, got ", steps));
  if (!is_floating(dtype)) {
    throw Error(absl::StrCat("linspace: dtype must be floating, got ", dtype_name(dtype)));
  }
  std::vector<double> values(static_cast<size_t>(steps));
  const double delta = steps > 1 ? (e - s) / static_cast<double>(steps - 1) : 0.0;
  if (steps == 1) values[0] = s;
  // PyTorch's symmetric fill: the second half counts back from `end`, so end is exact.
  for (int64_t i = 0; i < steps && steps > 1; ++i) {
    values[i] = i < steps / 2 ? s + delta * static_cast<double>(i)
                              : e - delta * static_cast<double>(steps - 1 - i);
  }
  return from_vector(values, {steps}).to(dtype);
}

Tensor eye(int64_t n, DType dtype) { return eye(n, n, dtype); }

Tensor eye(int64_t n, int64_t m, DType dtype) {
  if (n < 0 || m < 0) {
    throw Error(absl::StrCat("eye: sizes must be >= 0, got n=", n, " and m=", m));
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(n * m) * dtype_size(dtype), 0);
  for (int64_t i = 0; i < std::min(n, m); ++i) {
    detail::store_as(dtype, 1, bytes.data() + static_cast<size_t>(i * m + i) * dtype_size(dtype));
  }
  return detail::wrap(detail::host_node(dtype, {n, m}, bytes.data()));
}

}  // namespace smelt
