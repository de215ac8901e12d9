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

// Reshapes keep a buffer's elements in order: the first node at or below `n`, along a chain of
// reshapes, for which `is_buffer` holds (nullptr if none does). A library call that reads its
// operand as one contiguous block (index_select's source) reads that node's buffer in place.
const ir::Node* reshaped_buffer(const ir::Node* n,
                                const std::function<bool(const ir::Node*)>& is_buffer);

// The node a chain of reshapes from `n` starts at (n itself when it is no reshape).
const ir::Node* reshape_base(const ir::Node* n);

}  // namespace smelt::compiler
