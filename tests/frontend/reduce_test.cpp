// Reductions and softmax: values as PyTorch computes them, dims (negative, lists, keepdim),
// result dtypes, and the errors.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/common/gradcheck.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

Tensor matrix() { return tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}); }

TEST(Sum, Dims) {
  Tensor x = matrix();
  expect_tensor(x.sum(), {}, {21});
  expect_tensor(x.sum(0), {3}, {5, 7, 9});
  expect_tensor(x.sum(1), {2}, {6, 15});
  expect_tensor(x.sum(-1), {2}, {6, 15});
  expect_tensor(x.sum(1, true), {2, 1}, {6, 15});
  expect_tensor(x.sum({0, 1}), {}, {21});
  expect_tensor(x.sum({0, -1}, true), {1, 1}, {21});
  expect_tensor(x.sum(std::vector<int64_t>{}), {}, {21});  // an empty list means all dims
  // [2, 3, 4] with value 12i + 4j + k, summed over i and k: 60 + 32j.
  Tensor y = arange(24).reshape({2, 3, 4});
  Tensor s = y.sum({0, 2});
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EQ(s.to_vector<int64_t>(), (std::vector<int64_t>{60, 92, 124}));
  EXPECT_EQ(y.sum({2, 0}, true).shape(), (std::vector<int64_t>{1, 3, 1}));
}

TEST(Sum, BoolAndInt32GiveInt64) {
  Tensor b = tensor({true, false, true});
  EXPECT_EQ(b.sum().dtype(), DType::Int64);
  EXPECT_EQ(b.sum().item<int64_t>(), 2);
  Tensor i = from_vector(std::vector<int32_t>{2000000000, 2000000000});
  EXPECT_EQ(i.sum().dtype(), DType::Int64);
  EXPECT_EQ(i.sum().item<int64_t>(), 4000000000);
  EXPECT_EQ(tensor({1.0, 2.0}).sum().dtype(), DType::Float64);
}

TEST(Sum, ZeroDimAndEmpty) {
  expect_tensor(scalar_tensor(2.5f).sum(), {}, {2.5});
  expect_tensor(scalar_tensor(2.5f).sum(0), {}, {2.5});
  expect_tensor(zeros({0, 3}).sum(0), {3}, {0, 0, 0});
}

TEST(Sum, Errors) {
  Tensor x = matrix();
  expect_error([&] { x.sum(2); }, {"sum: dim 2 is out of range for a 2-d tensor"});
  expect_error([&] { x.sum({1, -1}); }, {"sum: dim 1 appears more than once in [1, -1]"});
}

TEST(Mean, Values) {
  Tensor x = matrix();
  expect_tensor(x.mean(), {}, {3.5});
  expect_tensor(x.mean(0), {3}, {2.5, 3.5, 4.5});
  expect_tensor(x.mean(-1, true), {2, 1}, {2, 5});
  expect_tensor(x.mean({0, 1}), {}, {3.5});
  EXPECT_EQ(tensor({1.0, 2.0}).mean().dtype(), DType::Float64);
}

TEST(Mean, NeedsFloating) {
  expect_error(
      [] {
        tensor({1, 2}).mean();
      },
      {"mean: needs a floating dtype, got i64; call .to(DType::Float32) first"});
  expect_error([] { tensor({true}).mean(0); }, {"mean:", "bool"});
  expect_error([] { tensor({1, 2}).var(); }, {"var: needs a floating dtype, got i64"});
  expect_error([] { tensor({1, 2}).std(); }, {"std: needs a floating dtype, got i64"});
}

TEST(MaxMin, Values) {
  Tensor x = tensor({{1.f, 5.f, 3.f}, {4.f, 2.f, 6.f}});
  expect_tensor(x.max(), {}, {6});
  expect_tensor(x.min(), {}, {1});
  expect_tensor(x.max(0), {3}, {4, 5, 6});
  expect_tensor(x.max(1), {2}, {5, 6});
  expect_tensor(x.min(-1), {2}, {1, 2});
  expect_tensor(x.min(0, true), {1, 3}, {1, 2, 3});
  expect_tensor(x.max({0, 1}, true), {1, 1}, {6});
  Tensor i = tensor({3, -7, 2});
  EXPECT_EQ(i.min().dtype(), DType::Int64);
  EXPECT_EQ(i.min().item<int64_t>(), -7);
  EXPECT_TRUE(tensor({false, true}).max().item<bool>());
  // NaN propagates.
  EXPECT_TRUE(std::isnan(tensor({1.f, NAN}).max().item<float>()));
}

TEST(MaxMin, EmptyHasNoAnswer) {
  expect_error([] { zeros({0}).max(); }, {"max:", "empty", "[0]"});
  expect_error([] { zeros({2, 0}).min(1); }, {"min: cannot reduce dim 1 of [2, 0]"});
  // Reducing a non-empty dim of an empty tensor is fine: the result is empty.
  EXPECT_EQ(zeros({2, 0}).max(0).shape(), (std::vector<int64_t>{0}));
}

TEST(ArgMaxMin, Values) {
  Tensor x = tensor({{1.f, 5.f, 3.f}, {4.f, 2.f, 6.f}});
  Tensor a = x.argmax();
  EXPECT_EQ(a.dtype(), DType::Int64);
  EXPECT_EQ(a.shape(), std::vector<int64_t>{});
  EXPECT_EQ(a.item<int64_t>(), 5);
  EXPECT_EQ(x.argmin().item<int64_t>(), 0);
  EXPECT_EQ(x.argmax(1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(x.argmin(0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(x.argmax(-1, true).shape(), (std::vector<int64_t>{2, 1}));
  // Ties give the first index.
  EXPECT_EQ(tensor({1.f, 3.f, 3.f}).argmax().item<int64_t>(), 1);
  EXPECT_EQ(tensor({true, false, true}).argmin().item<int64_t>(), 1);
  EXPECT_EQ(scalar_tensor(4.f).argmax(0).item<int64_t>(), 0);
  expect_error([&] { x.argmax(3); }, {"argmax: dim 3 is out of range"});
  expect_error([] { zeros({0}).argmax(); }, {"argmax:", "empty"});
}

TEST(Var, UnbiasedByDefault) {
  Tensor x = matrix();
  // 1..6: mean 3.5, squared deviations sum to 17.5.
  expect_tensor(x.var(), {}, {3.5});
  expect_tensor(x.var(false), {}, {17.5 / 6});
  expect_tensor(x.var(1), {2}, {1, 1});
  expect_tensor(x.var(0), {3}, {4.5, 4.5, 4.5});
  expect_tensor(x.var(0, false), {3}, {2.25, 2.25, 2.25});
  expect_tensor(x.var(0, true, true), {1, 3}, {4.5, 4.5, 4.5});
  expect_tensor(x.var({0, 1}), {}, {3.5});
  expect_tensor(x.std(), {}, {1.8708286933869707});
  expect_tensor(x.std(1), {2}, {1, 1});
  expect_tensor(x.std(0, false), {3}, {1.5, 1.5, 1.5});
  expect_tensor(x.std({-1}, true, true), {2, 1}, {1, 1});
  // One element: N - 1 = 0, so NaN (PyTorch).
  EXPECT_TRUE(std::isnan(tensor({1.f}).var().item<float>()));
  EXPECT_FLOAT_EQ(tensor({1.f}).var(false).item<float>(), 0.f);
}

TEST(Softmax, Values) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  const std::vector<double> expected = {0.09003057317038046, 0.24472847105479764,
                                        0.6652409557748219};
  expect_tensor(softmax(a, 0), {3}, expected);
  expect_tensor(a.softmax(-1), {3}, expected);
  // Stable: a shift by 1000 changes nothing (a naive exp would overflow to inf/inf).
  expect_tensor(softmax(a + 1000.f, 0), {3}, expected);
  expect_tensor(log_softmax(a, 0), {3},
                {-2.4076059644443806, -1.4076059644443804, -0.4076059644443803});
  expect_tensor(log_softmax(a * 1000.f, 0), {3}, {-2000, -1000, 0}, 1e-3);
  Tensor m = tensor({{1.f, 2.f, 3.f}, {1.f, 1.f, 1.f}});
  expect_tensor(softmax(m, 1), {2, 3},
                {expected[0], expected[1], expected[2], 1. / 3, 1. / 3, 1. / 3});
  expect_tensor(
      softmax(m, 0), {2, 3},
      {0.5, 0.7310585786300049, 0.8807970779778823, 0.5, 0.2689414213699951, 0.11920292202211755});
  expect_tensor(m.log_softmax(0).exp(), {2, 3}, softmax(m, 0).to_vector<double>());
}

TEST(Softmax, Errors) {
  expect_error([] { softmax(tensor({1, 2}), 0); }, {"softmax: needs a floating dtype, got i64"});
  expect_error([] { log_softmax(zeros({2, 3}), 2); }, {"log_softmax: dim 2 is out of range"});
  EXPECT_EQ(softmax(zeros({0, 3}), 1).shape(), (std::vector<int64_t>{0, 3}));
}

TEST(Prod, ValuesDimsAndDtypes) {
  Tensor x = tensor({1.f, 2.f, 3.f, -4.f, 0.5f, 2.f}).reshape({2, 3});
  expect_tensor(x.prod(), {}, {-24});
  expect_tensor(x.prod(0), {3}, {-4, 1, 6});
  expect_tensor(x.prod(-1, true), {2, 1}, {6, -4});
  // PyTorch multiplies Bool and Int32 in Int64; an empty product is 1.
  Tensor i = tensor<int64_t>({100000, 100000, 3}).to(DType::Int32);
  EXPECT_EQ(i.prod().dtype(), DType::Int64);
  EXPECT_EQ(i.prod().item<int64_t>(), int64_t{30000000000});
  EXPECT_EQ(tensor<int64_t>({1, 0}).to(DType::Bool).prod().item<int64_t>(), 0);
  expect_tensor(zeros({2, 0}).prod(1), {2}, {1, 1});
  expect_error([&] { x.prod(2); }, {"prod", "dim"});
  expect_error([&] { Tensor().prod(); }, {"prod", "undefined"});
}

TEST(Prod, GradientIsExactWithZeros) {
  // d prod / d x_k is the product of the others, also where x_k or another element is 0.
  testing::gradcheck([](const auto& in) { return in[0].prod(1).sum(); },
                     {tensor({2.0, 0.0, 3.0, 0.0, 0.0, 5.0, 1.5, -2.0, 4.0}).reshape({3, 3})});
  testing::gradcheck([](const auto& in) { return in[0].prod(); }, {randn({2, 3})});
}

}  // namespace
}  // namespace smelt
