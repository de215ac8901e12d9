// Creating tensors: literals, vectors, filled, ranges, eye, and the random generators.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

using Shape = std::vector<int64_t>;

TEST(Literals, DtypesAndShapes) {
  EXPECT_EQ(tensor({1.f, 2.f}).dtype(), DType::Float32);
  EXPECT_EQ(tensor({1.0, 2.0}).dtype(), DType::Float64);
  EXPECT_EQ(tensor({1, 2}).dtype(), DType::Int64);
  EXPECT_EQ(tensor({int64_t{1}}).dtype(), DType::Int64);
  EXPECT_EQ(tensor({true, false}).dtype(), DType::Bool);
  expect_tensor(tensor({1.f, 2.f, 3.f}), {3}, {1, 2, 3});
  expect_tensor(tensor({{1.f, 2.f}, {3.f, 4.f}}), {2, 2}, {1, 2, 3, 4});
  expect_tensor(tensor({{1.0, 2.0, 3.0}}), {1, 3}, {1, 2, 3});
  EXPECT_EQ(tensor({{1, 2}, {3, 4}}).dtype(), DType::Int64);
  EXPECT_EQ(tensor({{true}, {false}}).shape(), (Shape{2, 1}));
  EXPECT_EQ(tensor({{int64_t{1}}}).dtype(), DType::Int64);
  expect_error(
      [] {
        tensor({{1.f, 2.f}, {3.f}});
      },
      {"tensor: rows of a 2-d literal must have equal lengths, got 2 and 1"});
}

TEST(Literals, ScalarTensor) {
  Tensor s = scalar_tensor(3.5f);
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.dtype(), DType::Float32);
  EXPECT_FLOAT_EQ(s.item<float>(), 3.5f);
  EXPECT_EQ(scalar_tensor(3).dtype(), DType::Int64);
  EXPECT_EQ(scalar_tensor(true).dtype(), DType::Bool);
  EXPECT_EQ(scalar_tensor(3, DType::Float64).dtype(), DType::Float64);
}

TEST(FromVector, CopiesRowMajor) {
  std::vector<float> data = {1, 2, 3, 4, 5, 6};
  Tensor t = from_vector(data, {2, 3});
  data[0] = 100;  // the tensor has its own copy
  expect_tensor(t, {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(from_vector(std::vector<double>{1, 2}).dtype(), DType::Float64);
  EXPECT_EQ(from_vector(std::vector<int64_t>{1, 2}).dtype(), DType::Int64);
  EXPECT_EQ(from_vector(std::vector<int32_t>{1, 2}).dtype(), DType::Int32);
  Tensor b = from_vector(std::vector<bool>{true, false, true, true}, {2, 2});
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(b.to_vector<bool>(), (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(from_vector(std::vector<float>{7}, {}).shape(), Shape{});
  EXPECT_EQ(from_vector(std::vector<float>{}, {0, 4}).shape(), (Shape{0, 4}));
}

TEST(FromVector, Errors) {
  expect_error(
      [] {
        from_vector(std::vector<float>{1, 2, 3, 4, 5}, {2, 3});
      },
      {"from_vector: 5 values do not fill the shape [2, 3] (6 elements)"});
  expect_error([] { from_vector(std::vector<float>{}, {-1}); },
               {"from_vector: negative size in shape [-1]"});
}

TEST(Filled, ZerosOnesFull) {
  expect_tensor(zeros({2, 3}), {2, 3}, {0, 0, 0, 0, 0, 0});
  expect_tensor(ones({2}), {2}, {1, 1});
  EXPECT_EQ(zeros({2, 3}).dtype(), DType::Float32);
  EXPECT_EQ(zeros({2, 3}, DType::Float64).dtype(), DType::Float64);
  EXPECT_EQ(ones({2}, DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{1, 1}));
  expect_tensor(full({2, 2}, 7.f), {2, 2}, {7, 7, 7, 7});
  EXPECT_EQ(full({2}, 7.f).dtype(), DType::Float32);
  EXPECT_EQ(full({2}, 7).dtype(), DType::Int64);
  EXPECT_EQ(full({2}, true).dtype(), DType::Bool);
  EXPECT_EQ(full({2}, 2.5f, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(zeros({}).shape(), Shape{});
  EXPECT_EQ(zeros({0, 2}).numel(), 0);
  Tensor like = tensor({{1, 2}});
  EXPECT_EQ(zeros_like(like).shape(), (Shape{1, 2}));
  EXPECT_EQ(ones_like(like).dtype(), DType::Int64);
  EXPECT_EQ(full_like(like, 3).to_vector<int64_t>(), (std::vector<int64_t>{3, 3}));
  expect_error([] { zeros({2, -3}); }, {"full: negative size in shape [2, -3]"});
}

TEST(Ranges, Arange) {
  Tensor r = arange(5);
  EXPECT_EQ(r.dtype(), DType::Int64);
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(0, 10).numel(), 10);
  EXPECT_EQ(arange(0, 10, 3).to_vector<int64_t>(), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(arange(5, 0, -2).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  Tensor f = arange(0.f, 1.f, 0.25f);
  EXPECT_EQ(f.dtype(), DType::Float32);
  expect_tensor(f, {4}, {0, 0.25, 0.5, 0.75});
  expect_tensor(arange(1, 0, -0.5), {2}, {1, 0.5});
  EXPECT_EQ(arange(0, 3, 1, DType::Float64).dtype(), DType::Float64);
  EXPECT_EQ(arange(0, 0).numel(), 0);
  expect_error([] { arange(5, 0); }, {"arange:", "sign of step"});
  expect_error([] { arange(0, 5, 0); }, {"arange: step must be finite and nonzero"});
}

TEST(Ranges, Eye) {
  expect_tensor(eye(3), {3, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1});
  expect_tensor(eye(2, 3), {2, 3}, {1, 0, 0, 0, 1, 0});
  EXPECT_EQ(eye(2, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 1}));
  EXPECT_EQ(eye(0).shape(), (Shape{0, 0}));
  expect_error([] { eye(-1); }, {"eye: sizes must be >= 0"});
}

// Mean and (population) variance of a tensor's values.
std::pair<double, double> moments(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  return {mean, var / static_cast<double>(v.size())};
}

TEST(Random, ManualSeedReproduces) {
  manual_seed(42);
  const std::vector<float> a = randn({1000}).to_vector<float>();
  const std::vector<float> b = randn({1000}).to_vector<float>();
  const std::vector<float> u = rand({10}).to_vector<float>();
  const std::vector<int64_t> i = randint(0, 100, {10}).to_vector<int64_t>();
  EXPECT_NE(a, b);
  manual_seed(42);
  EXPECT_EQ(randn({1000}).to_vector<float>(), a);
  EXPECT_EQ(randn({1000}).to_vector<float>(), b);
  EXPECT_EQ(rand({10}).to_vector<float>(), u);
  EXPECT_EQ(randint(0, 100, {10}).to_vector<int64_t>(), i);
  manual_seed(43);
  EXPECT_NE(randn({1000}).to_vector<float>(), a);
}

TEST(Random, RandnIsStandardNormal) {
  manual_seed(1);
  Tensor x = randn({64, 1000});
  EXPECT_EQ(x.shape(), (Shape{64, 1000}));
  EXPECT_EQ(x.dtype(), DType::Float32);
  // 64,000 samples: the standard error of the mean is 0.004, of the variance 0.006.
  const auto [mean, var] = moments(x);
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.04);
  // About 68.3% within one standard deviation.
  const double within = (abs(x) < 1.f).to(DType::Float32).mean().item<double>();
  EXPECT_NEAR(within, 0.6827, 0.01);
  EXPECT_EQ(randn({3}, DType::Float64).dtype(), DType::Float64);
  expect_error([] { randn({3}, DType::Int64); }, {"randn: needs a floating dtype", "i64"});
}

TEST(Random, RandIsUniform) {
  manual_seed(2);
  Tensor x = rand({50000});
  const std::vector<float> v = x.to_vector<float>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), 0.f);
  EXPECT_LT(*std::max_element(v.begin(), v.end()), 1.f);
  const auto [mean, var] = moments(x);
  EXPECT_NEAR(mean, 0.5, 0.01);
  EXPECT_NEAR(var, 1.0 / 12, 0.005);
  EXPECT_EQ(rand({2}, DType::Float64).dtype(), DType::Float64);
}

TEST(Random, RandintIsUniformOverTheRange) {
  manual_seed(3);
  Tensor x = randint(-5, 5, {20000});
  EXPECT_EQ(x.dtype(), DType::Int64);
  const std::vector<int64_t> v = x.to_vector<int64_t>();
  std::set<int64_t> seen(v.begin(), v.end());
  EXPECT_EQ(seen, (std::set<int64_t>{-5, -4, -3, -2, -1, 0, 1, 2, 3, 4}));
  const auto [mean, var] = moments(x);
  EXPECT_NEAR(mean, -0.5, 0.1);
  EXPECT_NEAR(var, (10.0 * 10.0 - 1) / 12, 0.3);
  EXPECT_EQ(randint(0, 2, {4}, DType::Int32).dtype(), DType::Int32);
  expect_error([] { randint(5, 5, {2}); }, {"randint: low (5) must be less than high (5)"});
}

}  // namespace
}  // namespace smelt
