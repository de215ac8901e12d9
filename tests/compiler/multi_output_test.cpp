// Multi-output kernels: materialized elementwise values of one shape computed by one kernel
// (FusionPlan::grouped_into). Checked: which values join (and which must not, because a kernel
// between them reads one), that a member read by another is computed there, and the values
// against the reference evaluator.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <string>
#include <vector>

#include "compiler/passes/fuse.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"
#include "runtime/program.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::reference_values;

compiler::FusionPlan plan_of(const std::vector<Tensor>& outs,
                             const compiler::FusionOptions& opt = {}) {
  ir::Graph g;
  for (const Tensor& t : outs) g.outputs.push_back(node_of(t));
  return compiler::fuse(g, opt);
}

// Realizes `outs` together and checks each against the reference; returns kernels launched.
uint64_t run_and_check(const std::vector<Tensor>& outs, const std::string& what) {
  std::vector<std::vector<double>> want;
  for (const Tensor& t : outs) want.push_back(reference_values(t));
  const runtime::ExecStats before = runtime::exec_stats();
  eval(outs);
  const runtime::ExecStats after = runtime::exec_stats();
  for (size_t i = 0; i < outs.size(); ++i) {
    expect_close(outs[i].to_vector<double>(), want[i], what + " output " + std::to_string(i));
  }
  return after.kernels_launched - before.kernels_launched;
}

TEST(MultiOutput, AnAdamUpdateIsOneKernel) {
  Tensor p = randn({300, 7}), g = randn({300, 7}), m = randn({300, 7}), v = rand({300, 7});
  eval({p, g, m, v});
  Tensor m2 = m * 0.9f + g * 0.1f;
  Tensor v2 = v * 0.999f + g * g * 0.001f;
  Tensor p2 = p - 0.01f * m2 / (sqrt(v2) + 1e-8f);
  const compiler::FusionPlan plan = plan_of({m2, v2, p2});
  EXPECT_EQ(plan.num_kernels(), 1);
  EXPECT_EQ(plan.grouped_into.size(), 2u);
  compiler::FusionOptions off;
  off.max_outputs = 1;
  EXPECT_EQ(plan_of({m2, v2, p2}, off).num_kernels(), 3);
  EXPECT_EQ(run_and_check({m2, v2, p2}, "adam"), 1u);
}

TEST(MultiOutput, AValueReadBeforeTheJoinedKernelDoesNotJoin) {
  // b needs sum(a), a kernel of its own that reads a: a must be computed before it.
  Tensor x = randn({64});
  Tensor a = exp(x) * 2.f;
  Tensor b = x * a.sum();
  const compiler::FusionPlan plan = plan_of({a, b});
  EXPECT_TRUE(plan.grouped_into.empty());
  run_and_check({a, b}, "read in between");
}

TEST(MultiOutput, AMemberReadThroughAViewIsComputedThere) {
  Tensor x = randn({16, 16}), y = randn({16, 16});
  eval({x, y});
  Tensor a = x * 2.f + 1.f;
  Tensor b = a.t() * y;  // reads a at transposed points
  const compiler::FusionPlan plan = plan_of({a, b});
  EXPECT_EQ(plan.num_kernels(), 1);
  EXPECT_EQ(run_and_check({a, b}, "transposed member"), 1u);
}

TEST(MultiOutput, GroupsStayUnderTheOutputAndInputCaps) {
  std::vector<Tensor> ins, outs;
  for (int i = 0; i < 11; ++i) ins.push_back(randn({40}));
  eval(ins);
  for (int i = 0; i < 10; ++i) outs.push_back(ins[i] * ins[i + 1] + static_cast<float>(i));
  const compiler::FusionPlan plan = plan_of(outs);
  EXPECT_EQ(plan.num_kernels(), 2);  // 8 + 2
  compiler::FusionOptions few_inputs;
  few_inputs.max_kernel_inputs = 4;
  EXPECT_GE(plan_of(outs, few_inputs).num_kernels(), 4);
  EXPECT_EQ(run_and_check(outs, "ten outputs"), 2u);
  // Different shapes and reductions never join.
  Tensor r = ins[0].sum();
  Tensor w = randn({5, 8});
  EXPECT_EQ(plan_of({ins[0] + 1.f, r, w * 2.f}).num_kernels(), 3);
}

TEST(MultiOutput, GradientsAndOptimizersStayCorrect) {
  // A training step's backward graph has several values of one shape (relu masks, gradients).
  Tensor x = randn({32, 20}), w1 = (randn({16, 20}) * 0.1f).detach().requires_grad_();
  Tensor w2 = (randn({4, 16}) * 0.1f).detach().requires_grad_();
  Tensor h = relu(matmul(x, w1.t()));
  Tensor out = tanh(matmul(h, w2.t()));
  Tensor loss = (out * out).mean() + (h * h).mean();
  std::vector<Tensor> grads = grad({loss}, {w1, w2});
  std::vector<Tensor> all = {loss, grads[0], grads[1], h, out};
  run_and_check(all, "training step");
}

}  // namespace
}  // namespace smelt
