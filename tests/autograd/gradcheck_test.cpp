// Gradient checks: every differentiable op's autograd gradient against central finite differences
// in Float64, over random shapes with broadcasting and non-contiguous views (permuted, sliced,
// expanded operands).
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace smelt {
namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Arg {
  std::vector<int64_t> shape;
  double lo = -2.0;  // values are drawn from [lo, hi]
  double hi = 2.0;
};

Tensor make_input(const std::vector<double>& data, const std::vector<int64_t>& shape) {
  return from_vector(data, shape);
}

// sum(f(xs) * w) for fixed random weights w: a scalar whose gradient checks every output element
// with a different weight (a plain sum would hide a transposed or shuffled gradient).
Tensor weighted_loss(const Tensor& out, const std::vector<double>& w) {
  return (out.to(DType::Float64) * from_vector(w, out.shape())).sum();
}

// Checks grad(loss, xs) against (loss(x + eps) - loss(x - eps)) / (2 eps), element by element.
void gradcheck(const std::string& what, const Fn& f, const std::vector<Arg>& args,
               uint64_t seed = 1, double atol = 1e-6, double rtol = 1e-5) {
  SCOPED_TRACE(what);
  std::mt19937_64 rng(seed);
  std::vector<std::vector<double>> data;
  for (const Arg& a : args) {
    std::uniform_real_distribution<double> dist(a.lo, a.hi);
    int64_t n = 1;
    for (int64_t d : a.shape) n *= d;
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = dist(rng);
    data.push_back(std::move(v));
  }
  std::vector<Tensor> xs;
  for (size_t i = 0; i < args.size(); ++i) {
    xs.push_back(make_input(data[i], args[i].shape).requires_grad_());
  }
  const Tensor out = f(xs);
  std::vector<double> w(static_cast<size_t>(out.numel()));
  std::uniform_real_distribution<double> wdist(-1.0, 1.0);
  for (double& x : w) x = wdist(rng);
  const Tensor loss = weighted_loss(out, w);
  const std::vector<Tensor> grads = grad({loss}, xs);

  auto loss_at = [&](size_t i, size_t k, double delta) {
    NoGradGuard no_grad;
    std::vector<double> moved = data[i];
    moved[k] += delta;
    std::vector<Tensor> ys;
    for (size_t j = 0; j < args.size(); ++j) {
      ys.push_back(make_input(j == i ? moved : data[j], args[j].shape));
    }
    return weighted_loss(f(ys), w).item<double>();
  };
  constexpr double kEps = 1e-6;
  for (size_t i = 0; i < args.size(); ++i) {
    ASSERT_TRUE(grads[i].defined()) << "input " << i;
    ASSERT_EQ(grads[i].shape(), args[i].shape) << "input " << i;
    ASSERT_EQ(grads[i].dtype(), DType::Float64);
    const std::vector<double> analytic = grads[i].to_vector<double>();
    for (size_t k = 0; k < data[i].size(); ++k) {
      const double numeric = (loss_at(i, k, kEps) - loss_at(i, k, -kEps)) / (2 * kEps);
      EXPECT_NEAR(analytic[k], numeric, atol + rtol * std::fabs(numeric))
          << "input " << i << " element " << k;
    }
  }
}

// Values of one sign, away from 0 (for log, sqrt, pow bases, division).
Arg positive(std::vector<int64_t> shape) { return {std::move(shape), 0.5, 2.0}; }

// ---- elementwise unary
// ---------------------------------------------------------------------------

TEST(Gradcheck, UnaryMath) {
  const std::vector<int64_t> s = {3, 4};
  gradcheck("neg", [](auto& x) { return -x[0]; }, {{s}});
  gradcheck("exp", [](auto& x) { return exp(x[0]); }, {{s}});
  gradcheck("log", [](auto& x) { return log(x[0]); }, {positive(s)});
  gradcheck("sqrt", [](auto& x) { return sqrt(x[0]); }, {positive(s)});
  gradcheck("rsqrt", [](auto& x) { return rsqrt(x[0]); }, {positive(s)});
  gradcheck("tanh", [](auto& x) { return tanh(x[0]); }, {{s}});
  gradcheck("sigmoid", [](auto& x) { return sigmoid(x[0]); }, {{s}});
  gradcheck("sin", [](auto& x) { return sin(x[0]); }, {{s}});
  gradcheck("cos", [](auto& x) { return cos(x[0]); }, {{s}});
  gradcheck("clone", [](auto& x) { return x[0].clone() * 3.0; }, {{s}});
}

TEST(Gradcheck, PiecewiseUnary) {
  // Random values are never exactly at the kinks (0 for abs and relu, the bounds of clamp).
  const std::vector<int64_t> s = {5, 3};
  gradcheck("abs", [](auto& x) { return abs(x[0]); }, {{s}});
  gradcheck("relu", [](auto& x) { return relu(x[0]); }, {{s}});
  gradcheck("sign", [](auto& x) { return sign(x[0]) * x[0]; }, {{s}});
  gradcheck("clamp", [](auto& x) { return clamp(x[0], -0.5, 0.7); }, {{s}});
  gradcheck("clamp_min", [](auto& x) { return clamp_min(x[0], 0.1); }, {{s}});
  gradcheck("clamp_max", [](auto& x) { return clamp_max(x[0], 0.1); }, {{s}});
  gradcheck("clamp by tensors", [](auto& x) { return clamp(x[0], x[1] - 1.0, x[2] + 1.0); },
            {{s}, {{3}}, {{5, 1}}});
}

// ---- elementwise binary, broadcasting -----------------------------------------------------------

TEST(Gradcheck, BinaryArithmeticBroadcasts) {
  gradcheck("add", [](auto& x) { return x[0] + x[1]; }, {{{2, 3, 4}}, {{3, 1}}});
  gradcheck("sub", [](auto& x) { return x[0] - x[1]; }, {{{4}}, {{2, 3, 4}}});
  gradcheck("mul", [](auto& x) { return x[0] * x[1]; }, {{{2, 1, 4}}, {{3, 1}}});
  gradcheck("div", [](auto& x) { return x[0] / x[1]; }, {{{3, 4}}, positive({4})});
  gradcheck("scalar ops", [](auto& x) { return (2.0 - x[0]) * 3.0 / (x[0] * x[0] + 1.0); },
            {{{6}}});
  gradcheck("0-d operand", [](auto& x) { return x[0] * x[1]; }, {{{}}, {{2, 3}}});
}

TEST(Gradcheck, PowOfBothOperands) {
  gradcheck("pow tensor^tensor", [](auto& x) { return pow(x[0], x[1]); },
            {positive({3, 2}), {{2}}});
  gradcheck("pow tensor^scalar", [](auto& x) { return pow(x[0], 3.0); }, {{{4}}});
  gradcheck("pow scalar^tensor", [](auto& x) { return pow(2.0, x[0]); }, {{{4}}});
}

TEST(Gradcheck, MaximumMinimumWhere) {
  gradcheck("maximum", [](auto& x) { return maximum(x[0], x[1]); }, {{{3, 4}}, {{4}}});
  gradcheck("minimum", [](auto& x) { return minimum(x[0], x[1]); }, {{{3, 1}}, {{3, 4}}});
  gradcheck("where", [](auto& x) { return where(x[0] > 0.0, x[0] * 2.0, x[1]); },
            {{{3, 4}}, {{4}}});
}

// ---- reductions
// -----------------------------------------------------------------------------------

TEST(Gradcheck, Reductions) {
  const std::vector<int64_t> s = {3, 4, 2};
  gradcheck("sum all", [](auto& x) { return x[0].sum(); }, {{s}});
  gradcheck("sum dims", [](auto& x) { return x[0].sum({0, 2}); }, {{s}});
  gradcheck("sum keepdim", [](auto& x) { return x[0].sum(1, true) * x[0]; }, {{s}});
  gradcheck("mean", [](auto& x) { return x[0].mean(-1); }, {{s}});
  gradcheck("max dim", [](auto& x) { return x[0].max(1); }, {{s}});
  gradcheck("min all", [](auto& x) { return x[0].min(); }, {{s}});
  gradcheck("max keepdim", [](auto& x) { return x[0] - x[0].max({0, 2}, true); }, {{s}});
  gradcheck("var", [](auto& x) { return x[0].var(1); }, {{s}});
  gradcheck("std", [](auto& x) { return x[0].std(); }, {{s}});
}

TEST(Gradcheck, SoftmaxFamily) {
  gradcheck("softmax", [](auto& x) { return softmax(x[0], 1); }, {{{3, 5}}});
  gradcheck("log_softmax", [](auto& x) { return log_softmax(x[0], -1); }, {{{2, 3, 4}}});
  gradcheck("log_softmax dim 0", [](auto& x) { return log_softmax(x[0], 0); }, {{{4, 3}}});
}

// ---- movement and views ------------------------------------------------------------------------

TEST(Gradcheck, Views) {
  gradcheck("reshape", [](auto& x) { return x[0].reshape({4, -1}) * x[1]; }, {{{2, 3, 2}}, {{3}}});
  gradcheck("permute",
            [](auto& x) {
              return x[0].permute({2, 0, 1}) * x[1];
            },
            {{{2, 3, 4}}, {{4, 2, 3}}});
  gradcheck("transpose + t", [](auto& x) { return x[0].transpose(0, 1) + x[1].t(); },
            {{{3, 2}}, {{3, 2}}});
  gradcheck("expand",
            [](auto& x) {
              return x[0].expand({3, 2, 4}) * x[1];
            },
            {{{2, 1}}, {{3, 2, 4}}});
  gradcheck("unsqueeze/squeeze/flatten",
            [](auto& x) { return x[0].unsqueeze(1).squeeze(1).flatten() * 2.0; }, {{{2, 3}}});
  gradcheck("slice", [](auto& x) { return x[0].slice(1, 1, 4); }, {{{3, 5}}});
  gradcheck("slice step", [](auto& x) { return x[0].slice(0, 1, 7, 2); }, {{{8, 2}}});
  gradcheck("slice step, odd end", [](auto& x) { return x[0].slice(0, 0, 7, 3); }, {{{7}}});
  gradcheck("slice of a permuted view",
            [](auto& x) {
              return tanh(x[0].permute({1, 0}).slice(0, 1, 3)) * x[1];
            },
            {{{4, 3}}, {{2, 1}}});
  gradcheck("cat", [](auto& x) { return cat({x[0], x[1] * 2.0, x[0]}, 1); }, {{{2, 3}}, {{2, 1}}});
  gradcheck("stack", [](auto& x) { return stack({x[0], x[1]}, 0) * x[0]; }, {{{2, 3}}, {{2, 3}}});
  gradcheck("index_select",
            [](auto& x) {
              return x[0].index_select(1, from_vector(std::vector<int64_t>{2, 0, 2, 3}, {4}));
            },
            {{{3, 4, 2}}});
  gradcheck("index_select dim 0",
            [](auto& x) {
              return x[0].index_select(0, from_vector(std::vector<int64_t>{1, 1}, {2}));
            },
            {{{3, 2}}});
}

// ---- matmul and composites ------------------------------------------------------------------

TEST(Gradcheck, Matmul) {
  gradcheck("2-d", [](auto& x) { return matmul(x[0], x[1]); }, {{{3, 4}}, {{4, 2}}});
  gradcheck("transposed operand", [](auto& x) { return matmul(x[0], x[1].t()); },
            {{{3, 4}}, {{2, 4}}});
  gradcheck("batched", [](auto& x) { return matmul(x[0], x[1]); }, {{{2, 3, 4}}, {{2, 4, 2}}});
  gradcheck("broadcast batch", [](auto& x) { return matmul(x[0], x[1]); },
            {{{2, 1, 3, 4}}, {{3, 4, 2}}});
  gradcheck("vector x matrix", [](auto& x) { return matmul(x[0], x[1]); }, {{{4}}, {{4, 3}}});
  gradcheck("matrix x vector", [](auto& x) { return matmul(x[0], x[1]); }, {{{3, 4}}, {{4}}});
  gradcheck("dot", [](auto& x) { return matmul(x[0], x[1]); }, {{{5}}, {{5}}});
}

TEST(Gradcheck, Conv2dAndMaxPool) {
  gradcheck("conv2d", [](auto& x) { return conv2d(x[0], x[1], x[2], 1, 1); },
            {{{2, 2, 4, 4}}, {{3, 2, 3, 3}}, {{3}}});
  gradcheck("conv2d stride 2", [](auto& x) { return conv2d(x[0], x[1], Tensor(), 2, 0); },
            {{{1, 1, 5, 5}}, {{2, 1, 2, 2}}});
  gradcheck("max_pool2d", [](auto& x) { return max_pool2d(x[0], 2); }, {{{1, 2, 4, 4}}});
  gradcheck("max_pool2d padded", [](auto& x) { return max_pool2d(x[0], 3, 2, 1); },
            {{{1, 1, 5, 5}}});
}

TEST(Gradcheck, RandomShapesAndViews) {
  // Broadcasting and views composed at random shapes: (a.permute + b) * c.slice, through tanh.
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> dim(1, 4);
  for (int round = 0; round < 5; ++round) {
    const int64_t m = dim(rng), n = dim(rng), k = dim(rng);
    gradcheck(
        "random " + std::to_string(round),
        [](auto& x) {
          Tensor a = x[0].permute({1, 0});             // [n, m]
          Tensor c = x[2].slice(0, 1, 1 + a.size(0));  // [n, 1] of [n + 1, 1]
          return tanh(a + x[1]) * c + matmul(a, x[3]).sum(1, true);
        },
        {{{m, n}}, {{m}}, {{n + 1, 1}}, {{m, k}}}, 100 + round);
  }
}

}  // namespace
}  // namespace smelt
