#include "ir/op_registry.h"

namespace smelt::ir {

// TODO(issue 2): define the matmul ops.
void register_matmul_ops(OpRegistrar& r) {}

}  // namespace smelt::ir
