// A whole training step, forward + backward + update, as lazy IR: it compiles to few kernels
// (the gradient nodes fuse with the forward pass and the update), computes what the reference
// evaluator computes, and step 2..N compile nothing.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <vector>

#include "compiler/compile.h"
#include "compiler/passes/fuse.h"
#include "compiler/pipeline.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"
#include "ir/reference.h"

namespace smelt {
namespace {

ir::NodePtr node_of(const Tensor& t) { return t.impl()->node(); }

struct Mlp {
  Tensor w1 = (randn({10, 32}) * 0.3f).detach().requires_grad_();
  Tensor b1 = zeros({32}).requires_grad_();
  Tensor w2 = (randn({32, 1}) * 0.3f).detach().requires_grad_();
  Tensor b2 = zeros({1}).requires_grad_();

  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  Tensor loss(const Tensor& x, const Tensor& y) const {
    Tensor h = relu(matmul(x, w1) + b1);
    Tensor d = matmul(h, w2) + b2 - y;
    return (d * d).mean();
  }
};

TEST(TrainingStep, ForwardBackwardAndUpdateFuseIntoFewKernels) {
  manual_seed(11);
  Mlp m;
  eval(m.params());  // parameters are data, as in a training loop
  Tensor x = randn({64, 10});
  Tensor y = randn({64, 1});
  m.loss(x, y).backward();
  std::vector<ir::NodePtr> roots;
  {
    NoGradGuard no_grad;
    for (const Tensor& p : m.params()) roots.push_back(node_of(p - p.grad() * 0.1f));
  }
  const ir::Graph step{roots};
  const compiler::FusionPlan plan = compiler::fuse(step);
  // 5 matmul library calls (2 forward, 3 backward); the relu output and the two backward matmul
  // operands (dL/dpred, dL/dh masked by relu) as kernels; one update kernel per parameter, the
  // bias gradients' sums fused into theirs; and pred - y, shared by the two factors of d * d.
  // The graph has ~60 nodes: unfused, that many kernels.
  EXPECT_LE(plan.num_kernels(), 13) << "kernels: " << plan.num_kernels() << "\n"
                                    << *compiler::render_stage("fusion", step);
  // The compiled step computes what the reference evaluator computes.
  absl::StatusOr<std::vector<ir::RefTensor>> want = ir::reference_evaluate(roots);
  ASSERT_TRUE(want.ok()) << want.status();
  std::vector<Tensor> updated;
  for (const ir::NodePtr& r : roots)
    updated.push_back(Tensor(std::make_shared<detail::TensorImpl>(r)));
  eval(updated);
  for (size_t i = 0; i < roots.size(); ++i) {
    const std::vector<double> got = updated[i].to_vector<double>();
    ASSERT_EQ(got.size(), (*want)[i].f.size());
    for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], (*want)[i].f[k], 1e-4);
  }
}

TEST(TrainingStep, LossDecreasesAndLaterStepsCompileNothing) {
  manual_seed(5);
  Mlp m;
  Tensor x = randn({32, 10});
  Tensor y = (x.sum(1, true) * 0.2f).detach();
  auto step = [&] {
    Tensor loss = m.loss(x, y);
    for (Tensor& p : std::vector<Tensor>{m.w1, m.b1, m.w2, m.b2}) p.mutable_grad() = Tensor();
    loss.backward();
    std::vector<Tensor> next;
    {
      NoGradGuard no_grad;
      for (const Tensor& p : m.params()) next.push_back(p - p.grad() * 0.05f);
    }
    eval(next);
    for (size_t i = 0; i < next.size(); ++i) m.params()[i].impl()->set_node(node_of(next[i]));
    return loss.item<float>();
  };
  const float first = step();
  step();
  const compiler::CompileStats before = compiler::compile_stats();
  float last = 0;
  for (int i = 0; i < 20; ++i) last = step();
  const compiler::CompileStats after = compiler::compile_stats();
  EXPECT_LT(last, first * 0.8f);
  EXPECT_EQ(after.program_misses, before.program_misses);
  EXPECT_EQ(after.kernels_compiled, before.kernels_compiled);
  // The parameters are still leaves that require grad after their update.
  EXPECT_TRUE(m.w1.requires_grad());
  EXPECT_TRUE(m.w1.is_leaf());
}

}  // namespace
}  // namespace smelt
