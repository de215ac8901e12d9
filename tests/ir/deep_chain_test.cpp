// A 100,000-node chain must build, walk, evaluate and free without recursion (MLX and tinygrad
// both shipped stack overflows on such graphs). Runs on the default thread stack.
#include <gtest/gtest.h>

#include <vector>

#include "ir/graph.h"
#include "ir/reference.h"
#include "tests/ir/op_testing.h"

namespace smelt::ir {
namespace {

constexpr int kDepth = 100000;

TEST(DeepChain, BuildWalkEvaluateAndFree) {
  // c = expand(reshape(constant 1)) of shape [2]; then x = x + c, kDepth times.
  NodePtr one = testing::make(OpCode::Constant, {}, {{"dtype", DType::Float64}, {"value", 1.0}});
  NodePtr c = testing::make(OpCode::Expand,
                            {testing::make(OpCode::Reshape, {one}, {{"shape", IntList{1}}})},
                            {{"shape", IntList{2}}});
  ASSERT_NE(c, nullptr);
  NodePtr x = testing::input(DType::Float64, {2}, {0.5, -3});
  std::weak_ptr<Node> first_sum;
  for (int k = 0; k < kDepth; ++k) {
    absl::StatusOr<NodePtr> y = Node::make(OpCode::Add, {x, c});
    ASSERT_TRUE(y.ok()) << y.status();
    x = *std::move(y);
    if (k == 0) first_sum = x;
  }
  one.reset();
  c.reset();

  std::vector<NodePtr> roots = {std::move(x)};
  // kDepth adds, the input, and constant -> reshape -> expand.
  EXPECT_EQ(topo_order(roots).size(), static_cast<size_t>(kDepth) + 4);

  absl::StatusOr<std::vector<RefTensor>> v = reference_evaluate(roots);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)[0].f, (std::vector<double>{0.5 + kDepth, -3.0 + kDepth}));

  EXPECT_FALSE(first_sum.expired());
  roots.clear();
  EXPECT_TRUE(first_sum.expired());  // the whole chain is gone
}

TEST(DeepChain, UnaryChainOfEveryDepth) {
  // neg applied kDepth times: an even count is the identity.
  NodePtr x = testing::input(DType::Int64, {3}, {1, -2, 0});
  NodePtr y = x;
  for (int k = 0; k < kDepth; ++k) y = testing::make(OpCode::Neg, {y});
  EXPECT_EQ(testing::eval(y).i, (std::vector<int64_t>{1, -2, 0}));
  y.reset();
}

}  // namespace
}  // namespace smelt::ir
