#include "ir/op_registry.h"

namespace smelt::ir {

// TODO(issue 2): define the reduce ops.
void register_reduce_ops(OpRegistrar& r) {}

}  // namespace smelt::ir
