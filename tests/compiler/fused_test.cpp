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

namespace smelt {
namespace {

ir::NodePtr node_of(const Tensor& t) { return t.impl()->node(); }

// Values of a pending tensor from the reference evaluator (double precision), as doubles.
std::vector<double> reference_values(const Tensor& t) {
  auto values = ir::reference_evaluate({node_of(t)});
  EXPECT_TRUE(values.ok()) << values.status();
  std::vector<double> out;
  for (int64_t k = 0; k < (*values)[0].numel(); ++k) out.push_back((*values)[0].get(k));
  return out;
}

// Float32 kernels round at every op and use polynomial math; the reference does not. Compare
// with a tolerance relative to the magnitude of the values involved.
void expect_close(const std::vector<double>& got, const std::vector<double>& want,
                  const std::string& what, double rel = 2e-4) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1;
  for (double w : want) {
    if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " element " << i;
    } else if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << what << " element " << i;
    } else {
      EXPECT_NEAR(got[i], want[i], rel * scale) << what << " element " << i;
    }
  }
}

// ---- differential fuzzer ---------------------------------------------------------------------

// Builds a random graph from a seed: a pool of tensors of broadcast-compatible shapes, grown by
// random elementwise ops, reductions and views. The same seed builds the same graph, so the
// fused, eager and reference runs see identical work.
class RandomGraph {
 public:
  explicit RandomGraph(uint64_t seed) : rng_(seed) {}

  Tensor build(int num_ops) {
    manual_seed(rng_());
    std::vector<int64_t> shape;
    const int rank = pick(1, 3);
    for (int d = 0; d < rank; ++d) shape.push_back(pick_dim());
    pool_.push_back(randn(shape));
    pool_.push_back(randn(shape));
    // A broadcast partner: some dims set to 1, possibly fewer leading dims.
    std::vector<int64_t> b = shape;
    for (auto& d : b) {
      if (pick(0, 2) == 0) d = 1;
    }
    if (b.size() > 1 && pick(0, 1)) b.erase(b.begin());
    pool_.push_back(randn(b));
    for (int i = 0; i < num_ops; ++i) pool_.push_back(step());
    return pool_.back();
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int64_t pick_dim() {
    static const int64_t dims[] = {1, 2, 3, 5, 7, 8, 16, 17, 33};
    return dims[pick(0, 8)];
  }
  const Tensor& any() { return pool_[pick(0, static_cast<int>(pool_.size()) - 1)]; }
  // The last few tensors, so chains grow deep rather than wide.
  const Tensor& recent() {
    const int n = static_cast<int>(pool_.size());
    return pool_[std::max(0, n - 1 - pick(0, 2))];
  }

  Tensor binary(const Tensor& a, const Tensor& b) {
    // Only combine tensors whose shapes broadcast; otherwise fall back to a unary op.
    try {
      switch (pick(0, 5)) {
        case 0:
          return a + b;
        case 1:
          return a - b;
        case 2:
          return a * b;
        case 3:
          return maximum(a, b);
        case 4:
          return where(a > b, a, b * 0.5f);
        default:
          return a / (b * b + 1.f);
      }
    } catch (const Error&) {
      return unary(a);
    }
  }

  Tensor unary(const Tensor& a) {
    switch (pick(0, 8)) {
      case 0:
        return tanh(a);
      case 1:
        return sigmoid(a);
      case 2:
        return exp(a * 0.25f);
      case 3:
        return relu(a);
      case 4:
        return log(abs(a) + 1.f);
      case 5:
        return -a;
      case 6:
        return sin(a) + cos(a);
      case 7:
        return sqrt(a * a + 0.5f);
      default:
        return clamp(a, -1.f, 1.f);
    }
  }

  Tensor view(const Tensor& a) {
    const int64_t r = a.dim();
    if (r == 0) return unary(a);
    switch (pick(0, 4)) {
      case 0:
        if (r >= 2) return a.transpose(0, r - 1);
        return a.unsqueeze(0);
      case 1:
        return a.reshape({-1});
      case 2: {
        const int64_t d = pick(0, static_cast<int>(r) - 1);
        const int64_t size = a.size(d);
        if (size >= 2) return a.slice(d, 1, size, pick(1, 2));
        return a;
      }
      case 3:
        return cat({a, a * 2.f}, static_cast<int64_t>(pick(0, static_cast<int>(r) - 1)));
      default: {
        // pad by slicing a concatenation with zeros is covered by cat; flip via permute.
        std::vector<int64_t> perm(r);
        for (int64_t i = 0; i < r; ++i) perm[i] = r - 1 - i;
        return a.permute(perm);
      }
    }
  }

  Tensor reduce(const Tensor& a) {
    const int64_t r = a.dim();
    if (r == 0) return unary(a);
    const int64_t d = pick(0, static_cast<int>(r) - 1);
    const bool keep = pick(0, 1);
    switch (pick(0, 3)) {
      case 0:
        return a.sum(d, keep);
      case 1:
        return a.max(d, keep);
      case 2:
        return a.mean(d, keep);
      default:
        return softmax(a, d);
    }
  }

  Tensor step() {
    switch (pick(0, 9)) {
      case 0:
      case 1:
      case 2:
        return binary(recent(), any());
      case 3:
      case 4:
      case 5:
        return unary(recent());
      case 6:
      case 7:
        return view(recent());
      default:
        return recent().dim() > 0 ? reduce(recent()) : unary(recent());
    }
  }

  std::mt19937_64 rng_;
  std::vector<Tensor> pool_;
};

int fuzz_iterations() {
  const char* v = std::getenv("SMELT_FUZZ_ITERS");
  return v != nullptr ? std::atoi(v) : 150;
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

TEST(KernelCount, SoftmaxIsAtMostThreeKernels) {
  Tensor x = randn({64, 100});
  EXPECT_LE(kernels_for(softmax(x, 1)), 3);
  EXPECT_LE(kernels_for(log_softmax(x, 1)), 3);
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
  compiler::FusionPlan plan = compiler::fuse(g);
  EXPECT_TRUE(plan.is_materialized(node_of(s).get()));
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
