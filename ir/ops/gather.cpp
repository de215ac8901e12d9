#include "ir/op_registry.h"

namespace smelt::ir {

// TODO(issue 2): define the gather ops.
void register_gather_ops(OpRegistrar& r) {}

}  // namespace smelt::ir
