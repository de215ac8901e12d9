// The layers: output shapes, PyTorch's initialization statistics, Dropout and BatchNorm in both
// modes, and nn::init.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <vector>

#include "tests/common/gradcheck.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

struct Stats {
  double mean, var, min, max;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s{0, 0, v[0], v[0]};
  for (double x : v) {
    s.mean += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= static_cast<double>(v.size());
  return s;
}

// Values drawn U(-b, b) have mean 0 and variance b^2 / 3 and stay inside the bounds.
void expect_uniform(const Tensor& t, double bound) {
  const Stats s = stats_of(t.to_vector<double>());
  const double n = static_cast<double>(t.numel());
  EXPECT_GE(s.min, -bound);
  EXPECT_LE(s.max, bound);
  EXPECT_GT(s.max, bound * 0.9);  // the whole range is used
  EXPECT_LT(s.min, -bound * 0.9);
  // 5 standard errors: mean's is b/sqrt(3n), variance's about b^2 * 0.3 / sqrt(n).
  EXPECT_NEAR(s.mean, 0.0, 5 * bound / std::sqrt(3 * n));
  EXPECT_NEAR(s.var, bound * bound / 3, 5 * bound * bound * 0.3 / std::sqrt(n));
}

TEST(Linear, ShapesAndForward) {
  nn::Linear lin(784, 256);
  EXPECT_EQ(lin->weight.shape(), (std::vector<int64_t>{256, 784}));
  EXPECT_EQ(lin->bias.shape(), (std::vector<int64_t>{256}));
  EXPECT_EQ(lin(randn({8, 784})).shape(), (std::vector<int64_t>{8, 256}));
  EXPECT_EQ(lin(randn({2, 3, 784})).shape(), (std::vector<int64_t>{2, 3, 256}));
  nn::Linear no_bias(4, 2, /*bias=*/false);
  EXPECT_FALSE(no_bias->bias.defined());
  EXPECT_EQ(no_bias->parameters().size(), 1u);
  expect_error(
      [&] {
        lin(randn({8, 700}));
      },
      {"linear", "[8, 700]", "[256, 784]", "in_features = 784"});
  expect_error([] { nn::Linear(0, 3); }, {"Linear", "in_features must be positive"});
}

TEST(Linear, PyTorchDefaultInitStatistics) {
  manual_seed(7);
  nn::Linear lin(400, 300);
  expect_uniform(lin->weight, 1.0 / std::sqrt(400.0));
  // The bias bound is 1/sqrt(fan_in) too; pool many layers for enough draws.
  std::vector<double> biases;
  for (int i = 0; i < 40; ++i) {
    const std::vector<double> b = nn::Linear(100, 250)->bias.to_vector<double>();
    biases.insert(biases.end(), b.begin(), b.end());
  }
  expect_uniform(from_vector(biases), 0.1);
  // Parameters start as data: nothing pending to compute.
  EXPECT_TRUE(lin->weight.is_leaf());
}

TEST(Conv2d, ShapesAndInitStatistics) {
  manual_seed(3);
  nn::Conv2d conv(16, 32, 3);
  EXPECT_EQ(conv->weight.shape(), (std::vector<int64_t>{32, 16, 3, 3}));
  EXPECT_EQ(conv->bias.shape(), (std::vector<int64_t>{32}));
  expect_uniform(conv->weight, 1.0 / std::sqrt(16.0 * 9));
  EXPECT_EQ(conv(randn({2, 16, 10, 10})).shape(), (std::vector<int64_t>{2, 32, 8, 8}));
  nn::Conv2d padded(nn::Conv2dOptions(1, 4, 3).stride(2).padding(1).bias(false));
  EXPECT_FALSE(padded->bias.defined());
  EXPECT_EQ(padded(randn({1, 1, 28, 28})).shape(), (std::vector<int64_t>{1, 4, 14, 14}));
  expect_error([&] { conv(randn({2, 3, 10, 10})); }, {"conv2d", "3 channels", "expects 16"});
}

TEST(Conv2d, GroupsAndDilation) {
  manual_seed(5);
  nn::Conv2d conv(nn::Conv2dOptions(8, 12, 3).groups(4).dilation(2).padding(2));
  // PyTorch's shapes and init: weight [out, in / groups, k, k], fan_in = in / groups * k * k.
  EXPECT_EQ(conv->weight.shape(), (std::vector<int64_t>{12, 2, 3, 3}));
  expect_uniform(conv->weight, 1.0 / std::sqrt(2.0 * 9));
  Tensor x = randn({2, 8, 7, 7});
  expect_tensor(conv(x), {2, 12, 7, 7},
                conv2d(x, conv->weight, conv->bias, 1, 2, 2, 4).to_vector<double>());
  std::ostringstream printed;
  printed << conv;
  EXPECT_NE(printed.str().find("dilation=2, groups=4"), std::string::npos) << printed.str();
  expect_error(
      [] { nn::Conv2d(nn::Conv2dOptions(6, 4, 3).groups(4)); },
      {"Conv2d: in_channels (6) and out_channels (4) must both be multiples of groups (4)"});
  expect_error([] { nn::Conv2d(nn::Conv2dOptions(4, 4, 3).dilation(0)); }, {"Conv2d", "dilation"});
}

TEST(Conv2d, RectangularKernelsStridesAndPadding) {
  manual_seed(6);
  nn::Conv2d conv(nn::Conv2dOptions(2, 4, {3, 5}).stride({1, 2}).padding({1, 2}));
  EXPECT_EQ(conv->weight.shape(), (std::vector<int64_t>{4, 2, 3, 5}));
  expect_uniform(conv->weight, 1.0 / std::sqrt(2.0 * 15));
  Tensor x = randn({1, 2, 8, 9});
  expect_tensor(conv(x), {1, 4, 8, 5},
                conv2d(x, conv->weight, conv->bias, {1, 2}, {1, 2}).to_vector<double>());
  std::ostringstream printed;
  printed << conv;
  EXPECT_NE(printed.str().find("kernel_size=(3, 5), stride=(1, 2), padding=(1, 2)"),
            std::string::npos)
      << printed.str();
  nn::MaxPool2d pool(Size2(2, 3));
  EXPECT_EQ(pool(x).shape(), (std::vector<int64_t>{1, 2, 4, 3}));
  std::ostringstream pool_printed;
  pool_printed << pool;
  EXPECT_EQ(pool_printed.str(), "MaxPool2d(kernel_size=(2, 3), stride=(2, 3))");
}

TEST(Conv2d, MatchesFunctional) {
  manual_seed(4);
  nn::Conv2d conv(2, 3, 3, /*stride=*/1, /*padding=*/1);
  Tensor x = randn({1, 2, 5, 5});
  expect_tensor(conv(x), {1, 3, 5, 5},
                conv2d(x, conv->weight, conv->bias, 1, 1).to_vector<double>());
}

TEST(PoolingFlattenActivations, Forward) {
  Tensor x = arange(0, 32, 1, DType::Float32).reshape({2, 1, 4, 4});
  Tensor pooled = nn::MaxPool2d(2)(x);
  expect_tensor(pooled, {2, 1, 2, 2}, {5, 7, 13, 15, 21, 23, 29, 31});
  EXPECT_EQ(nn::MaxPool2d(3, 1)(x).shape(), (std::vector<int64_t>{2, 1, 2, 2}));
  EXPECT_EQ(nn::Flatten()(x).shape(), (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(nn::Flatten(0, 1)(x).shape(), (std::vector<int64_t>{2, 4, 4}));
  Tensor v = tensor({-1.f, 0.f, 2.f});
  expect_tensor(nn::ReLU()(v), {3}, {0, 0, 2});
  expect_tensor(nn::Tanh()(v), {3}, {std::tanh(-1.0), 0, std::tanh(2.0)});
  expect_tensor(nn::Sigmoid()(v), {3}, {1 / (1 + std::exp(1.0)), 0.5, 1 / (1 + std::exp(-2.0))});
}

// Average pooling by a plain loop over [N, C, H, W] (windows clipped to the input; the divisor
// is the full window when count_include_pad, else the cells inside).
std::vector<double> avg_pool_loop(const std::vector<double>& x, int64_t nc, int64_t h, int64_t w,
                                  Size2 k, Size2 s, Size2 p, bool count_pad) {
  const int64_t oh = (h + 2 * p.h - k.h) / s.h + 1, ow = (w + 2 * p.w - k.w) / s.w + 1;
  std::vector<double> out;
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double sum = 0;
        int64_t cells = 0;
        for (int64_t a = 0; a < k.h; ++a)
          for (int64_t b = 0; b < k.w; ++b) {
            const int64_t r = i * s.h - p.h + a, q = j * s.w - p.w + b;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;
            sum += x[(c * h + r) * w + q];
            ++cells;
          }
        out.push_back(sum / static_cast<double>(count_pad ? k.h * k.w : cells));
      }
  return out;
}

TEST(AvgPool2d, MatchesALoopWithStridesPaddingAndBothDivisors) {
  Tensor x = randn({2, 3, 7, 6}, DType::Float64);
  const std::vector<double> v = x.to_vector<double>();
  struct Case {
    Size2 k, s, p;
    bool count_pad;
  };
  for (const Case& c : {Case{2, 2, 0, true}, Case{3, 2, 1, true}, Case{3, 2, 1, false},
                        Case{{3, 2}, {1, 2}, {1, 0}, false}, Case{{2, 3}, 1, 0, true}}) {
    Tensor got = nn::AvgPool2d(c.k, c.s, c.p, c.count_pad)(x);
    const std::vector<double> want = avg_pool_loop(v, 6, 7, 6, c.k, c.s, c.p, c.count_pad);
    expect_tensor(got, got.shape(), want, 1e-12);
  }
  // Unbatched input, and the gradient (each input cell gets 1/window from every window it is in).
  EXPECT_EQ(avg_pool2d(randn({3, 8, 8}), 2).shape(), (std::vector<int64_t>{3, 4, 4}));
  testing::gradcheck(
      [](const auto& in) { return (avg_pool2d(in[0], 3, 2, 1, false) * in[1]).sum(); },
      {randn({1, 2, 5, 5}), randn({1, 2, 3, 3})});
  std::ostringstream os;
  os << *nn::AvgPool2d(2);
  EXPECT_EQ(os.str(), "AvgPool2d(kernel_size=2, stride=2)");
  expect_error([] { avg_pool2d(zeros({1, 1, 4, 4}), 2, 2, 2); }, {"avg_pool2d", "padding 2"});
  expect_error(
      [] {
        avg_pool2d(zeros({1, 1, 4, 4}, DType::Int64), 2);
      },
      {"avg_pool2d", "floating", "i64"});
  expect_error([] { avg_pool2d(zeros({4, 4}), 2); }, {"avg_pool2d", "4-d", "[4, 4]"});
}

TEST(AdaptiveAvgPool2d, TilesLikePyTorch) {
  Tensor x = randn({2, 3, 7, 5}, DType::Float64);
  // Global average pooling.
  expect_tensor(nn::AdaptiveAvgPool2d(1)(x), {2, 3, 1, 1}, x.mean({2, 3}, true).to_vector<double>(),
                1e-12);
  // Uneven cells: rows [0, 3), [2, 5), [4, 7) of 7 into 3; columns [0, 3), [2, 5) of 5 into 2.
  Tensor got = adaptive_avg_pool2d(x, {3, 2});
  EXPECT_EQ(got.shape(), (std::vector<int64_t>{2, 3, 3, 2}));
  const std::vector<double> v = x.to_vector<double>(), g = got.to_vector<double>();
  for (int64_t c = 0; c < 6; ++c)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t r0 = i * 7 / 3, r1 = ((i + 1) * 7 + 2) / 3;
        const int64_t c0 = j * 5 / 2, c1 = ((j + 1) * 5 + 1) / 2;
        double sum = 0;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t q = c0; q < c1; ++q) sum += v[(c * 7 + r) * 5 + q];
        EXPECT_NEAR(g[(c * 3 + i) * 2 + j], sum / static_cast<double>((r1 - r0) * (c1 - c0)),
                    1e-12);
      }
  // Even tiles take the avg_pool2d path.
  expect_tensor(adaptive_avg_pool2d(x.slice(2, 0, 6), {3, 5}), {2, 3, 3, 5},
                avg_pool2d(x.slice(2, 0, 6), {2, 1}).to_vector<double>(), 1e-12);
  testing::gradcheck(
      [](const auto& in) {
        return adaptive_avg_pool2d(in[0], {2, 3}).pow(2.0).sum();
      },
      {randn({1, 1, 5, 4})});
  std::ostringstream os;
  os << *nn::AdaptiveAvgPool2d(Size2{2, 3});
  EXPECT_EQ(os.str(), "AdaptiveAvgPool2d(output_size=(2, 3))");
  expect_error(
      [] {
        adaptive_avg_pool2d(zeros({1, 1, 2, 2}), 3);
      },
      {"adaptive_avg_pool2d", "larger than the input"});
}

// ---- Dropout -----------------------------------------------------------------------------------

TEST(Activations, LeakyReluGeluSoftmaxModules) {
  const std::vector<double> xs = {-3, -1, -0.25, 0, 0.5, 1, 2.5};
  Tensor x = from_vector(xs);
  std::vector<double> leaky, gelu, gelu_tanh;
  for (double v : xs) {
    leaky.push_back(v > 0 ? v : 0.2 * v);
    gelu.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
    const double k = std::sqrt(2.0 / 3.14159265358979323846);
    gelu_tanh.push_back(0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v))));
  }
  expect_tensor(nn::LeakyReLU(0.2)(x), {7}, leaky, 1e-12);
  expect_tensor(nn::functional::leaky_relu(x), {7}, {-0.03, -0.01, -0.0025, 0, 0.5, 1, 2.5}, 1e-12);
  expect_tensor(nn::GELU()(x), {7}, gelu, 3e-7);  // the erf is accurate to 1.5e-7
  expect_tensor(nn::GELU("tanh")(x), {7}, gelu_tanh, 1e-12);
  expect_error([] { nn::GELU("fast"); }, {"GELU", "\"none\" or \"tanh\"", "fast"});
  expect_error([] { nn::functional::leaky_relu(zeros({2}, DType::Int64)); },
               {"leaky_relu", "floating"});
  Tensor logits = randn({3, 4}, DType::Float64);
  expect_tensor(nn::Softmax(1)(logits), {3, 4}, softmax(logits, 1).to_vector<double>(), 1e-15);
  expect_tensor(nn::LogSoftmax(1)(logits), {3, 4}, log_softmax(logits, 1).to_vector<double>(),
                1e-15);
  // Gradients: GELU's derivative Phi(x) + x phi(x), through the composite erf.
  Tensor g = from_vector(xs).requires_grad_();
  nn::GELU()(g).sum().backward();
  std::vector<double> want;
  for (double v : xs) {
    want.push_back(0.5 * (1 + std::erf(v / std::sqrt(2.0))) +
                   v * std::exp(-v * v / 2) / std::sqrt(2 * 3.14159265358979323846));
  }
  expect_tensor(g.grad(), {7}, want, 2e-6);
}

TEST(Dropout, TrainZeroesWithProbabilityPAndScalesTheRest) {
  manual_seed(11);
  nn::Dropout drop(0.3);
  const int64_t n = 100000;
  const std::vector<float> y = drop(ones({n})).to_vector<float>();
  int64_t zeros_count = 0;
  for (float v : y) {
    if (v == 0.f) {
      ++zeros_count;
    } else {
      EXPECT_FLOAT_EQ(v, 1.f / 0.7f);
    }
  }
  // Binomial(n, 0.3): standard deviation ~145.
  EXPECT_NEAR(static_cast<double>(zeros_count), 0.3 * n, 5 * std::sqrt(n * 0.3 * 0.7));
  // The expectation is preserved.
  EXPECT_NEAR(std::accumulate(y.begin(), y.end(), 0.0) / n, 1.0, 0.02);
}

TEST(Dropout, EvalIsIdentityAndSeedReproduces) {
  nn::Dropout drop(0.5);
  Tensor x = randn({64});
  drop->eval();
  EXPECT_EQ(drop(x).to_vector<float>(), x.to_vector<float>());
  drop->train();
  manual_seed(5);
  const std::vector<float> a = drop(x).to_vector<float>();
  manual_seed(5);
  const std::vector<float> b = drop(x).to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, x.to_vector<float>());
  expect_tensor(nn::Dropout(1.0)(ones({4})), {4}, {0, 0, 0, 0});
  expect_tensor(nn::Dropout(0.0)(ones({2})), {2}, {1, 1});
  expect_error([] { nn::Dropout(1.5); }, {"Dropout", "between 0 and 1", "1.5"});
}

TEST(Dropout, GradientFollowsTheMask) {
  manual_seed(9);
  Tensor x = ones({1000}).requires_grad_();
  Tensor y = nn::functional::dropout(x, 0.5, true);
  y.sum().backward();
  const std::vector<float> out = y.to_vector<float>();
  const std::vector<float> g = x.grad().to_vector<float>();
  for (size_t i = 0; i < out.size(); ++i) EXPECT_FLOAT_EQ(g[i], out[i]);  // x is all ones
}

// ---- BatchNorm ---------------------------------------------------------------------------------

TEST(BatchNorm, TrainNormalizesAndUpdatesRunningStats) {
  nn::BatchNorm1d bn(2);
  EXPECT_EQ(bn->named_buffers().size(), 3u);  // running_mean, running_var, num_batches_tracked
  EXPECT_EQ(bn->named_parameters().size(), 2u);
  // Channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1: 0, 0, 4, 4.
  Tensor x = tensor({{1.f, 0.f}, {2.f, 0.f}, {3.f, 4.f}, {6.f, 4.f}});
  Tensor y = bn(x);
  const double s0 = std::sqrt(3.5 + 1e-5), s1 = std::sqrt(4.0 + 1e-5);
  expect_tensor(y, {4, 2}, {-2 / s0, -2 / s1, -1 / s0, -2 / s1, 0 / s0, 2 / s1, 3 / s0, 2 / s1},
                1e-5);
  expect_tensor(bn->running_mean, {2}, {0.1 * 3, 0.1 * 2});
  expect_tensor(bn->running_var, {2}, {0.9 + 0.1 * 14.0 / 3, 0.9 + 0.1 * 16.0 / 3});
  // A second step folds in again: running = 0.9 * running + 0.1 * batch.
  bn(x * 2.f);
  expect_tensor(bn->running_mean, {2}, {0.9 * 0.3 + 0.1 * 6, 0.9 * 0.2 + 0.1 * 4});
  expect_tensor(bn->running_var, {2},
                {0.9 * (0.9 + 0.1 * 14.0 / 3) + 0.1 * 56.0 / 3,
                 0.9 * (0.9 + 0.1 * 16.0 / 3) + 0.1 * 64.0 / 3},
                1e-4);
  // The running statistics are buffers, not trained.
  EXPECT_FALSE(bn->running_mean.requires_grad());
}

TEST(BatchNorm, CountsTrainingBatches) {
  nn::BatchNorm1d bn(3);
  EXPECT_EQ(bn->num_batches_tracked.dtype(), DType::Int64);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 0);
  for (int i = 0; i < 3; ++i) bn(randn({4, 3}));
  bn->eval();
  bn(randn({4, 3}));  // eval mode counts nothing
  EXPECT_EQ(bn->num_batches_tracked.dtype(), DType::Int64);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 3);
  bool listed = false;
  for (const auto& [name, t] : bn->named_buffers()) listed |= name == "num_batches_tracked";
  EXPECT_TRUE(listed);
}

TEST(BatchNorm, MomentumNoneKeepsTheCumulativeAverage) {
  // PyTorch's momentum=None: running = mean of every batch's statistics so far.
  nn::BatchNorm1d bn(2, 1e-5, std::nullopt);
  const Tensor x = tensor({{1.f, 0.f}, {2.f, 0.f}, {3.f, 4.f}, {6.f, 4.f}});
  bn(x);  // batch means 3, 2; unbiased variances 14/3, 16/3
  expect_tensor(bn->running_mean, {2}, {3.0, 2.0});
  expect_tensor(bn->running_var, {2}, {14.0 / 3, 16.0 / 3}, 1e-5);
  bn(x * 2.f);  // 6, 4; 56/3, 64/3
  bn(x * 3.f);  // 9, 6; 126/3, 144/3
  expect_tensor(bn->running_mean, {2}, {(3.0 + 6 + 9) / 3, (2.0 + 4 + 6) / 3}, 1e-5);
  expect_tensor(bn->running_var, {2}, {(14.0 + 56 + 126) / 9, (16.0 + 64 + 144) / 9}, 1e-4);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 3);
  std::ostringstream text;
  bn->pretty_print(text);
  EXPECT_EQ(text.str(), "BatchNorm1d(2, eps=1e-05, momentum=None, affine=true)");
  EXPECT_THROW(nn::BatchNorm2d(2, 1e-5, 1.5), Error);
}

TEST(BatchNorm, EvalUsesRunningStatsAndAffine) {
  nn::BatchNorm2d bn(2);
  nn::init::constant_(bn->running_mean, 1.0);
  bn->running_var.impl();  // handles stay valid through in-place fills
  nn::init::constant_(bn->running_var, 4.0);
  nn::init::constant_(bn->weight, 3.0);
  nn::init::constant_(bn->bias, 0.5);
  bn->eval();
  Tensor x = full({1, 2, 1, 2}, 5.f);
  const double want = (5 - 1) / std::sqrt(4 + 1e-5) * 3 + 0.5;
  expect_tensor(bn(x), {1, 2, 1, 2}, {want, want, want, want}, 1e-5);
  // Eval mode leaves the running statistics alone.
  expect_tensor(bn->running_mean, {2}, {1, 1});
}

TEST(BatchNorm, TrainGradientMatchesFunctionalAndErrors) {
  manual_seed(2);
  nn::BatchNorm2d bn(3);
  Tensor x = randn({4, 3, 2, 2}).requires_grad_();
  Tensor y = bn(x);
  // Per channel, the output has mean 0 and (biased) variance ~1.
  const Tensor m = y.mean({0, 2, 3});
  const Tensor v = y.var({0, 2, 3}, /*unbiased=*/false);
  expect_tensor(m, {3}, {0, 0, 0}, 1e-5);
  expect_tensor(v, {3}, {1, 1, 1}, 1e-3);
  (y * y).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  ASSERT_TRUE(bn->weight.grad().defined());
  // d/dw sum((w*xhat + b)^2) = 2 * sum(xhat^2) = 2 * 16 per channel at w = 1, b = 0.
  expect_tensor(bn->weight.grad(), {3}, {32, 32, 32}, 2e-3);
  expect_error([&] { bn(randn({4, 2, 2, 2})); }, {"BatchNorm2d", "2 channels", "num_features = 3"});
  expect_error([&] { bn(randn({4, 3})); }, {"BatchNorm2d", "expected a 4-d input", "[4, 3]"});
  expect_error([] { nn::BatchNorm1d(3)(randn({1, 3})); }, {"more than 1 value per channel"});
}

// ---- init --------------------------------------------------------------------------------------

TEST(LayerNorm, NormalizesEachSampleOverItsTrailingDims) {
  Tensor x = randn({2, 3, 4}, DType::Float64) * 3.0 + 5.0;
  nn::LayerNorm ln(4);
  ASSERT_EQ(ln->parameters().size(), 2u);
  EXPECT_EQ(ln->weight.shape(), (std::vector<int64_t>{4}));
  Tensor y = ln(x.to(DType::Float32)).to(DType::Float64);
  // By hand: each row of 4 has mean 0 and biased variance 1 / (1 + eps / var).
  const std::vector<double> v = x.to_vector<double>(), out = y.to_vector<double>();
  for (int r = 0; r < 6; ++r) {
    double mean = 0, var = 0;
    for (int c = 0; c < 4; ++c) mean += v[r * 4 + c] / 4;
    for (int c = 0; c < 4; ++c) var += (v[r * 4 + c] - mean) * (v[r * 4 + c] - mean) / 4;
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(out[r * 4 + c], (v[r * 4 + c] - mean) / std::sqrt(var + 1e-5), 2e-5);
    }
  }
  // Over the last two dims, with the affine parameters applied after, the same in eval mode.
  nn::LayerNorm ln2(std::vector<int64_t>{3, 4}, 1e-6);
  nn::init::constant_(ln2->weight, 2.0);
  nn::init::constant_(ln2->bias, 0.5);
  ln2->eval();
  Tensor z = ln2(x);
  Tensor c = x - x.mean({1, 2}, true);
  Tensor want = c * rsqrt(c.pow(2.0).mean({1, 2}, true) + 1e-6) * 2.0 + 0.5;
  expect_tensor(z, {2, 3, 4}, want.to_vector<double>(), 1e-12);
  EXPECT_FALSE(nn::LayerNorm(4, 1e-5, false)->weight.defined());
  std::ostringstream os;
  os << *nn::LayerNorm(64);
  EXPECT_EQ(os.str(), "LayerNorm((64,), eps=1e-05, elementwise_affine=true)");
}

TEST(LayerNorm, Errors) {
  nn::LayerNorm ln(std::vector<int64_t>{3, 4});
  expect_error(
      [&] {
        ln(zeros({2, 4, 3}));
      },
      {"layer_norm", "[2, 4, 3]", "normalized_shape", "[3, 4]"});
  expect_error([&] { ln(zeros({3, 4}, DType::Int64)); }, {"layer_norm", "floating"});
  expect_error([] { nn::LayerNorm(std::vector<int64_t>{}); }, {"LayerNorm", "empty"});
  expect_error([] { nn::LayerNorm(0); }, {"LayerNorm", "not positive"});
  expect_error(
      [] {
        nn::functional::layer_norm(zeros({2, 3}), {3}, ones({2}));
      },
      {"layer_norm", "weight", "[3]", "[2]"});
}

TEST(Embedding, LooksUpRowsForAnyIndexShape) {
  manual_seed(7);
  nn::Embedding emb(10, 3);
  EXPECT_EQ(emb->weight.shape(), (std::vector<int64_t>{10, 3}));
  const Stats s = stats_of(nn::Embedding(200, 50)->weight.to_vector<double>());
  EXPECT_NEAR(s.mean, 0.0, 0.05);  // N(0, 1), PyTorch's init
  EXPECT_NEAR(s.var, 1.0, 0.06);
  Tensor idx = from_vector(std::vector<int64_t>{1, 4, 4, 9, 0, 1}, {2, 3});
  Tensor out = emb(idx);
  EXPECT_EQ(out.shape(), (std::vector<int64_t>{2, 3, 3}));
  const std::vector<float> w = emb->weight.to_vector<float>(), got = out.to_vector<float>();
  const std::vector<int64_t> ids = {1, 4, 4, 9, 0, 1};
  for (size_t k = 0; k < ids.size(); ++k) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(got[k * 3 + c], w[ids[k] * 3 + c]);
  }
  EXPECT_EQ(emb(from_vector(std::vector<int64_t>{3}, {})).shape(), (std::vector<int64_t>{3}));
  EXPECT_EQ(emb(idx.to(DType::Int32)).to_vector<float>(), got);
  // Gradient: each row gets the sum of the output gradients that looked it up.
  emb(idx).sum().backward();
  std::vector<double> want(30, 0.0);
  for (int64_t id : ids) {
    for (int c = 0; c < 3; ++c) want[id * 3 + c] += 1;
  }
  expect_tensor(emb->weight.grad(), {10, 3}, want);
}

TEST(Embedding, PaddingRowStartsAtZeroAndGetsNoGradient) {
  nn::Embedding emb(5, 2, /*padding_idx=*/-1);
  EXPECT_EQ(*emb->padding_idx, 4);
  const std::vector<float> w = emb->weight.to_vector<float>();
  EXPECT_EQ(w[8], 0.f);
  EXPECT_EQ(w[9], 0.f);
  Tensor idx = from_vector(std::vector<int64_t>{4, 1, 4});
  emb(idx).pow(2.f).sum().backward();
  const std::vector<float> g = emb->weight.grad().to_vector<float>();
  EXPECT_EQ(g[8], 0.f);
  EXPECT_EQ(g[9], 0.f);
  EXPECT_NEAR(g[2], 2 * w[2], 1e-6);
  std::ostringstream os;
  os << *emb;
  EXPECT_EQ(os.str(), "Embedding(5, 2, padding_idx=4)");
}

TEST(Embedding, Errors) {
  nn::Embedding emb(4, 2);
  expect_error(
      [&] {
        emb(from_vector(std::vector<int64_t>{1, 4}));
      },
      {"embedding", "index 4", "position 1", "4 embeddings"});
  expect_error([&] { emb(from_vector(std::vector<int64_t>{-1})); }, {"embedding", "index -1"});
  expect_error([&] { emb(zeros({2})); }, {"embedding", "Int64 or Int32", "f32"});
  expect_error([] { nn::Embedding(3, 2, 3); }, {"Embedding", "padding_idx 3", "out of range"});
  expect_error([] { nn::Embedding(0, 2); }, {"Embedding", "num_embeddings", "positive"});
  expect_error([] { nn::functional::embedding(from_vector(std::vector<int64_t>{0}), zeros({3})); },
               {"embedding", "2-d"});
}

TEST(Init, FillsInPlace) {
  Tensor t = zeros({200, 100}).requires_grad_();
  Tensor alias = t;
  nn::init::normal_(t, 2.0, 0.5);
  const Stats s = stats_of(alias.to_vector<double>());
  EXPECT_NEAR(s.mean, 2.0, 0.02);
  EXPECT_NEAR(std::sqrt(s.var), 0.5, 0.02);
  EXPECT_TRUE(alias.requires_grad());
  nn::init::xavier_uniform_(t);
  expect_uniform(t, std::sqrt(6.0 / 300));
  nn::init::kaiming_uniform_(t, std::sqrt(5.0));
  expect_uniform(t, 1.0 / std::sqrt(100.0));
  nn::init::ones_(t);
  EXPECT_EQ(t.sum().item<float>(), 20000.f);
  expect_error([] { nn::init::xavier_uniform_(zeros({3})); }, {"xavier_uniform_", "[3]"});
}

}  // namespace
}  // namespace smelt
