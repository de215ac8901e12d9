// Scalar: a plain number used where a tensor operand is expected (`a + 1.f`, `2 * a`,
// `where(c, a, 0.f)`, `clamp(a, 0, 1)`).
#pragma once

#include <cstdint>
#include <type_traits>

namespace smelt {

namespace detail {
template <typename T>
concept Arithmetic = std::is_arithmetic_v<T>;
}  // namespace detail

// A C++ number given to a tensor op. It converts implicitly from any arithmetic type and takes
// part in type promotion like a Python number in PyTorch (a "wrapped number"): it never widens
// the tensor's dtype within its category, only lifts the category:
//   int32 tensor + 1     -> int32      f64 tensor * 2.f -> float64
//   int64 tensor + 1.5f  -> float32    bool tensor + 1  -> int64
// float and double scalars behave alike (both are "a floating number").
class Scalar {
 public:
  enum class Kind : uint8_t { Bool, Int, Float };

  template <detail::Arithmetic T>
  constexpr Scalar(T value) {  // NOLINT(google-explicit-constructor): numbers mix with tensors
    if constexpr (std::is_same_v<T, bool>) {
      kind_ = Kind::Bool;
      int_ = value ? 1 : 0;
    } else if constexpr (std::is_integral_v<T>) {
      kind_ = Kind::Int;
      int_ = static_cast<int64_t>(value);
    } else {
      kind_ = Kind::Float;
      float_ = static_cast<double>(value);
    }
  }

  constexpr Kind kind() const { return kind_; }
  constexpr bool is_floating() const { return kind_ == Kind::Float; }
  constexpr bool is_integral() const { return kind_ == Kind::Int; }
  constexpr bool is_bool() const { return kind_ == Kind::Bool; }

  constexpr double to_double() const {
    return kind_ == Kind::Float ? float_ : static_cast<double>(int_);
  }
  constexpr int64_t to_int() const {
    return kind_ == Kind::Float ? static_cast<int64_t>(float_) : int_;
  }

 private:
  Kind kind_ = Kind::Int;
  int64_t int_ = 0;
  double float_ = 0.0;
};

}  // namespace smelt
