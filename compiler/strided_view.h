// A chain of movement ops over one buffer, collapsed into (shape, strides, offset) when that is
// possible. Library calls (BLAS reads transposed or batch-broadcast operands through strides)
// use it to avoid materializing views.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "ir/node.h"

namespace smelt::compiler {

struct StridedView {
  const ir::Node* base;          // a node that is not a strided movement op
  std::vector<int64_t> shape;    // the view's shape (the outermost op's shape)
  std::vector<int64_t> strides;  // in elements of base's contiguous row-major buffer
  int64_t offset = 0;
};

// Follows reshape / permute / expand / slice from `n` down to the first other node. Returns
// nullopt when some reshape cannot be expressed as strides of what lies below it. Pad and concat
// are not strided views.
// `is_buffer`, when given, stops the walk at nodes that already have (or will have) a buffer.
std::optional<StridedView> as_strided_view(
    const ir::Node* n, const std::function<bool(const ir::Node*)>& is_buffer = nullptr);

}  // namespace smelt::compiler
