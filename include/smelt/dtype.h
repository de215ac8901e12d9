// Element types and the NumPy/PyTorch promotion rules. A vocabulary type shared by every layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string_view>

namespace smelt {

// Ordered by promotion rank within each category: Bool < Int32 < Int64 < Float32 < Float64.
enum class DType : uint8_t { Bool, Int32, Int64, Float32, Float64 };

inline constexpr DType kAllDTypes[] = {DType::Bool, DType::Int32, DType::Int64, DType::Float32,
                                       DType::Float64};

constexpr bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }
constexpr bool is_integral(DType t) { return t == DType::Int32 || t == DType::Int64; }

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::Bool: return 1;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 0;
}

// Short name used by the IR text format and error messages: "bool", "i32", "i64", "f32", "f64".
const char* dtype_name(DType t);
// PyTorch's spelling, used when printing tensors: "torch.float32" style without the prefix.
const char* dtype_long_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

// Result type of a binary op between two tensors (torch.result_type for same-category and
// mixed-category operands): the higher of the two ranks.
constexpr DType promote_types(DType a, DType b) { return a > b ? a : b; }

std::ostream& operator<<(std::ostream& os, DType t);

}  // namespace smelt
