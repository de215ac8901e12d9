// The compiled path (fusion + LLVM JIT) against the reference evaluator and against eager mode:
// a differential fuzzer over random graphs, kernel-count checks and program-cache checks.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/passes/fuse.h"
#include "compiler/realize.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"
#include "ir/reference.h"
#include "runtime/memory_pool.h"
#include "runtime/program.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::RandomGraph;
using testing::reference_values;

int fuzz_iterations() {
  const char* v = std::getenv("SMELT_FUZZ_ITERS");
  return v != nullptr ? std::atoi(v) : 150;
}

// The first seed (SMELT_FUZZ_FROM, to rerun a failing seed alone).
int fuzz_first_seed() {
  const char* v = std::getenv("SMELT_FUZZ_FROM");
  return v != nullptr ? std::atoi(v) : 1;
}

TEST(Fuzz, FusedMatchesReferenceAndEager) {
  const int iters = fuzz_iterations();
  for (int seed = 1; seed <= iters; ++seed) {
    const int ops = 3 + seed % 12;
    Tensor fused = RandomGraph(seed).build(ops);
    const std::vector<double> want = reference_values(fused);
    const std::string what = "seed " + std::to_string(seed);
    expect_close(fused.to_vector<double>(), want, what + " (fused)");
    std::vector<double> eager_values;
    {
      set_eager(true);
      Tensor eager = RandomGraph(seed).build(ops);
      eager_values = eager.to_vector<double>();
      set_eager(false);
    }
    expect_close(eager_values, want, what + " (eager)");
    if (::testing::Test::HasFailure()) return;  // one failing seed is enough to debug
  }
}

// Several values of one random graph realized together: multi-output kernels, row kernels
// whose stages other outputs also need, and the ordering rules between joined kernels.
TEST(Fuzz, SeveralOutputsMatchTheReference) {
  const int iters = fuzz_iterations();
  for (int seed = fuzz_first_seed(); seed <= iters; ++seed) {
    RandomGraph graph(seed * 7919);
    graph.build(4 + seed % 10);
    const std::vector<Tensor>& all = graph.values();
    std::vector<Tensor> outs;
    for (size_t i = 3; i < all.size(); ++i) {
      if ((seed + i) % 3 != 0 || i + 1 == all.size()) outs.push_back(all[i]);
    }
    std::vector<std::vector<double>> want;
    for (const Tensor& t : outs) want.push_back(reference_values(t));
    eval(outs);
    for (size_t i = 0; i < outs.size(); ++i) {
      expect_close(outs[i].to_vector<double>(), want[i],
                   "seed " + std::to_string(seed) + " output " + std::to_string(i));
    }
    if (::testing::Test::HasFailure()) return;
  }
}

// ---- kernel counts -----------------------------------------------------------------------------

int kernels_for(const Tensor& t) {
  ir::Graph g{{node_of(t)}};
  return compiler::fuse(g).num_kernels();
}

TEST(KernelCount, ElementwiseChainIsOneKernel) {
  Tensor x = randn({1000});
  Tensor y = randn({1000});
  Tensor chain = tanh(x * 0.5f + y) * sigmoid(x) + exp(-x * x);
  EXPECT_EQ(kernels_for(chain), 1);
}

TEST(KernelCount, SoftmaxIsOneKernel) {
  Tensor x = randn({64, 100});
  EXPECT_EQ(kernels_for(softmax(x, 1)), 1);
  EXPECT_EQ(kernels_for(log_softmax(x, 1)), 1);
}

TEST(KernelCount, MeanFusesTheScaleIntoTheReduction) {
  Tensor x = randn({64, 100});
  EXPECT_EQ(kernels_for(x.mean(1)), 1);
  EXPECT_EQ(kernels_for((x * x).sum()), 1);
}

TEST(KernelCount, LinearLayerReadsTheTransposedWeightInPlace) {
  Tensor x = randn({8, 16});
  Tensor w = randn({4, 16});
  Tensor b = randn({4});
  // matmul reads w.t() through strides; the bias add + relu is one kernel.
  EXPECT_EQ(kernels_for(relu(matmul(x, w.t()) + b)), 2);
}

TEST(KernelCount, ReductionIsNeverRecomputed) {
  Tensor x = randn({32, 32});
  Tensor s = x.sum(1, true);
  Tensor out = (x - s) * (x + s);  // s is used twice, through broadcasts
  ir::Graph g{{node_of(out)}};
  // Once per row, as a stage of the one kernel, or once into a buffer of its own.
  compiler::FusionPlan plan = compiler::fuse(g);
  EXPECT_EQ(plan.stage_of.at(node_of(s).get()), node_of(out).get());
  EXPECT_EQ(plan.num_kernels(), 1);
  compiler::FusionOptions no_rows;
  no_rows.max_stages = 0;
  EXPECT_TRUE(compiler::fuse(g, no_rows).is_materialized(node_of(s).get()));
  expect_close(out.to_vector<double>(), reference_values(out), "broadcast reduction");
}

// ---- caches ------------------------------------------------------------------------------------

TEST(ProgramCache, SecondRealizeOfTheSameStructureCompilesNothing) {
  auto step = [](const Tensor& a, const Tensor& b) { return (a * b + 1.f).sum(0); };
  Tensor a = randn({7, 5});
  Tensor b = randn({7, 5});
  step(a, b).eval();
  const compiler::CompileStats before = compiler::compile_stats();
  Tensor c = randn({7, 5});  // new data, same structure
  Tensor out = step(c, a);
  out.eval();
  const compiler::CompileStats after = compiler::compile_stats();
  EXPECT_EQ(after.program_misses, before.program_misses);
  EXPECT_EQ(after.kernels_compiled, before.kernels_compiled);
  EXPECT_EQ(after.program_hits, before.program_hits + 1);
  expect_close(
      out.to_vector<double>(),
      [&] {
        std::vector<double> want(5, 0.0);
        const auto cv = c.to_vector<double>();
        const auto av = a.to_vector<double>();
        for (int i = 0; i < 7; ++i) {
          for (int j = 0; j < 5; ++j) want[j] += cv[i * 5 + j] * av[i * 5 + j] + 1.0;
        }
        return want;
      }(),
      "cached program on new data");
}

TEST(ProgramCache, SameShapesDifferentTopologyAreDifferentPrograms) {
  Tensor a = randn({3});
  Tensor b = randn({3});
  Tensor aa = a + a;
  Tensor ab = a + b;
  expect_close(aa.to_vector<double>(), reference_values(a + a), "a + a");
  expect_close(ab.to_vector<double>(), reference_values(a + b), "a + b");
}

TEST(Failure, GatherOutOfRangeLeavesEverythingIntact) {
  Tensor x = randn({4, 3});
  Tensor bad = from_vector(std::vector<int64_t>{0, 9}, {2});
  Tensor y = x * 2.f;
  Tensor sel = y.index_select(0, bad);
  EXPECT_THROW(sel.eval(), Error);
  // y is still pending and computes; a good index works afterwards.
  expect_close(y.to_vector<double>(), reference_values(x * 2.f), "y after failure");
  Tensor good = from_vector(std::vector<int64_t>{3, 0}, {2});
  EXPECT_EQ(x.index_select(0, good).shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_NO_THROW(x.index_select(0, good).eval());
}

}  // namespace
}  // namespace smelt

namespace smelt {
namespace {

TEST(EvalTrigger, ALoopThatNeverReadsRunsInBoundedMemory) {
  const auto before = compiler::realize_stats();
  Tensor x = zeros({256});
  for (int i = 0; i < 5000; ++i) {
    x = x * 0.5f + 1.f;  // converges to 2
    ASSERT_LE(x.impl()->node()->pending_depth(), 1100) << "iteration " << i;
  }
  const auto after = compiler::realize_stats();
  const size_t limit = static_cast<size_t>(compiler::EvalReason::kGraphLimit);
  EXPECT_GE(after.by_reason[limit], before.by_reason[limit] + 5);
  // The realized history is gone: only a few 1 KiB buffers are alive.
  EXPECT_LT(runtime::cpu_pool().stats().allocated_bytes, size_t{1} << 20);
  for (float v : x.to_vector<float>()) EXPECT_FLOAT_EQ(v, 2.f);
}

}  // namespace
}  // namespace smelt
