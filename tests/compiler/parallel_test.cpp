// The CPU kernels' parallel paths, through the whole compiler and against the reference
// evaluator: full reductions split into parts (sizes around and not dividing the part count),
// leading axes flattened into the parallel range, and fused producers inside split reductions.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compiler/passes/fuse.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::reference_values;

// n values of `dtype`: floats in [-2, 3), integers in -3..3, bools at random.
Tensor values(DType dtype, int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-2, 3);
  std::vector<double> d(n);
  std::vector<int64_t> i(n);
  std::vector<bool> b(n);
  for (int64_t k = 0; k < n; ++k) {
    d[k] = u(gen);
    i[k] = static_cast<int64_t>(gen() % 7) - 3;
    b[k] = gen() % 2 == 1;
  }
  if (dtype == DType::Bool) return from_vector(b);
  if (!is_floating(dtype)) return from_vector(i).to(dtype);
  return from_vector(d).to(dtype);
}

void expect_matches_reference(const Tensor& t, const std::string& what) {
  const std::vector<double> want = reference_values(t);
  expect_close(t.to_vector<double>(), want, what);
}

TEST(SplitReduction, FullReductionsMatchTheReference) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{32768}, (int64_t{1} << 20) + 3}) {
    for (DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::Bool}) {
      const std::string what = std::string(dtype_name(t)) + " n=" + std::to_string(n);
      Tensor x = values(t, n, static_cast<uint32_t>(n) + static_cast<uint32_t>(t));
      x.eval();
      expect_matches_reference(x.sum(), "sum " + what);
      if (is_floating(t) && n > 0) expect_matches_reference(x.mean(), "mean " + what);
      if (n == 0) continue;  // max/min/argmax/argmin of nothing have no answer
      expect_matches_reference(x.max(), "max " + what);
      expect_matches_reference(x.min(), "min " + what);
      expect_matches_reference(x.argmax(), "argmax " + what);
      expect_matches_reference(x.argmin(), "argmin " + what);
    }
  }
}

TEST(SplitReduction, FusedProducersAndEpilogues) {
  const int64_t n = (int64_t{1} << 20) + 3;
  Tensor x = values(DType::Float32, n, 5);
  Tensor y = values(DType::Float32, n, 6);
  x.eval();
  y.eval();
  expect_matches_reference((x * y).sum(), "dot");
  expect_matches_reference(exp(x - x.max()).sum().log(), "logsumexp");
  expect_matches_reference((x * x).mean().sqrt(), "rms");
  // A 2-d full reduction whose parts start and end inside rows, over a strided slice.
  expect_matches_reference(x.slice(0, 5, 5 + 1027 * 1021).reshape({1027, 1021}).sum(), "2-d sum");
  // A split full reduction is still one kernel.
  ir::Graph g{{node_of((x * y).sum())}};
  EXPECT_EQ(compiler::fuse(g).num_kernels(), 1);
}

TEST(FlattenedRange, SmallLeadingAxes) {
  const int64_t w = (int64_t{1} << 20) + 1;
  Tensor x = values(DType::Float32, 2 * w, 7).reshape({2, w});
  x.eval();
  expect_matches_reference(tanh(x * 0.5f) + 1.f, "[2, 1M] elementwise");
  expect_matches_reference(x.sum(1), "[2, 1M] row sums");
  expect_matches_reference(x.max(0), "[2, 1M] column max");
  Tensor y = values(DType::Float64, 3 * 5 * 7001, 8).reshape({3, 5, 7001});
  y.eval();
  expect_matches_reference(y.sum(2), "[3, 5, 7001] row sums");
  expect_matches_reference(y.argmax(2), "[3, 5, 7001] row argmax");
  expect_matches_reference(y.transpose(0, 2) * 2.0, "[7001, 5, 3] permute");
}

}  // namespace
}  // namespace smelt
