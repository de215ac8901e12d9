// conv2d and max_pool2d against hand-computed values.
#include <gtest/gtest.h>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

// [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]] as [1, 1, 4, 4].
Tensor grid() { return arange(16).reshape({1, 1, 4, 4}).to(DType::Float32); }

TEST(Conv2d, SumsWindows) {
  Tensor x = grid();
  expect_tensor(conv2d(x, ones({1, 1, 2, 2})), {1, 1, 3, 3}, {10, 14, 18, 26, 30, 34, 42, 46, 50});
  expect_tensor(conv2d(x, ones({1, 1, 2, 2}), tensor({1.f}), 2), {1, 1, 2, 2}, {11, 19, 43, 51});
  // x[i][j] - x[i+1][j+1] is -5 everywhere.
  Tensor diag = tensor({{1.f, 0.f}, {0.f, -1.f}}).reshape({1, 1, 2, 2});
  expect_tensor(conv2d(x, diag), {1, 1, 3, 3}, std::vector<double>(9, -5));
  // Zero padding: a 3x3 kernel of ones over a padded 2x2 input sees all four values.
  Tensor small = tensor({{1.f, 2.f}, {3.f, 4.f}}).reshape({1, 1, 2, 2});
  expect_tensor(conv2d(small, ones({1, 1, 3, 3}), Tensor(), 1, 1), {1, 1, 2, 2}, {10, 10, 10, 10});
}

TEST(Conv2d, ChannelsBatchesAndBias) {
  // Channels [[1, 2], [3, 4]] and [[5, 6], [7, 8]]; output 0 copies channel 0, output 1 adds both.
  Tensor x = arange(1, 9).reshape({1, 2, 2, 2}).to(DType::Float32);
  Tensor w = tensor({{1.f, 0.f}, {1.f, 1.f}}).reshape({2, 2, 1, 1});
  expect_tensor(conv2d(x, w), {1, 2, 2, 2}, {1, 2, 3, 4, 6, 8, 10, 12});
  expect_tensor(conv2d(x, w, tensor({0.f, -6.f})), {1, 2, 2, 2}, {1, 2, 3, 4, 0, 2, 4, 6});
  Tensor batch = cat({x, x * 2.f});
  EXPECT_EQ(conv2d(batch, w).shape(), (std::vector<int64_t>{2, 2, 2, 2}));
  expect_tensor(conv2d(batch, w).slice(0, 1), {1, 2, 2, 2}, {2, 4, 6, 8, 12, 16, 20, 24});
  // Unbatched input.
  expect_tensor(conv2d(x.squeeze(0), w), {2, 2, 2}, {1, 2, 3, 4, 6, 8, 10, 12});
}

TEST(Conv2d, Errors) {
  Tensor x = grid();
  expect_error(
      [&] {
        conv2d(x, ones({1, 2, 2, 2}));
      },
      {"conv2d: input [1, 1, 4, 4] has 1 channels but weight [1, 2, 2, 2] expects 2"});
  expect_error([&] { conv2d(x.flatten(), ones({1, 1, 2, 2})); }, {"conv2d: input must be 4-d"});
  expect_error([&] { conv2d(x, ones({1, 1, 5, 5})); }, {"conv2d:", "larger than the padded"});
  expect_error([&] { conv2d(x, ones({1, 1, 2, 2}), ones({2})); }, {"conv2d: bias must be [1]"});
  expect_error([&] { conv2d(x, ones({1, 1, 2, 2}), Tensor(), 0); }, {"conv2d: stride"});
  expect_error(
      [] {
        conv2d(zeros({1, 1, 2, 2}, DType::Int64), zeros({1, 1, 1, 1}, DType::Int64));
      },
      {"conv2d: needs a floating dtype"});
}

TEST(MaxPool2d, Windows) {
  Tensor x = grid();
  expect_tensor(max_pool2d(x, 2), {1, 1, 2, 2}, {5, 7, 13, 15});
  expect_tensor(max_pool2d(x, 2, 1), {1, 1, 3, 3}, {5, 6, 7, 9, 10, 11, 13, 14, 15});
  expect_tensor(max_pool2d(-x, 2, 2, 1), {1, 1, 3, 3}, {0, -1, -3, -4, -5, -7, -12, -13, -15});
  expect_tensor(max_pool2d(x.squeeze(0), 4), {1, 1, 1}, {15});
  expect_tensor(max_pool2d(x, 3), {1, 1, 1, 1}, {10});  // floor mode: one window
  expect_error([&] { max_pool2d(x, 2, 2, 2); }, {"max_pool2d: padding 2 must be at most half"});
  expect_error([&] { max_pool2d(x, 5); }, {"max_pool2d:", "larger than the padded"});
}

}  // namespace
}  // namespace smelt
