// Row kernels: reductions broadcast back over the axes they reduced (softmax's max and sum, a
// normalization's mean and variance) run as stages of their consumer's kernel. Checked here:
// which plans the planner makes (and refuses), and that the compiled kernels match the
// reference evaluator for every axis, dtype and shape the stages can meet, gradients included.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compiler/passes/fuse.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"
#include "tests/common/gradcheck.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::reference_values;

compiler::FusionPlan plan_for(const Tensor& t, const compiler::FusionOptions& opt = {}) {
  ir::Graph g{{node_of(t)}};
  return compiler::fuse(g, opt);
}

void expect_matches_reference(const Tensor& t, const std::string& what, double rel = 2e-5) {
  const std::vector<double> want = reference_values(t);
  expect_close(t.to_vector<double>(), want, what, rel);
}

Tensor layer_norm_of(const Tensor& x, int64_t dim) {
  Tensor centered = x - x.mean(dim, /*keepdim=*/true);
  return centered / sqrt((centered * centered).mean(dim, /*keepdim=*/true) + 1e-5);
}

TEST(RowKernel, SoftmaxFamilyIsOneKernelWithTwoStages) {
  Tensor x = randn({64, 100});
  for (const Tensor& t : {softmax(x, 1), log_softmax(x, 1), softmax(x, 0)}) {
    const compiler::FusionPlan plan = plan_for(t);
    EXPECT_EQ(plan.num_kernels(), 1);
    EXPECT_EQ(plan.stage_of.size(), 2u);
    for (const auto& [stage, kernel] : plan.stage_of) EXPECT_EQ(kernel, node_of(t).get());
  }
  // A normalization: the variance's stage reads the mean's.
  const compiler::FusionPlan ln = plan_for(layer_norm_of(x, 1));
  EXPECT_EQ(ln.num_kernels(), 1);
  EXPECT_EQ(ln.stage_of.size(), 2u);
}

TEST(RowKernel, MatchesTheReferenceOnEveryAxisAndShape) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t dim;
  };
  for (const Case& c : {Case{{5, 7}, 1}, Case{{5, 7}, 0}, Case{{3, 5, 33}, 1}, Case{{3, 5, 33}, 2},
                        Case{{3, 5, 33}, 0}, Case{{1, 1000}, 1}, Case{{1000}, 0}, Case{{2, 1}, 0},
                        Case{{4, 1, 3}, 2}, Case{{17, 129}, 1}}) {
    for (DType t : {DType::Float32, DType::Float64}) {
      const std::string what =
          absl::StrCat(dtype_name(t), " [", absl::StrJoin(c.shape, ","), "] dim ", c.dim);
      Tensor x = (randn(c.shape) * 3.f).to(t);
      x.eval();
      expect_matches_reference(softmax(x, c.dim), "softmax " + what);
      expect_matches_reference(log_softmax(x, c.dim), "log_softmax " + what);
      expect_matches_reference(layer_norm_of(x, c.dim), "layer norm " + what, 1e-4);
      // A stage with a main reduction after it: a cross-entropy-like row sum.
      expect_matches_reference((log_softmax(x, c.dim) * x).sum(c.dim), "row sum " + what);
    }
  }
}

TEST(RowKernel, StagesAndAMainReductionShareOneKernel) {
  Tensor x = randn({32, 10});
  Tensor onehot = (randint(0, 10, {32}).unsqueeze(1) == arange(0, 10).unsqueeze(0)).to(x.dtype());
  Tensor nll = -(log_softmax(x, 1) * onehot).sum(1);
  const compiler::FusionPlan plan = plan_for(nll);
  EXPECT_EQ(plan.num_kernels(), 1);
  EXPECT_EQ(plan.stage_of.size(), 2u);
  expect_matches_reference(nll, "nll rows");
  expect_matches_reference(nll.mean(), "nll mean");
}

TEST(RowKernel, IntegerAndMultiAxisStages) {
  Tensor x = randint(-50, 50, {6, 9}).to(DType::Int32);
  Tensor shifted = x - x.max(1, /*keepdim=*/true);
  EXPECT_EQ(plan_for(shifted).num_kernels(), 1);
  expect_matches_reference(shifted, "int32 x - max(x)");
  Tensor y = randn({4, 6, 5});
  Tensor centered = y - y.mean({1, 2}, /*keepdim=*/true);
  EXPECT_EQ(plan_for(centered).num_kernels(), 1);
  expect_matches_reference(centered, "centered over two axes");
  // Dropped dims, put back by a reshape: sum(x, 1) -> [6] -> [6, 1] -> expand.
  Tensor f = randn({6, 9});
  Tensor dropped = f / f.sum(1).reshape({6, 1});
  EXPECT_EQ(plan_for(dropped).num_kernels(), 1);
  expect_matches_reference(dropped, "x / sum(x) through a reshape");
}

TEST(RowKernel, ReductionsOutsideTheRowPatternStayKernelsOfTheirOwn) {
  Tensor x = randn({64, 100});
  // The max is also a requested value: it gets a buffer, read by the softmax kernel.
  Tensor m = x.max(1, /*keepdim=*/true);
  Tensor e = exp(x - m);
  ir::Graph g{{node_of(e), node_of(m)}};
  const compiler::FusionPlan both = compiler::fuse(g);
  EXPECT_TRUE(both.is_materialized(node_of(m).get()));
  EXPECT_TRUE(both.stage_of.empty());
  // Broadcast into a kernel of another shape ([64, 100] -> [64, 100, 3]): no row.
  Tensor wide = (x - x.max(1, true)).unsqueeze(2).expand({64, 100, 3}) * randn({64, 100, 3});
  EXPECT_TRUE(plan_for(wide).stage_of.empty());
  expect_matches_reference(wide, "broadcast to another shape");
  // Rows over the byte cap, and row kernels switched off: the three-kernel plan.
  compiler::FusionOptions small;
  small.max_row_bytes = 256;
  EXPECT_EQ(plan_for(softmax(x, 1), small).num_kernels(), 3);
  compiler::FusionOptions off;
  off.max_stages = 0;
  EXPECT_EQ(plan_for(softmax(x, 1), off).num_kernels(), 3);
  // A stage count over the cap: the extra reductions get buffers.
  compiler::FusionOptions one;
  one.max_stages = 1;
  const compiler::FusionPlan capped = plan_for(softmax(x, 1), one);
  EXPECT_EQ(capped.stage_of.size(), 1u);
  EXPECT_EQ(capped.num_kernels(), 2);
}

TEST(RowKernel, GradientsThroughRowKernelsMatchFiniteDifferences) {
  Tensor w = randn({5, 7});
  testing::gradcheck(
      [&](const std::vector<Tensor>& in) {
        return (softmax(in[0], 1) * w.to(DType::Float64)).sum() +
               (log_softmax(in[0], 0) * w.to(DType::Float64)).sum() +
               (layer_norm_of(in[0], 1) * w.to(DType::Float64)).sum();
      },
      {randn({5, 7})}, 1e-5);
}

}  // namespace
}  // namespace smelt
