// Making tensors: from C++ data, filled, ranges, and random.
#pragma once

#include <smelt/dtype.h>
#include <smelt/scalar.h>
#include <smelt/tensor.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <type_traits>
#include <vector>

namespace smelt {

// ---- from C++ values (the data is copied) -----------------------------------------------------

namespace detail {
// The element types of literals, and the type each is stored as: float and double as
// themselves, any signed integer as int64_t (PyTorch's integer literals are int64), bool as bool.
template <typename T>
inline constexpr bool kIsLiteralElement = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                          std::is_same_v<T, bool> ||
                                          (std::is_integral_v<T> && std::is_signed_v<T>);
template <typename T>
concept LiteralElement = kIsLiteralElement<T>;
template <typename T>
using literal_storage_t =
    std::conditional_t<std::is_floating_point_v<T> || std::is_same_v<T, bool>, T, int64_t>;
[[noreturn]] void throw_ragged_rows(size_t expected, size_t got);
}  // namespace detail

// 1-d and 2-d literals: tensor({1.f, 2.f}), tensor({{1, 2}, {3, 4}}). float gives Float32, double
// Float64, integers Int64, bool Bool. Rows of a 2-d literal must have equal lengths. (Templates,
// so that a column like {{1.f}, {2.f}} is unambiguously 2-d.)
template <detail::LiteralElement T>
Tensor tensor(std::initializer_list<T> values);
template <detail::LiteralElement T>
Tensor tensor(std::initializer_list<std::initializer_list<T>> rows);

// A 0-d tensor; its dtype follows the value (float -> Float32, integers -> Int64, bool -> Bool)
// unless given.
Tensor scalar_tensor(Scalar value, std::optional<DType> dtype = std::nullopt);

// Row-major data of `shape` (1-d of data.size() without one). float gives Float32, double
// Float64, int64_t Int64, int32_t Int32, bool Bool. The element count must match the shape.
Tensor from_vector(const std::vector<float>& data, const std::vector<int64_t>& shape);
Tensor from_vector(const std::vector<double>& data, const std::vector<int64_t>& shape);
Tensor from_vector(const std::vector<int64_t>& data, const std::vector<int64_t>& shape);
Tensor from_vector(const std::vector<int32_t>& data, const std::vector<int64_t>& shape);
Tensor from_vector(const std::vector<bool>& data, const std::vector<int64_t>& shape);
Tensor from_vector(const std::vector<float>& data);
Tensor from_vector(const std::vector<double>& data);
Tensor from_vector(const std::vector<int64_t>& data);
Tensor from_vector(const std::vector<int32_t>& data);
Tensor from_vector(const std::vector<bool>& data);

// ---- filled -------------------------------------------------------------------------------------
Tensor zeros(const std::vector<int64_t>& shape, DType dtype = DType::Float32);
Tensor ones(const std::vector<int64_t>& shape, DType dtype = DType::Float32);
// Every element `value`; without a dtype, it follows the value (7.f Float32, 7 Int64, true Bool).
Tensor full(const std::vector<int64_t>& shape, Scalar value,
            std::optional<DType> dtype = std::nullopt);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, Scalar value);

// ---- ranges -------------------------------------------------------------------------------------
// start, start + step, ... < end (> end for a negative step). Int64 when every argument is an
// integer, Float32 otherwise, unless a dtype is given.
Tensor arange(Scalar end);
Tensor arange(Scalar start, Scalar end, Scalar step = 1);
Tensor arange(Scalar start, Scalar end, Scalar step, DType dtype);
// `steps` values from start to end inclusive, evenly spaced (steps = 1 gives {start}).
Tensor linspace(Scalar start, Scalar end, int64_t steps, DType dtype = DType::Float32);
// The n x m identity matrix (m defaults to n).
Tensor eye(int64_t n, DType dtype = DType::Float32);
Tensor eye(int64_t n, int64_t m, DType dtype = DType::Float32);

// ---- random -------------------------------------------------------------------------------------
// One process-wide generator, safe to use from several threads. Values are drawn when the call
// is made, so a sequence of calls after manual_seed(s) always gives the same tensors.
void manual_seed(uint64_t seed);
// Standard normal samples (Float32 or Float64).
Tensor randn(const std::vector<int64_t>& shape, DType dtype = DType::Float32);
// Uniform samples in [0, 1) (Float32 or Float64).
Tensor rand(const std::vector<int64_t>& shape, DType dtype = DType::Float32);
// Uniform integers in [low, high) (Int64 unless given).
Tensor randint(int64_t low, int64_t high, const std::vector<int64_t>& shape,
               DType dtype = DType::Int64);
Tensor randn_like(const Tensor& t);
Tensor rand_like(const Tensor& t);

// ---- template definitions ---------------------------------------------------------------------

template <detail::LiteralElement T>
Tensor tensor(std::initializer_list<T> values) {
  return from_vector(std::vector<detail::literal_storage_t<T>>(values.begin(), values.end()));
}

template <detail::LiteralElement T>
Tensor tensor(std::initializer_list<std::initializer_list<T>> rows) {
  std::vector<detail::literal_storage_t<T>> flat;
  const size_t cols = rows.size() == 0 ? 0 : rows.begin()->size();
  for (const std::initializer_list<T>& row : rows) {
    if (row.size() != cols) detail::throw_ragged_rows(cols, row.size());
    flat.insert(flat.end(), row.begin(), row.end());
  }
  return from_vector(flat, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols)});
}

}  // namespace smelt
