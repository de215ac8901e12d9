// Row kernels: reductions broadcast back over the axes they reduced (softmax's max and sum, a
// normalization's mean and variance) run as stages of their consumer's kernel. Checked here:
// which plans the planner makes (and refuses), and that the compiled kernels match the
// reference evaluator for every axis, dtype and shape the stages can meet, gradients included.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compiler/passes/fuse.h"
#include "compiler/pipeline.h"
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

// Float max/min stages take the plain vector max and note NaNs on the side (emit_kernel.cpp):
// a NaN anywhere in a row, in a full vector or in the remainder, still makes the row's max NaN,
// and infinities behave as the reference's.
TEST(RowKernel, MaxAndMinStagesKeepNaNAndInfinity) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  constexpr int64_t kCols = 37;  // two 16-lane vectors and a remainder
  std::vector<float> data;
  std::vector<std::vector<std::pair<int64_t, float>>> rows = {{},
                                                              {{0, nan}},
                                                              {{20, nan}},
                                                              {{36, nan}},
                                                              {{5, inf}},
                                                              {{33, -inf}},
                                                              {{0, inf}, {1, -inf}},
                                                              {{2, nan}, {30, inf}},
                                                              {{10, -0.f}, {11, 0.f}}};
  for (const auto& specials : rows) {
    std::vector<float> row(kCols);
    for (int64_t j = 0; j < kCols; ++j) row[j] = static_cast<float>((j * 7) % 11) - 5.f;
    for (const auto& [j, v] : specials) row[j] = v;
    data.insert(data.end(), row.begin(), row.end());
  }
  std::vector<float> all_minus_inf(kCols, -inf);
  data.insert(data.end(), all_minus_inf.begin(), all_minus_inf.end());
  const int64_t num_rows = static_cast<int64_t>(rows.size()) + 1;
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor x = from_vector(data, {num_rows, kCols}).to(t);
    x.eval();
    for (const auto& [name, value] :
         std::vector<std::pair<std::string, Tensor>>{{"x - max(x)", x - x.max(1, true)},
                                                     {"x - min(x)", x - x.min(1, true)},
                                                     {"softmax", softmax(x, 1)},
                                                     {"log_softmax", log_softmax(x, 1)}}) {
      EXPECT_EQ(plan_for(value).num_kernels(), 1) << name;
      expect_matches_reference(value, absl::StrCat(name, " ", dtype_name(t)));
    }
  }
}

// Division by a value the loop does not change (a row's sum, a broadcast column, a constant)
// multiplies by the reciprocal and corrects the product by one fma step (emit_kernel.cpp's
// divide_by_invariant): the quotient must be fdiv's, bit for bit, over every exponent, and the
// special divisors (zeros, infinities, NaN, subnormals, 2^+-125 and beyond) take the division.
// Quotients in the subnormal range may differ by one unit in the last place.
TEST(RowKernel, DivisionByAnInvariantIsCorrectlyRounded) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> divisors = {1.f,       3.f,
                                       -7.25f,    0.1f,
                                       1e-30f,    3e30f,
                                       0.f,       -0.f,
                                       inf,       -inf,
                                       nan,       1e-40f,
                                       -2e-39f,   3e38f,
                                       0x1p-125f, 0x1p-126f,
                                       0x1p125f,  0x1.fffffep125f,
                                       0x1p126f,  1.17549435e-38f};
  constexpr int64_t kCols = 301;
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> mantissa(1.f, 2.f);
  std::uniform_int_distribution<int> exponent(-100, 100), sign(0, 1);
  std::vector<float> a, s;
  for (float d : divisors) {
    s.push_back(d);
    for (int64_t j = 0; j < kCols; ++j) {
      float v = std::ldexp(mantissa(rng), exponent(rng)) * (sign(rng) ? -1.f : 1.f);
      if (j < 9) v = std::vector<float>{0.f, -0.f, inf, -inf, nan, 3e38f, 1e-40f, 1.f, -1.f}[j];
      a.push_back(v);
    }
  }
  const int64_t rows = static_cast<int64_t>(divisors.size());
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor x = from_vector(a, {rows, kCols}).to(t);
    Tensor y = from_vector(s, {rows, 1}).to(t);
    x.eval();
    y.eval();
    for (const auto& [name, q] :
         std::vector<std::pair<std::string, Tensor>>{{"x / column", x / y},
                                                     {"x / 3", x / 3.0},
                                                     {"x / row sum", x / x.abs().sum(1, true)}}) {
      const std::vector<double> want = reference_values(q);  // before q is realized
      const std::vector<double> got = q.to_vector<double>();
      ASSERT_EQ(got.size(), want.size());
      const double tiny = t == DType::Float32 ? 0x1p-126 : 0x1p-1022;
      const double unit = t == DType::Float32 ? 0x1p-149 : 0x1p-1074;
      int mismatches = 0;
      for (size_t i = 0; i < got.size() && mismatches < 10; ++i) {
        // Zeros must keep their sign (-0 / 3 is -0); other subnormal results may be an ulp off.
        const bool same = (std::isnan(got[i]) && std::isnan(want[i])) ||
                          (got[i] == want[i] && std::signbit(got[i]) == std::signbit(want[i])) ||
                          (want[i] != 0 && got[i] != 0 && std::fabs(want[i]) < tiny &&
                           std::fabs(got[i] - want[i]) <= unit);
        if (!same) {
          ++mismatches;
          ADD_FAILURE() << name << " " << dtype_name(t) << " element " << i << ": " << a[i] << " / "
                        << s[i / kCols] << " gave " << got[i] << ", want " << want[i];
        }
      }
    }
  }
}

// The optimized LLVM IR of t's kernels (irdump --emit=llvm).
std::string llvm_ir_of(const Tensor& t) {
  absl::StatusOr<std::string> ir = compiler::render_stage("llvm", ir::Graph{{node_of(t)}});
  EXPECT_TRUE(ir.ok()) << ir.status();
  return ir.ok() ? *ir : "";
}

// Rows of whole 64-point chunks (at least two) take the last sweep in chunks that prefetch the
// rows two ahead (emit_kernel.cpp's find_prefetch_targets); other rows do not. The chunked sweep
// must give the same values as the plain one: every kind of last sweep (softmax's held exp and
// division, log_softmax's, a normalization's, a stage with a main reduction after it), rows that
// are not contiguous (softmax over dim 0), and thread ranges that end inside the tensor.
TEST(RowKernel, LongRowsPrefetchAheadAndMatchTheReference) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t dim;
    bool prefetch;
  };
  for (const Case& c :
       {Case{{9, 256}, 1, true}, Case{{3, 2, 320}, 2, true}, Case{{37, 1024}, 1, true},
        Case{{8, 100}, 1, false}, Case{{5, 64}, 1, false}, Case{{256, 5}, 0, false}}) {
    for (DType t : {DType::Float32, DType::Float64}) {
      const std::string what =
          absl::StrCat(dtype_name(t), " [", absl::StrJoin(c.shape, ","), "] dim ", c.dim);
      Tensor x = (randn(c.shape) * 3.f).to(t);
      x.eval();
      const Tensor sm = softmax(x, c.dim);
      EXPECT_EQ(llvm_ir_of(sm).find("@llvm.prefetch") != std::string::npos, c.prefetch) << what;
      expect_matches_reference(sm, "softmax " + what);
      expect_matches_reference(log_softmax(x, c.dim), "log_softmax " + what);
      expect_matches_reference(layer_norm_of(x, c.dim), "layer norm " + what, 1e-4);
      expect_matches_reference((log_softmax(x, c.dim) * x).sum(c.dim), "row sum " + what);
    }
  }
}

// Softmax's exp(x - max x) / sum on rows with infinities, NaN, and values whose exp underflows
// to subnormals and to zero, on chunked (prefetching) and plain rows: element by element within
// the normalized exp's tolerance of the reference (zeros exactly, with their sign: the division by
// the row sum drops divide_by_invariant's zero-sign select for this dividend), and finite rows
// summing to 1.
TEST(RowKernel, SoftmaxSpecialValuesElementByElement) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t cols : {37, 128, 1024}) {
    std::vector<std::vector<std::pair<int64_t, float>>> rows = {
        {},
        {{0, -inf}, {cols - 1, -inf}},
        {{3, nan}},
        {{cols - 2, inf}},
        {{1, 90.f}},                // the others' exp underflows to zero
        {{2, 20.f}, {4, -100.f}},   // exp(-105..-120): subnormal and zero quotients
        {{0, 1e-40f}, {5, -0.f}}};  // a subnormal and a negative zero among the inputs
    std::vector<float> data;
    for (const auto& specials : rows) {
      for (int64_t j = 0; j < cols; ++j) {
        data.push_back(static_cast<float>((j * 7) % 23) * 0.25f - 3.f);
      }
      for (const auto& [j, v] : specials) data[data.size() - cols + j] = v;
    }
    data.insert(data.end(), cols, -inf);  // every exp(-inf - -inf) is NaN
    const int64_t num_rows = static_cast<int64_t>(rows.size()) + 1;
    for (DType t : {DType::Float32, DType::Float64}) {
      const std::string what = absl::StrCat(dtype_name(t), " rows of ", cols);
      Tensor x = from_vector(data, {num_rows, cols}).to(t);
      x.eval();
      Tensor y = softmax(x, 1);
      const std::vector<double> want = reference_values(y);
      const std::vector<double> got = y.to_vector<double>();
      ASSERT_EQ(got.size(), want.size());
      const bool f32 = t == DType::Float32;
      // Float softmax takes vecmath.h's emit_exp_normalized (within 4 ulp, and within 2^-126 where
      // e^x is subnormal: partly flushed to +0), double the 1-ulp exp; the division is correctly
      // rounded, and the sums' orders differ.
      const double rel = f32 ? 1e-6 : 1e-14, abs = f32 ? 0x1p-126 : 0x1p-1072;
      for (int64_t r = 0; r < num_rows; ++r) {
        double sum = 0;
        bool finite = true;
        for (int64_t j = 0; j < cols; ++j) {
          const size_t i = static_cast<size_t>(r * cols + j);
          finite = finite && !std::isnan(want[i]);
          sum += got[i];
          if (std::isnan(want[i])) {
            EXPECT_TRUE(std::isnan(got[i])) << what << " row " << r << " col " << j;
          } else if (want[i] == 0) {
            EXPECT_TRUE(got[i] == 0 && !std::signbit(got[i]))
                << what << " row " << r << " col " << j << ": " << got[i];
          } else {
            EXPECT_NEAR(got[i], want[i], rel * want[i] + abs)
                << what << " row " << r << " col " << j;
          }
        }
        if (finite) EXPECT_NEAR(sum, 1.0, f32 ? 4e-6 : 1e-14) << what << " row " << r;
      }
    }
  }
}

// Float softmax's exp is vecmath.h's emit_exp_normalized only where its values feed only the
// row's sum and the division by it. At x = -71.047577 that exp is 3.2 ulp off (its worst case):
// softmax of a row [0, x] (sum 1 + 1.4e-31 = 1) gives it exactly, while exp(x - max x) as a
// value of its own keeps emit_exp's 1-ulp accuracy.
TEST(RowKernel, OnlyANormalizationTakesTheCheaperExp) {
  const float x = -71.047576904296875f;
  Tensor row = from_vector(std::vector<float>{0.f, x, -90.f, -1000.f}, {1, 4});
  row.eval();
  const double exact = std::exp(static_cast<double>(x));
  const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
  const std::vector<float> sm = softmax(row, 1).to_vector<float>();
  const std::vector<float> alone = exp(row - row.max(1, true)).to_vector<float>();
  EXPECT_EQ(sm[1], 0x1.6a0ab8p-103f) << "softmax no longer takes emit_exp_normalized?";
  EXPECT_GT(std::fabs(sm[1] - exact), 3 * ulp);
  EXPECT_LE(std::fabs(alone[1] - exact), ulp) << alone[1] << " vs " << exact;
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
