// nn::utils::clip_grad_norm_ / clip_grad_value_ against hand-computed gradients.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

// Two parameters whose gradients are [3, 4] and [12] (norm 13 together).
std::vector<Tensor> params_with_grads() {
  Tensor a = zeros({2}).requires_grad_(), b = zeros({1}).requires_grad_();
  Tensor target = from_vector(std::vector<float>{3, 4, 12}, {3});
  (cat({a, b}) * target).sum().backward();
  return {a, b};
}

TEST(ClipGradNorm, ScalesEveryGradientByOneFactor) {
  std::vector<Tensor> params = params_with_grads();
  Tensor total = nn::utils::clip_grad_norm_(params, 6.5);
  expect_tensor(total, {}, {13});
  const double scale = 6.5 / (13 + 1e-6);
  expect_tensor(params[0].grad(), {2}, {3 * scale, 4 * scale});
  expect_tensor(params[1].grad(), {1}, {12 * scale});
}

TEST(ClipGradNorm, LeavesSmallGradientsAloneAndHandlesOtherNorms) {
  std::vector<Tensor> params = params_with_grads();
  expect_tensor(nn::utils::clip_grad_norm_(params, 100), {}, {13});
  expect_tensor(params[0].grad(), {2}, {3, 4});
  params = params_with_grads();
  expect_tensor(nn::utils::clip_grad_norm_(params, 6, std::numeric_limits<double>::infinity()), {},
                {12});
  expect_tensor(params[1].grad(), {1}, {6}, 1e-5);
  params = params_with_grads();
  expect_tensor(nn::utils::clip_grad_norm_(params, 100, 1), {}, {19});
  Tensor no_grad = zeros({2}).requires_grad_();
  expect_tensor(nn::utils::clip_grad_norm_({no_grad}, 1), {}, {0});
  expect_error([&] { nn::utils::clip_grad_norm_(params, 1, 0); },
               {"clip_grad_norm_: norm_type must be positive"});
}

TEST(ClipGradNorm, InATrainingStepTheOptimizerSeesTheClippedGradients) {
  manual_seed(7);
  nn::Linear lin(3, 1);
  optim::SGD opt(lin->parameters(), optim::SGDOptions(1.0));
  std::vector<float> before = lin->weight.to_vector<float>();
  before.push_back(lin->bias.item<float>());
  Tensor loss = (lin(ones({4, 3})) * 100).sum();  // gradients of norm 400 * sqrt(4)
  loss.backward();
  Tensor total = nn::utils::clip_grad_norm_(lin->parameters(), 1.0);
  opt.step();
  // SGD with lr = 1 moves the parameters by exactly the clipped gradient, of norm 1.
  std::vector<float> after = lin->weight.to_vector<float>();
  after.push_back(lin->bias.item<float>());
  double moved = 0;
  for (size_t k = 0; k < after.size(); ++k) moved += std::pow(after[k] - before[k], 2);
  EXPECT_NEAR(std::sqrt(moved), 1.0, 1e-4);
  EXPECT_NEAR(total.item<double>(), 800, 1e-2);
}

TEST(ClipGradValue, ClampsEachElement) {
  std::vector<Tensor> params = params_with_grads();
  nn::utils::clip_grad_value_(params, 3.5);
  expect_tensor(params[0].grad(), {2}, {3, 3.5});
  expect_tensor(params[1].grad(), {1}, {3.5});
  expect_error([&] { nn::utils::clip_grad_value_(params, -1); },
               {"clip_grad_value_: clip_value must be >= 0, got -1"});
}

}  // namespace
}  // namespace smelt
