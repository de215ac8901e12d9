#include "ir/op_registry.h"

namespace smelt::ir {

// TODO(issue 2): define the elementwise ops.
void register_elementwise_ops(OpRegistrar& r) {}

}  // namespace smelt::ir
