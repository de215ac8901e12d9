// Shape and movement ops, joining, conversion, and their errors.
#include <gtest/gtest.h>

#include "tests/common/gradcheck.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

using Shape = std::vector<int64_t>;

Tensor matrix() { return tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}); }

TEST(Reshape, InfersOneDim) {
  Tensor x = matrix();
  expect_tensor(x.reshape({3, 2}), {3, 2}, {1, 2, 3, 4, 5, 6});
  expect_tensor(x.reshape({-1}), {6}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(x.reshape({-1, 2}).shape(), (Shape{3, 2}));
  EXPECT_EQ(x.reshape({1, -1, 1}).shape(), (Shape{1, 6, 1}));
  EXPECT_EQ(x.view({6, 1}).shape(), (Shape{6, 1}));
  EXPECT_EQ(scalar_tensor(1.f).reshape({1, 1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(tensor({1.f}).reshape({}).shape(), Shape{});
  EXPECT_EQ(zeros({0, 3}).reshape({3, 0}).shape(), (Shape{3, 0}));
}

TEST(Reshape, Errors) {
  Tensor x = matrix();
  expect_error(
      [&] {
        x.reshape({4, 2});
      },
      {"reshape: cannot reshape [2, 3] (6 elements) into [4, 2] (8 elements)"});
  expect_error([&] { x.reshape({-1, -1}); }, {"reshape: only one dim can be -1"});
  expect_error([&] { x.view({5}); }, {"view: cannot reshape [2, 3] (6 elements) into [5]"});
  expect_error([&] { x.reshape({4, -1}); }, {"reshape:", "[2, 3]", "[4, -1]"});
  expect_error([&] { x.reshape({-2, 3}); }, {"reshape: invalid size -2"});
  expect_error([] { zeros({0, 3}).reshape({-1, 0}); }, {"reshape:", "any size"});
}

TEST(Permute, Values) {
  Tensor x = matrix();
  expect_tensor(x.permute({1, 0}), {3, 2}, {1, 4, 2, 5, 3, 6});
  expect_tensor(x.permute({-1, 0}), {3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor y = arange(24).reshape({2, 3, 4});
  Tensor p = y.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  // p[k][i][j] = y[i][j][k] = 12i + 4j + k; p[1] = [[1, 5, 9], [13, 17, 21]].
  EXPECT_EQ(p.slice(0, 1, 2).to_vector<int64_t>(), (std::vector<int64_t>{1, 5, 9, 13, 17, 21}));
}

TEST(Permute, Errors) {
  Tensor x = matrix();
  expect_error([&] { x.permute({0, 0}); }, {"permute: [0, 0] is not a permutation of 0..1"});
  expect_error([&] { x.permute({0}); }, {"permute:", "[0]", "[2, 3]"});
  expect_error([&] { x.permute({0, 2}); }, {"permute: dim 2 is out of range"});
}

TEST(Transpose, Values) {
  Tensor x = matrix();
  expect_tensor(x.transpose(0, 1), {3, 2}, {1, 4, 2, 5, 3, 6});
  expect_tensor(x.transpose(-1, -2), {3, 2}, {1, 4, 2, 5, 3, 6});
  expect_tensor(x.t(), {3, 2}, {1, 4, 2, 5, 3, 6});
  expect_tensor(x.transpose(1, 1), {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(arange(24).reshape({2, 3, 4}).transpose(0, 2).shape(), (Shape{4, 3, 2}));
}

TEST(Transpose, TOfVectorsAndErrors) {
  Tensor v = tensor({1.f, 2.f});
  Tensor tv = v.t();
  expect_tensor(tv, {2}, {1, 2});
  EXPECT_NE(tv.impl(), v.impl());  // a new handle, like torch's view
  expect_tensor(scalar_tensor(3.f).t(), {}, {3});
  expect_error(
      [] {
        zeros({2, 3, 4}).t();
      },
      {"t: expects a tensor with at most 2 dims", "[2, 3, 4]", "transpose"});
  expect_error([] { zeros({2, 3}).transpose(0, 2); }, {"transpose: dim 2 is out of range"});
}

TEST(Squeeze, UnsqueezeAndSqueeze) {
  Tensor x = matrix();
  EXPECT_EQ(x.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(x.unsqueeze(1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(x.unsqueeze(2).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(scalar_tensor(1.f).unsqueeze(0).shape(), (Shape{1}));
  expect_error([&] { x.unsqueeze(3); }, {"unsqueeze: dim 3 is out of range"});

  Tensor y = zeros({1, 3, 1});
  EXPECT_EQ(y.squeeze().shape(), (Shape{3}));
  EXPECT_EQ(y.squeeze(0).shape(), (Shape{3, 1}));
  EXPECT_EQ(y.squeeze(-1).shape(), (Shape{1, 3}));
  EXPECT_EQ(y.squeeze(1).shape(), (Shape{1, 3, 1}));  // size 3: a no-op, like torch
  EXPECT_EQ(zeros({1, 1}).squeeze().shape(), Shape{});
  expect_error([&] { y.squeeze(3); }, {"squeeze: dim 3 is out of range"});
  expect_tensor(x.unsqueeze(0).squeeze(0), {2, 3}, {1, 2, 3, 4, 5, 6});
}

TEST(Expand, Values) {
  Tensor v = tensor({1.f, 2.f, 3.f});
  expect_tensor(v.expand({2, 3}), {2, 3}, {1, 2, 3, 1, 2, 3});
  Tensor c = tensor({{1.f}, {2.f}});
  expect_tensor(c.expand({-1, 3}), {2, 3}, {1, 1, 1, 2, 2, 2});
  expect_tensor(c.expand({2, 2, -1}), {2, 2, 1}, {1, 2, 1, 2});
  expect_tensor(scalar_tensor(7.f).expand({2}), {2}, {7, 7});
  expect_tensor(v.expand_as(zeros({2, 3})), {2, 3}, {1, 2, 3, 1, 2, 3});
  EXPECT_EQ(tensor({1.f}).expand({0}).shape(), (Shape{0}));
}

TEST(Expand, Errors) {
  Tensor x = matrix();
  expect_error([&] { x.expand({2, 4}); }, {"expand: cannot expand [2, 3] to [2, 4]", "dim 1"});
  expect_error([&] { x.expand({3}); }, {"expand:", "[2, 3]", "[3]", "fewer dims"});
  expect_error([&] { x.expand({-1, 2, 3}); }, {"expand:", "leading"});
}

TEST(Flatten, Ranges) {
  Tensor y = arange(24).reshape({2, 3, 4});
  EXPECT_EQ(y.flatten().shape(), (Shape{24}));
  EXPECT_EQ(y.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(y.flatten(0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(y.flatten(-2, -1).shape(), (Shape{2, 12}));
  EXPECT_EQ(y.flatten(1, 1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(scalar_tensor(1.f).flatten().shape(), (Shape{1}));
  EXPECT_EQ(y.flatten().to_vector<int64_t>(), arange(24).to_vector<int64_t>());
  expect_error([&] { y.flatten(2, 1); }, {"flatten: start_dim 2 comes after end_dim 1"});
  expect_error([&] { y.flatten(3); }, {"flatten: dim 3 is out of range"});
}

TEST(Slice, PythonClamping) {
  Tensor r = arange(10);
  auto values = [](const Tensor& t) { return t.to_vector<int64_t>(); };
  using V = std::vector<int64_t>;
  EXPECT_EQ(values(r.slice(0, 2, 8, 2)), (V{2, 4, 6}));
  EXPECT_EQ(values(r.slice(0, -3)), (V{7, 8, 9}));
  EXPECT_EQ(values(r.slice(0, 5, 100)), (V{5, 6, 7, 8, 9}));
  EXPECT_EQ(values(r.slice(0, -100, 2)), (V{0, 1}));
  EXPECT_EQ(values(r.slice(0, 2, -5)), (V{2, 3, 4}));
  EXPECT_EQ(values(r.slice(0, 0, 10, 3)), (V{0, 3, 6, 9}));
  EXPECT_EQ(r.slice(0, 8, 2).shape(), (Shape{0}));
  EXPECT_EQ(r.slice(0, 20, 30).shape(), (Shape{0}));
  Tensor x = matrix();
  expect_tensor(x.slice(1, 1, 3), {2, 2}, {2, 3, 5, 6});
  expect_tensor(x.slice(-1, 0, 3, 2), {2, 2}, {1, 3, 4, 6});
  expect_tensor(x.slice(0, 1), {1, 3}, {4, 5, 6});
}

TEST(Slice, Errors) {
  Tensor x = matrix();
  expect_error([&] { x.slice(0, 0, 2, 0); }, {"slice: step must be positive, got 0"});
  expect_error([&] { x.slice(0, 0, 2, -1); }, {"slice: step must be positive, got -1"});
  expect_error([&] { x.slice(2, 0, 1); }, {"slice: dim 2 is out of range"});
  expect_error([] { scalar_tensor(1.f).slice(0, 0, 1); }, {"slice:", "0-d"});
}

TEST(IndexSelect, Values) {
  Tensor x = matrix();
  expect_tensor(x.index_select(1, tensor({2, 0})), {2, 2}, {3, 1, 6, 4});
  expect_tensor(x.index_select(-1, tensor({1, 1, 1})), {2, 3}, {2, 2, 2, 5, 5, 5});
  expect_tensor(x.index_select(0, from_vector(std::vector<int32_t>{1})), {1, 3}, {4, 5, 6});
  expect_tensor(x.index_select(0, scalar_tensor(1)), {1, 3}, {4, 5, 6});
  expect_tensor(x.index_select(0, from_vector(std::vector<int64_t>{})), {0, 3}, {});
  expect_tensor(scalar_tensor(5.f).index_select(0, tensor({0})), {}, {5});
}

TEST(IndexSelect, Errors) {
  Tensor x = matrix();
  expect_error([&] { x.index_select(0, tensor({0.f})); },
               {"index_select: index must be an integer tensor (i32 or i64), got f32"});
  expect_error(
      [&] {
        x.index_select(0, tensor({{0, 1}}));
      },
      {"index_select: index must be 1-d", "[1, 2]"});
  expect_error([&] { x.index_select(2, tensor({0})); }, {"index_select: dim 2 is out of range"});
  // Out of range is data: it is found when the value is computed.
  Tensor bad = x.index_select(0, tensor({2}));
  expect_error([&] { bad.eval(); }, {"index_select: index 2 is out of range"});
}

TEST(Cat, JoinsAlongADim) {
  Tensor a = tensor({{1.f, 2.f}, {3.f, 4.f}});
  Tensor b = tensor({{5.f, 6.f}});
  expect_tensor(cat({a, b}), {3, 2}, {1, 2, 3, 4, 5, 6});
  expect_tensor(cat({a, b.t()}, 1), {2, 3}, {1, 2, 5, 3, 4, 6});
  expect_tensor(cat({a, a}, -1), {2, 4}, {1, 2, 1, 2, 3, 4, 3, 4});
  expect_tensor(cat({a}), {2, 2}, {1, 2, 3, 4});
  // dtypes promote; legacy [0] tensors are skipped.
  Tensor mixed = cat({tensor({1, 2}), tensor({0.5f})});
  EXPECT_EQ(mixed.dtype(), DType::Float32);
  expect_tensor(mixed, {3}, {1, 2, 0.5});
  expect_tensor(cat({a, zeros({0}), b}), {3, 2}, {1, 2, 3, 4, 5, 6});
}

TEST(Cat, Errors) {
  Tensor a = zeros({2, 2});
  expect_error([] { cat({}); }, {"cat: expects a non-empty list"});
  expect_error(
      [&] {
        cat({a, zeros({2, 3})});
      },
      {"cat: sizes must match except in dim 0, got [2, 2] (entry 0) and [2, 3] (entry 1)"});
  expect_error([&] { cat({a, zeros({2})}); }, {"cat:", "same number of dims", "[2, 2]", "[2]"});
  expect_error([&] { cat({a, a}, 2); }, {"cat: dim 2 is out of range"});
  expect_error([] { cat({scalar_tensor(1.f)}); }, {"cat:", "0-d"});
}

TEST(Stack, NewDim) {
  Tensor a = tensor({1.f, 2.f});
  Tensor b = tensor({3.f, 4.f});
  expect_tensor(stack({a, b}), {2, 2}, {1, 2, 3, 4});
  expect_tensor(stack({a, b}, 1), {2, 2}, {1, 3, 2, 4});
  expect_tensor(stack({a, b}, -1), {2, 2}, {1, 3, 2, 4});
  expect_tensor(stack({scalar_tensor(1.f), scalar_tensor(2.f)}), {2}, {1, 2});
  EXPECT_EQ(stack({zeros({2, 3}), zeros({2, 3}), zeros({2, 3})}, 1).shape(), (Shape{2, 3, 3}));
  expect_error(
      [&] {
        stack({a, zeros({3})});
      },
      {"stack: expects tensors of equal size, got [2] (entry 0) and [3] (entry 1)"});
  expect_error([&] { stack({a, b}, 2); }, {"stack: dim 2 is out of range"});
  expect_error([] { stack({}); }, {"stack: expects a non-empty list"});
}

TEST(Conversion, ToDType) {
  Tensor x = tensor({1.7f, -1.7f, 0.f});
  EXPECT_EQ(x.to(DType::Float64).dtype(), DType::Float64);
  EXPECT_EQ(x.to(DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{1, -1, 0}));
  EXPECT_EQ(x.to(DType::Bool).to_vector<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(x.to(DType::Float32).impl(), x.impl());  // same dtype: *this, like torch
  expect_tensor(tensor({true, false}).to(DType::Float32), {2}, {1, 0});
}

TEST(Conversion, ContiguousAndClone) {
  Tensor x = matrix();
  EXPECT_EQ(x.contiguous().impl(), x.impl());
  Tensor c = x.t().clone();
  EXPECT_NE(c.impl(), x.impl());
  expect_tensor(c, {3, 2}, {1, 4, 2, 5, 3, 6});
}

TEST(Devices, CudaMovesSayWhyTheyCannotRun) {
  Tensor x = matrix();
  if (!cuda_is_available()) {
    const char* msg = "to: no CUDA device is available (cuda_is_available() is false: ";
    expect_error([&] { x.cuda(); }, {msg});
    expect_error([&] { x.to(Device::cuda()); }, {msg});
  } else {
    expect_error([&] { x.to(Device::cuda(99)); }, {"to: cuda:99 does not exist"});
  }
  EXPECT_EQ(x.cpu().impl(), x.impl());
  EXPECT_EQ(x.to(Device::cpu()).impl(), x.impl());
  EXPECT_EQ(x.device(), Device::cpu());
}

TEST(Properties, SizesAndDims) {
  Tensor y = zeros({2, 3, 4});
  EXPECT_EQ(y.dim(), 3);
  EXPECT_EQ(y.numel(), 24);
  EXPECT_EQ(y.size(0), 2);
  EXPECT_EQ(y.size(-1), 4);
  EXPECT_EQ(y.sizes(), (Shape{2, 3, 4}));
  EXPECT_TRUE(y.is_floating_point());
  EXPECT_EQ(scalar_tensor(1).dim(), 0);
  EXPECT_EQ(scalar_tensor(1).numel(), 1);
  expect_error([&] { y.size(3); }, {"size: dim 3 is out of range"});
}

TEST(IndexAdd, AddsSlicesAtTheirIndicesLikePyTorch) {
  Tensor base = ones({3, 2});
  Tensor src = tensor({{1.f, 2.f}, {3.f, 4.f}, {5.f, 6.f}, {7.f, 8.f}});
  Tensor idx = from_vector(std::vector<int64_t>{0, 2, 0, 1});
  expect_tensor(base.index_add(0, idx, src), {3, 2}, {7, 9, 8, 9, 4, 5});
  expect_tensor(zeros({2, 3}).index_add(-1, from_vector(std::vector<int64_t>{2, 2}), ones({2, 2})),
                {2, 3}, {0, 0, 2, 0, 0, 2});
  Tensor ints = zeros({4}, DType::Int64)
                    .index_add(0, from_vector(std::vector<int64_t>{3, 3, 0}),
                               from_vector(std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(ints.to_vector<int64_t>(), (std::vector<int64_t>{7, 0, 0, 11}));
  // Both operands get gradients: self's passes through, source's is read at the indices.
  testing::gradcheck(
      [&](const auto& in) { return (in[0].index_add(0, idx, in[1]).pow(2.0)).sum(); },
      {randn({3, 2}), randn({4, 2})});
}

TEST(IndexAdd, LargeScatterMatchesALoop) {
  // index_select's gradient on a big table: each row gets the sum of the gradients that read it.
  Tensor table = randn({5000, 70}, DType::Float64).requires_grad_();
  Tensor idx = randint(0, 5000, {3000});
  Tensor w = randn({3000, 70}, DType::Float64);
  (table.index_select(0, idx) * w).sum().backward();
  const std::vector<int64_t> ids = idx.to_vector<int64_t>();
  const std::vector<double> wv = w.to_vector<double>();
  std::vector<double> want(5000 * 70, 0.0);
  for (size_t j = 0; j < ids.size(); ++j) {
    for (int c = 0; c < 70; ++c) want[ids[j] * 70 + c] += wv[j * 70 + c];
  }
  const std::vector<double> got = table.grad().to_vector<double>();
  for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-12) << k;
}

TEST(IndexAdd, Errors) {
  Tensor base = zeros({3, 2});
  Tensor idx = from_vector(std::vector<int64_t>{0, 5});
  expect_error(
      [&] {
        base.index_add(0, idx, ones({2, 2})).eval();
      },
      {"index_add", "index 5", "dim 0 of size 3"});
  expect_error(
      [&] {
        base.index_add(0, idx, ones({3, 2}));
      },
      {"index_add", "source must be [2, 2]", "got [3, 2]"});
  expect_error(
      [&] {
        base.index_add(0, idx, ones({2, 2}, DType::Float64));
      },
      {"index_add", "f64", "same dtype"});
  expect_error([&] { base.index_add(0, zeros({2}), ones({2, 2})); }, {"index_add", "Int32/Int64"});
  expect_error([&] { base.index_add(2, idx, ones({2, 2})); }, {"index_add", "dim 2"});
}

}  // namespace
}  // namespace smelt
