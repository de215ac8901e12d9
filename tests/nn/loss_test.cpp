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
        F::cross_entropy(zeros({128, 10}), zeros({128, 9}));
      },
      {"cross_entropy: targets must be Int64 of shape [N] = [128]", "got f32 [128, 9]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({4, 10}), zeros({5}, DType::Int64));
      },
      {"cross_entropy", "[N] = [4]", "i64 [5]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({2, 3, 4}), zeros({2}, DType::Int64));
      },
      {"cross_entropy", "[N, d1, ...] = [2, 4]", "i64 [2]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({2, 3}), zeros({2}, DType::Int64),
                         nn::CrossEntropyLossOptions().weight(ones({4})));
      },
      {"cross_entropy: weight must be [C] = [3]", "got f32 [4]"});
  expect_error(
      [] {
        F::cross_entropy(zeros({2, 3}), zeros({2}, DType::Int64),
                         nn::CrossEntropyLossOptions().label_smoothing(1.5));
      },
      {"cross_entropy: label_smoothing must be in [0, 1]", "1.5"});
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

// The options against a double-precision computation of PyTorch's definitions: per sample
// l_n = -w[t_n] log p[n, t_n] (0 when t_n == ignore_index), the mean divided by the summed
// w[t_n] of the counted samples; label smoothing s adds s / C * (-sum_c w_c log p[n, c]).
struct CeCase {
  std::vector<std::vector<double>> rows;
  std::vector<int64_t> targets;
  std::vector<double> weight;  // empty: all ones
  int64_t ignore_index = -100;
  double smoothing = 0;
};

double ce_reference(const CeCase& c, nn::Reduction reduction, std::vector<double>* per) {
  double num = 0, den = 0;
  const double classes = static_cast<double>(c.rows[0].size());
  for (size_t n = 0; n < c.rows.size(); ++n) {
    const std::vector<double>& row = c.rows[n];
    double m = row[0];
    for (double v : row) m = std::max(m, v);
    double s = 0;
    for (double v : row) s += std::exp(v - m);
    const double lse = m + std::log(s);
    const int64_t t = c.targets[n];
    double l = 0;
    if (t != c.ignore_index) {
      const double wt = c.weight.empty() ? 1 : c.weight[static_cast<size_t>(t)];
      double smooth = 0;
      for (size_t j = 0; j < row.size(); ++j) {
        smooth += (c.weight.empty() ? 1 : c.weight[j]) * (lse - row[j]);
      }
      l = (1 - c.smoothing) * wt * (lse - row[static_cast<size_t>(t)]) +
          c.smoothing / classes * smooth;
      den += wt;
    }
    per->push_back(l);
    num += l;
  }
  return reduction == nn::Reduction::Mean ? num / den : num;
}

Tensor rows_tensor(const std::vector<std::vector<double>>& rows) {
  std::vector<double> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return from_vector(flat,
                     {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

TEST(CrossEntropyLoss, WeightsIgnoreIndexAndLabelSmoothingMatchPyTorchDefinitions) {
  const std::vector<std::vector<double>> rows = {
      {1, 2, 3, 0.5}, {1, 1, 1, 1}, {-2, 0.5, 4, 1}, {0.3, -1, 2, 2}, {5, -5, 0, 1}};
  const std::vector<CeCase> cases = {
      {rows, {2, 0, 1, 3, 0}, {0.5, 2, 1, 3}},
      {rows, {2, 1, 1, 3, 1}, {}, /*ignore_index=*/1},
      {rows, {2, -100, 1, 3, -100}, {}, -100},
      {rows, {2, 0, 1, 3, 0}, {}, -100, /*smoothing=*/0.1},
      {rows, {2, 0, 3, 3, 0}, {0.5, 2, 1, 3}, /*ignore_index=*/3, /*smoothing=*/0.25},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const CeCase& c = cases[i];
    auto options = [&](nn::Reduction r) {
      nn::CrossEntropyLossOptions o;
      o.ignore_index(c.ignore_index).label_smoothing(c.smoothing).reduction(r);
      if (!c.weight.empty()) o.weight(from_vector(c.weight));
      return o;
    };
    for (nn::Reduction r : {nn::Reduction::Mean, nn::Reduction::Sum, nn::Reduction::None}) {
      std::vector<double> per;
      const double want = ce_reference(c, r, &per);
      Tensor logits = rows_tensor(c.rows);
      Tensor got = F::cross_entropy(logits, from_vector(c.targets), options(r));
      if (r == nn::Reduction::None) {
        expect_tensor(got, {5}, per, 1e-12);
      } else {
        expect_tensor(got, {}, {want}, 1e-12);
      }
    }
    // The module form agrees, and the gradient matches central differences of the reference.
    nn::CrossEntropyLoss ce(options(nn::Reduction::Mean));
    Tensor logits = rows_tensor(c.rows).requires_grad_();
    ce(logits, from_vector(c.targets)).backward();
    const std::vector<double> grad = logits.grad().to_vector<double>();
    for (size_t n = 0; n < c.rows.size(); ++n) {
      for (size_t j = 0; j < c.rows[n].size(); ++j) {
        CeCase hi = c, lo = c;
        hi.rows[n][j] += 1e-6;
        lo.rows[n][j] -= 1e-6;
        std::vector<double> scratch;
        const double fd = (ce_reference(hi, nn::Reduction::Mean, &scratch) -
                           ce_reference(lo, nn::Reduction::Mean, &scratch)) /
                          2e-6;
        EXPECT_NEAR(grad[n * c.rows[n].size() + j], fd, 1e-7) << "n=" << n << " j=" << j;
      }
    }
  }
}

TEST(CrossEntropyLoss, ProbabilityTargetsAndPerPixelClasses) {
  // Probability targets: -sum_c p_c log softmax(x)_c per sample, the mean over samples.
  Tensor x = randn({4, 5}, DType::Float64);
  Tensor p = softmax(randn({4, 5}, DType::Float64), 1);
  Tensor want = -(log_softmax(x, 1) * p).sum(1);
  expect_tensor(F::cross_entropy(x, p, nn::Reduction::None), {4}, want.to_vector<double>(), 1e-12);
  EXPECT_NEAR(F::cross_entropy(x, p).item<double>(), want.mean().item<double>(), 1e-12);
  // One-hot probabilities are class indices; smoothing mixes in the uniform distribution.
  Tensor t = from_vector(std::vector<int64_t>{0, 4, 2, 2});
  Tensor one_hot = (t.unsqueeze(1) == arange(0, 5, 1, DType::Int64)).to(DType::Float64);
  EXPECT_NEAR(F::cross_entropy(x, one_hot).item<double>(), F::cross_entropy(x, t).item<double>(),
              1e-12);
  const auto smooth = nn::CrossEntropyLossOptions().label_smoothing(0.2);
  EXPECT_NEAR(F::cross_entropy(x, one_hot, smooth).item<double>(),
              F::cross_entropy(x, t, smooth).item<double>(), 1e-12);

  // [N, C, H, W] logits with [N, H, W] targets: every pixel is a sample.
  Tensor img = randn({2, 3, 4, 5}, DType::Float64);
  Tensor labels = randint(0, 3, {2, 4, 5});
  Tensor flat_logits = img.permute({0, 2, 3, 1}).reshape({-1, 3});
  Tensor per = F::cross_entropy(img, labels, nn::Reduction::None);
  EXPECT_EQ(per.shape(), (std::vector<int64_t>{2, 4, 5}));
  expect_tensor(
      per.reshape({-1}), {40},
      F::cross_entropy(flat_logits, labels.reshape({-1}), nn::Reduction::None).to_vector<double>(),
      1e-12);
  EXPECT_NEAR(F::cross_entropy(img, labels).item<double>(),
              F::cross_entropy(flat_logits, labels.reshape({-1})).item<double>(), 1e-12);
}

TEST(NLLLoss, WeightsAndIgnoreIndex) {
  Tensor logp = tensor({{-0.5, -1.0, -2.0}, {-3.0, -0.1, -4.0}, {-1.0, -1.0, -1.5}});
  Tensor t = from_vector(std::vector<int64_t>{1, 2, 0});
  Tensor w = tensor({2.0, 3.0, 0.5});
  // (3 * 1 + 0.5 * 4 + 2 * 1) / (3 + 0.5 + 2)
  EXPECT_NEAR(F::nll_loss(logp, t, nn::NLLLossOptions().weight(w)).item<double>(), 7.0 / 5.5,
              1e-12);
  nn::NLLLoss nll(nn::NLLLossOptions().ignore_index(2));
  EXPECT_NEAR(nll(logp, t).item<double>(), (1.0 + 1.0) / 2, 1e-12);
  // Only ignore_index may lie outside [0, C).
  expect_error(
      [&] {
        F::nll_loss(logp, from_vector(std::vector<int64_t>{1, -1, 0}),
                    nn::NLLLossOptions().ignore_index(-100));
      },
      {"nll_loss: target -1 at index 1 is out of range for 3 classes", "ignore_index = -100"});
  EXPECT_NEAR(F::nll_loss(logp, from_vector(std::vector<int64_t>{1, -1, 0}),
                          nn::NLLLossOptions().ignore_index(-1))
                  .item<double>(),
              1.0, 1e-12);
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
