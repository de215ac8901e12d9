#include "ir/op_registry.h"

namespace smelt::ir {

// TODO(issue 2): define the movement ops.
void register_movement_ops(OpRegistrar& r) {}

}  // namespace smelt::ir
