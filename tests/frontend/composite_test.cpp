// The PyTorch conveniences built from other ops (frontend/composite_ops.cpp, linspace in
// creation.cpp): hand-computed values, gradients against finite differences, NaN and infinity
// cases, and errors.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/common/gradcheck.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

TEST(Composite, MaskedFillKeepsTheDtypeAndBroadcastsTheMask) {
  Tensor a = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor mask = from_vector(std::vector<float>{1, 0, 1}, {3}) > 0;  // broadcast over rows
  expect_tensor(a.masked_fill(mask, -1), {2, 3}, {-1, 2, -1, -1, 5, -1});
  Tensor i = from_vector(std::vector<int64_t>{1, 2, 3}, {3});
  Tensor filled = masked_fill(i, i > 1, 0);
  EXPECT_EQ(filled.dtype(), DType::Int64);
  EXPECT_EQ(filled.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(masked_fill(i, i > 1, 2.5).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 2}))
      << "a float value into an integer tensor truncates, as in PyTorch";
  expect_error([&] { a.masked_fill(a, 0); }, {"masked_fill: mask must be Bool, got f32"});
  // Gradient flows to the kept elements only.
  Tensor x = randn({2, 3}).requires_grad_();
  x.masked_fill(mask, 0).sum().backward();
  expect_tensor(x.grad(), {2, 3}, {0, 1, 0, 0, 1, 0});
}

TEST(Composite, LogSumExpIsStableAndDifferentiable) {
  Tensor a = from_vector(std::vector<double>{1000, 1000, 0, std::log(2.0), -kInf, -kInf}, {3, 2});
  expect_tensor(a.logsumexp(1), {3}, {1000 + std::log(2.0), std::log(3.0), -kInf}, 1e-9);
  expect_tensor(logsumexp(a.slice(0, 0, 2), 0, /*keepdim=*/true), {1, 2}, {1000, 1000}, 1e-9);
  manual_seed(5);
  testing::gradcheck([](const auto& in) { return logsumexp(in[0], 1).pow(2.0).sum(); },
                     {randn({3, 4})});
  expect_error([] { logsumexp(arange(3), 0); }, {"logsumexp: needs a floating tensor"});
}

TEST(Composite, NormsForEveryP) {
  Tensor a = from_vector(std::vector<double>{3, -4, 0, 12}, {2, 2});
  expect_tensor(a.norm(), {}, {13}, 1e-12);
  expect_tensor(norm(a, 1), {}, {19}, 1e-12);
  expect_tensor(norm(a, kInf), {}, {12}, 1e-12);
  expect_tensor(norm(a, 3), {}, {std::cbrt(27.0 + 64 + 1728)}, 1e-9);
  expect_tensor(a.norm(2, 1), {2}, {5, 12}, 1e-12);
  expect_tensor(a.norm(2, 0, /*keepdim=*/true), {1, 2}, {3, std::sqrt(16.0 + 144)}, 1e-12);
  manual_seed(6);
  for (double p : {1.5, 2.0, 3.0}) {
    testing::gradcheck([p](const auto& in) { return norm(in[0], p, 1).sum(); }, {randn({2, 3})},
                       1e-5);
  }
  expect_error([&] { a.norm(0); }, {"norm: p must be positive"});
}

TEST(Composite, AnyAndAll) {
  Tensor a = from_vector(std::vector<float>{0, 2, 0, 0, 1, 3}, {2, 3});
  EXPECT_TRUE(a.any().item<bool>());
  EXPECT_FALSE(a.all().item<bool>());
  EXPECT_EQ(a.any().dtype(), DType::Bool);
  EXPECT_EQ(a.any(1).to_vector<bool>(), (std::vector<bool>{true, true}));
  EXPECT_EQ(a.all(0).to_vector<bool>(), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(all(a > -1, 1, /*keepdim=*/true).shape(), (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(all(a > -1).item<bool>());
  EXPECT_FALSE(any(zeros({3}, DType::Int64)).item<bool>());
  EXPECT_TRUE(all(zeros({0})).item<bool>()) << "all of nothing is true, any of nothing false";
  EXPECT_FALSE(any(zeros({0})).item<bool>());
}

TEST(Composite, NanAndInfinityMasks) {
  Tensor a = from_vector(std::vector<double>{1, kNan, kInf, -kInf}, {4});
  EXPECT_EQ(isnan(a).to_vector<bool>(), (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(isinf(a).to_vector<bool>(), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(isfinite(a).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(isfinite(arange(2)).to_vector<bool>(), (std::vector<bool>{true, true}));
  EXPECT_EQ(isnan(arange(2)).dtype(), DType::Bool);
}

TEST(Composite, AllClose) {
  Tensor a = from_vector(std::vector<double>{1, 2, kInf}, {3});
  EXPECT_TRUE(allclose(a, a + from_vector(std::vector<double>{1e-9, -1e-9, 0}, {3})));
  EXPECT_FALSE(allclose(a, a + from_vector(std::vector<double>{1e-3, 0, 0}, {3})));
  EXPECT_TRUE(allclose(a, a + from_vector(std::vector<double>{1e-3, 0, 0}, {3}), 1e-2));
  Tensor n = from_vector(std::vector<double>{kNan, 1}, {2});
  EXPECT_FALSE(allclose(n, n));
  EXPECT_TRUE(allclose(n, n, 1e-5, 1e-8, /*equal_nan=*/true));
  EXPECT_TRUE(allclose(ones({2, 2}), ones({2})));  // broadcasting
  EXPECT_TRUE(allclose(arange(3), from_vector(std::vector<float>{0, 1, 2}, {3})));
  expect_error([] { allclose(ones({2}), ones({3})); }, {"[2]", "[3]"});
}

TEST(Composite, ChunkAndRoll) {
  Tensor a = arange(10).reshape({2, 5});
  std::vector<Tensor> pieces = a.chunk(2, 1);  // ceil(5 / 2) = 3, then 2
  ASSERT_EQ(pieces.size(), 2u);
  expect_tensor(pieces[0], {2, 3}, {0, 1, 2, 5, 6, 7});
  expect_tensor(pieces[1], {2, 2}, {3, 4, 8, 9});
  EXPECT_EQ(chunk(arange(6), 4).size(), 3u) << "PyTorch: 6 in pieces of 2 is 3 pieces";
  expect_tensor(roll(a, 2, 1), {2, 5}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7});
  expect_tensor(roll(a, -1, 0), {2, 5}, {5, 6, 7, 8, 9, 0, 1, 2, 3, 4});
  expect_tensor(roll(a, 7, -1), {2, 5}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7});
  expect_error([&] { a.chunk(0); }, {"chunk: chunks must be >= 1, got 0"});
}

TEST(Composite, LinspaceIsPyTorchs) {
  expect_tensor(linspace(0, 1, 5), {5}, {0, 0.25, 0.5, 0.75, 1});
  expect_tensor(linspace(3, -3, 4, DType::Float64), {4}, {3, 1, -1, -3}, 1e-15);
  expect_tensor(linspace(2, 5, 1), {1}, {2});
  EXPECT_EQ(linspace(0, 1, 0).numel(), 0);
  EXPECT_EQ(linspace(-1, 1, 7).to_vector<float>().back(), 1.0f) << "the end is exact";
  expect_error([] { linspace(0, 1, -1); }, {"linspace: steps must be >= 0, got -1"});
  expect_error([] { linspace(0, 1, 3, DType::Int64); }, {"linspace: dtype must be floating"});
}

}  // namespace
}  // namespace smelt
