#include <gtest/gtest.h>

#include "ir/op_registry.h"

namespace smelt::ir {
namespace {

TEST(OpRegistry, EveryOpIsFullyDefined) {
  for (int i = 0; i < kNumOps; ++i) {
    const OpDef& def = op_def(static_cast<OpCode>(i));
    EXPECT_EQ(def.code, static_cast<OpCode>(i));
    EXPECT_NE(def.infer, nullptr) << def.name << " has no type rule";
    EXPECT_NE(def.ref_eval, nullptr) << def.name << " has no reference evaluation";
    EXPECT_EQ(find_op(def.name), &def);
  }
}

}  // namespace
}  // namespace smelt::ir
