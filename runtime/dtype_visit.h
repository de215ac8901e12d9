// Runs a template body on the C++ type of a run-time dtype, for the runtime's library calls
// (scans, sorts, index_add) that are written once as templates.
#pragma once

#include <smelt/dtype.h>

#include <cstdint>

namespace smelt::runtime {

// Calls f(T{}) with T = float, double, int32_t or int64_t for the numeric dtypes (and bool for
// Bool when kWithBool); returns false, calling nothing, for any other dtype. f is instantiated
// only for the types it can be called with.
template <bool kWithBool = false, typename F>
bool visit_numeric(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return true;
    case DType::Float64:
      f(double{});
      return true;
    case DType::Int32:
      f(int32_t{});
      return true;
    case DType::Int64:
      f(int64_t{});
      return true;
    case DType::Bool:
      if constexpr (kWithBool) {
        f(bool{});
        return true;
      }
      return false;
    default:
      return false;
  }
}

}  // namespace smelt::runtime
