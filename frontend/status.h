// The boundary where internal absl::Status failures become the public smelt::Error.
#pragma once

#include <smelt/error.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace smelt::detail {

// Throws smelt::Error carrying the status message (which already names the op).
[[noreturn]] inline void throw_status(const absl::Status& s) { throw Error(std::string(s.message())); }

inline void check_ok(const absl::Status& s) {
  if (!s.ok()) throw_status(s);
}

template <typename T>
T value_or_throw(absl::StatusOr<T> v) {
  if (!v.ok()) throw_status(v.status());
  return *std::move(v);
}

}  // namespace smelt::detail
