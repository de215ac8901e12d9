// Literals that change between realizations: the program cache compiles a graph of the same
// structure once more with those constants as inputs, and every later value reuses it.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <vector>

#include "compiler/compile.h"
#include "compiler/passes/lift_constants.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"

namespace smelt {
namespace {

struct Counts {
  uint64_t misses, lifted;
};

Counts counts() {
  const compiler::CompileStats s = compiler::compile_stats();
  return {s.program_misses, s.programs_lifted};
}

TEST(LiftConstants, AChangingScalarCompilesTwiceThenNeverAgain) {
  Tensor x = randn({37});
  const std::vector<float> xs = x.to_vector<float>();
  const Counts before = counts();
  for (int step = 0; step < 20; ++step) {
    // A user-written schedule: a new literal every step, next to a literal that never changes.
    const double lr = 0.1 / (1 + step);
    Tensor y = x * lr + 0.25;
    const std::vector<float> got = y.to_vector<float>();
    for (size_t i = 0; i < xs.size(); ++i) {
      ASSERT_FLOAT_EQ(got[i], static_cast<float>(xs[i] * static_cast<float>(lr) + 0.25f))
          << "step " << step;
    }
  }
  const Counts after = counts();
  // The first graph compiles with both literals baked in, the second with lr as an input; the
  // other 18 reuse that.
  EXPECT_EQ(after.misses - before.misses, 2u);
  EXPECT_EQ(after.lifted - before.lifted, 1u);

  // The literal that stayed is still compiled in: changing it is a new variant, served by a
  // program of its own, and then reused as well.
  for (int step = 0; step < 5; ++step) {
    Tensor y = x * (0.5 + step) - 3.0;
    const std::vector<float> got = y.to_vector<float>();
    for (size_t i = 0; i < xs.size(); ++i) {
      ASSERT_FLOAT_EQ(got[i], xs[i] * static_cast<float>(0.5 + step) - 3.0f);
    }
  }
  EXPECT_LE(counts().misses - after.misses, 2u);
}

TEST(LiftConstants, IntegerAndShapedConstantsAndGradients) {
  Tensor k = arange(0, 12, 1, DType::Int64).reshape({3, 4});
  const Counts before = counts();
  for (int64_t step = 0; step < 6; ++step) {
    Tensor y = (k + step) * 3;
    const std::vector<int64_t> got = y.to_vector<int64_t>();
    for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(got[i], (i + step) * 3) << "step " << step;
  }
  EXPECT_EQ(counts().misses - before.misses, 2u);

  // A training loop written by hand, with a decaying rate: one forward+backward program and
  // one lifted variant, whatever the number of steps.
  Tensor w = tensor({1.f, -2.f, 0.5f}).requires_grad_();
  Tensor data = randn({16, 3});
  Tensor target = data.matmul(tensor({0.5f, 1.f, -1.f}).reshape({3, 1})).reshape({16});
  const Counts loop = counts();
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    Tensor loss = ((data.matmul(w.reshape({3, 1})).reshape({16}) - target).pow(2)).mean();
    loss.backward();
    {
      NoGradGuard no_grad;
      const double lr = 0.2 * std::pow(0.97, step);
      w.sub_(w.grad() * lr);
      w.mutable_grad() = Tensor();
    }
    const float value = loss.item<float>();
    if (step == 0) first = value;
    last = value;
  }
  EXPECT_LT(last, 0.05f * first);
  EXPECT_LE(counts().misses - loop.misses, 6u) << "a new program per learning rate";
}

TEST(LiftConstants, ConstantsThatAreOutputsOrFeedLibraryCalls) {
  Tensor m = randn({4, 3});
  m.eval();
  const std::vector<float> ms = m.to_vector<float>();
  const Counts before = counts();
  for (int step = 0; step < 5; ++step) {
    const float v = 0.5f * static_cast<float>(step) - 1.f;
    // The output is the constant itself, and a constant is an operand of a matmul.
    Tensor filled = full({2, 3}, v);
    Tensor product = matmul(full({2, 4}, v), m);
    eval({filled, product});
    for (float got : filled.to_vector<float>()) ASSERT_EQ(got, v) << "step " << step;
    const std::vector<float> p = product.to_vector<float>();
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t c = 0; c < 3; ++c) {
        float want = 0;
        for (int64_t k = 0; k < 4; ++k) want += v * ms[k * 3 + c];
        ASSERT_NEAR(p[r * 3 + c], want, 1e-5) << "step " << step;
      }
    }
  }
  EXPECT_LE(counts().misses - before.misses, 3u);
}

TEST(LiftConstants, PassReplacesOnlyTheChosenConstants) {
  Tensor x = randn({2, 3});
  x.eval();
  Tensor y = x * 2.0 + 5.0;
  ir::Graph g{{detail::node_of(y, "test")}};
  std::vector<ir::Node*> order = ir::topo_order(g.outputs);
  absl::flat_hash_set<const ir::Node*> lift;
  const ir::Node* two = nullptr;
  for (ir::Node* n : order) {
    if (n->op() == ir::OpCode::Constant && n->attrs().get_float("value") == 2.0) two = n;
  }
  ASSERT_NE(two, nullptr);
  lift.insert(two);
  compiler::LiftedConstants lc = compiler::lift_constants(g, lift);
  ASSERT_EQ(lc.inputs.size(), 1u);
  EXPECT_EQ(lc.inputs[0].second, two);
  EXPECT_EQ(lc.inputs[0].first->op(), ir::OpCode::Input);
  EXPECT_EQ(lc.inputs[0].first->shape(), ir::Shape{});
  int constants = 0, inputs = 0;
  for (ir::Node* n : ir::topo_order(lc.graph.outputs)) {
    constants += n->op() == ir::OpCode::Constant && !n->is_leaf();
    inputs += n->op() == ir::OpCode::Input;
  }
  EXPECT_EQ(constants, 1);  // 5.0 stays
  EXPECT_EQ(inputs, 2);     // x and the lifted 2.0
  EXPECT_EQ(lc.graph.outputs[0]->shape(), (ir::Shape{2, 3}));
}

}  // namespace
}  // namespace smelt
