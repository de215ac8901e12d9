// Out-of-line parts of the public vocabulary types (dtype.h, device.h).
#include <smelt/device.h>
#include <smelt/dtype.h>

#include <string>

namespace smelt {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::Int32: return "i32";
    case DType::Int64: return "i64";
    case DType::Float32: return "f32";
    case DType::Float64: return "f64";
  }
  return "?";
}

const char* dtype_long_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : kAllDTypes) {
    if (name == dtype_name(t) || name == dtype_long_name(t)) return t;
  }
  return std::nullopt;
}

std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_long_name(t); }

std::string Device::str() const {
  if (type_ == DeviceType::CPU) return "cpu";
  return "cuda:" + std::to_string(index_);
}

std::ostream& operator<<(std::ostream& os, Device d) { return os << d.str(); }

}  // namespace smelt
