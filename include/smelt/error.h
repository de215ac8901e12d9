// The one exception type of the public API.
#pragma once

#include <stdexcept>
#include <string>

namespace smelt {

// Thrown by every public call that is given bad input (shapes, dtypes, devices, files) or whose
// realization fails. The message names the op, the operands and what would be valid, e.g.
//   matmul: cannot multiply [2, 3] by [4, 5]: inner dimensions 3 and 4 differ
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace smelt
