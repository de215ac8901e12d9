// Losses against hand-computed values and gradients, stability at extreme logits, and errors.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <vector>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;
namespace F = nn::functional;

TEST(MSELoss, ValueGradientAndReductions) {
  Tensor pred = tensor({1.f, 2.f, 3.f}).requires_grad_();
  Tensor target = tensor({0.f, 2.f, 5.f});
  nn::MSELoss mse;
  Tensor loss = mse(pred, target);
  EXPECT_NEAR(loss.item<float>(), 5.0 / 3, 1e-6);
  loss.backward();
  expect_tensor(pred.grad(), {3}, {2.0 / 3, 0, -4.0 / 3});
  expect_tensor(nn::MSELoss(nn::Reduction::Sum)(pred, target), {}, {5});
  expect_tensor(F::mse_loss(pred, target, nn::Reduction::None), {3}, {1, 0, 4});
}

TEST(MSELoss, Errors) {
  expect_error(
      [] {
        F::mse_loss(zeros({4, 1}), zeros({4}));
      },
      {"mse_loss", "[4, 1]", "[4]", "same shape"});
  expect_error([] { F::mse_loss(zeros({4}, DType::Int64), zeros({4})); },
               {"mse_loss", "input must be floating", "i64 [4]"});
}

// -log softmax(row)[t] and the row's gradient softmax - onehot, in double.
double ce_row(const std::vector<double>& row, int64_t t, std::vector<double>* grad, double n) {
  double m = row[0];
  for (double v : row) m = std::max(m, v);
  double s = 0;
  for (double v : row) s += std::exp(v - m);
  const double lse = m + std::log(s);
  for (size_t j = 0; j < row.size(); ++j) {
    grad->push_back((std::exp(row[j] - lse) - (static_cast<int64_t>(j) == t ? 1 : 0)) / n);
  }
  return lse - row[t];
}

TEST(CrossEntropyLoss, ValueAndGradientMatchHandComputation) {
  const std::vector<std::vector<double>> rows = {{1, 2, 3}, {1, 1, 1}, {-2, 0.5, 4}};
  const std::vector<int64_t> targets = {2, 0, 1};
  Tensor logits = tensor({{1.f, 2.f, 3.f}, {1.f, 1.f, 1.f}, {-2.f, 0.5f, 4.f}}).requires_grad_();
  Tensor t = from_vector(targets);
  std::vector<double> want_grad;
  double want = 0;
  std::vector<double> per;
  for (size_t i = 0; i < rows.size(); ++i) {
    per.push_back(ce_row(rows[i], targets[i], &want_grad, 3));
    want += per.back() / 3;
  }
  nn::CrossEntropyLoss ce;
  Tensor loss = ce(logits, t);
  EXPECT_NEAR(loss.item<float>(), want, 1e-6);
  loss.backward();
  expect_tensor(logits.grad(), {3, 3}, want_grad, 1e-6);
  expect_tensor(F::cross_entropy(logits, t, nn::Reduction::None), {3}, per, 1e-6);
  expect_tensor(F::cross_entropy(logits, t, nn::Reduction::Sum), {}, {want * 3}, 1e-5);
  // One unbatched sample: logits [C], a 0-d target.
  expect_tensor(F::cross_entropy(tensor({1.f, 2.f, 3.f}), scalar_tensor(int64_t{2})), {}, {per[0]},
                1e-6);
  // Int32 targets work too.
  EXPECT_NEAR(F::cross_entropy(logits, t.to(DType::Int32)).item<float>(), want, 1e-6);
}

TEST(CrossEntropyLoss, StableForHugeLogits) {
  Tensor logits = tensor({{1000.f, 0.f}, {-1000.f, 1000.f}, {3e38f, -3e38f}}).requires_grad_();
  Tensor t = from_vector(std::vector<int64_t>{0, 0, 0});
  Tensor loss = F::cross_entropy(logits, t, nn::Reduction::None);
  expect_tensor(loss, {3}, {0, 2000, 0});
  loss.sum().backward();
  expect_tensor(logits.grad(), {3, 2}, {0, 0, -1, 1, 0, 0});
  // A -inf logit in another class gives no NaN.
  Tensor with_inf = tensor({{0.f, -INFINITY}});
  expect_tensor(F::cross_entropy(with_inf, from_vector(std::vector<int64_t>{0})), {}, {0});
}

TEST(CrossEntropyLoss, ErrorsNameTheProblem) {
  expect_error(
      [] {
        F::cross_entropy(zeros({128, 10}), zeros({128, 10}));
      },
      {"cross_entropy: targets must be Int64 of shape [N] = [128]", "got f32 [128, 10]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({4, 10}), zeros({5}, DType::Int64));
      },
      {"cross_entropy", "[N] = [4]", "i64 [5]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({2, 3, 4}), zeros({2}, DType::Int64));
      },
      {"cross_entropy", "logits must be [N, C]", "f32 [2, 3, 4]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({2, 3}), from_vector(std::vector<int64_t>{1, 3}));
      },
      {"cross_entropy", "target 3 at index 1", "out of range for 3 classes"});
  expect_error(
      [] {
        F::cross_entropy(zeros({2, 3}, DType::Int64), zeros({2}, DType::Int64));
      },
      {"cross_entropy", "logits must be floating"});
}

TEST(NLLLoss, PicksTheTargetLogProbability) {
  Tensor logp = tensor({{-0.5f, -1.f, -2.f}, {-3.f, -0.1f, -4.f}}).requires_grad_();
  Tensor t = from_vector(std::vector<int64_t>{1, 2});
  nn::NLLLoss nll;
  Tensor loss = nll(logp, t);
  EXPECT_NEAR(loss.item<float>(), (1.0 + 4.0) / 2, 1e-6);
  loss.backward();
  expect_tensor(logp.grad(), {2, 3}, {0, -0.5, 0, 0, 0, -0.5});
  // nll_loss(log_softmax(x)) is cross_entropy(x).
  Tensor x = randn({5, 4});
  Tensor y = randint(0, 4, {5});
  EXPECT_NEAR(F::nll_loss(F::log_softmax(x, 1), y).item<float>(),
              F::cross_entropy(x, y).item<float>(), 1e-6);
  expect_error(
      [] {
        F::nll_loss(zeros({2, 3}), zeros({2}, DType::Float32));
      },
      {"nll_loss: targets must be Int64", "f32 [2]"});
}

TEST(BCEWithLogitsLoss, ValueGradientAndStability) {
  const std::vector<double> xs = {0, 2, -3, 100, -100};
  const std::vector<double> ys = {1, 0, 0.5, 0, 1};
  Tensor x = from_vector(std::vector<float>(xs.begin(), xs.end())).requires_grad_();
  Tensor y = from_vector(std::vector<float>(ys.begin(), ys.end()));
  double want = 0;
  std::vector<double> want_grad;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double s = 1 / (1 + std::exp(-xs[i]));
    // log(sigmoid) and log(1 - sigmoid) in forms that stay finite at +-100.
    const double log_s = -std::log1p(std::exp(-xs[i]));
    const double log_1ms = -xs[i] + log_s;
    want += -(ys[i] * log_s + (1 - ys[i]) * log_1ms) / 5;
    want_grad.push_back((s - ys[i]) / 5);
  }
  nn::BCEWithLogitsLoss bce;
  Tensor loss = bce(x, y);
  EXPECT_NEAR(loss.item<float>(), want, 1e-5);
  loss.backward();
  expect_tensor(x.grad(), {5}, want_grad, 1e-6);
  expect_error(
      [] {
        F::binary_cross_entropy_with_logits(zeros({3}), zeros({3, 1}));
      },
      {"binary_cross_entropy_with_logits", "[3]", "[3, 1]"});
}

}  // namespace
}  // namespace smelt
