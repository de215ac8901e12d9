// RefTensor: a value of the reference evaluator (see ir/reference.h).
#pragma once

#include <smelt/dtype.h>

#include <cstdint>
#include <vector>

#include "ir/shape.h"

namespace smelt::ir {

// A value in the reference evaluator, row-major. Floating dtypes store doubles in `f`; integral
// dtypes and Bool (0/1) store int64 in `i`. Exactly one of the two has numel() entries.
struct RefTensor {
  DType dtype = DType::Float32;
  Shape shape;
  std::vector<double> f;
  std::vector<int64_t> i;

  // A zero-filled value of the given type.
  static RefTensor zeros(DType dtype, Shape shape);

  int64_t numel() const { return ir::numel(shape); }
  bool floating() const { return is_floating(dtype); }
  double get(int64_t k) const { return floating() ? f[k] : static_cast<double>(i[k]); }
  int64_t get_int(int64_t k) const { return floating() ? static_cast<int64_t>(f[k]) : i[k]; }
  // Stores `v` converted to this dtype the way a cast would (truncation toward zero for
  // integers, NaN/inf/out-of-range to the integer type's minimum as on x86, != 0 for Bool,
  // rounding to float for Float32).
  void set(int64_t k, double v);
  void set_int(int64_t k, int64_t v);
};

// Float -> Int32/Int64 conversion with x86 semantics for NaN, inf and out-of-range values.
int64_t float_to_int(double v, DType to);

}  // namespace smelt::ir
