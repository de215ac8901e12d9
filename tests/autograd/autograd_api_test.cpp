// The autograd API's semantics, as API.md and PyTorch define them: requires_grad propagation,
// accumulation, detach, NoGradGuard, retain_graph, errors, higher-order gradients, ties.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "../frontend/frontend_testing.h"
#include "compiler/realize.h"
#include "frontend/tensor_impl.h"

namespace smelt {
namespace {

using testing::expect_error;

uint64_t compiler_realizations() { return compiler::realize_stats().total(); }
using testing::expect_tensor;

TEST(Autograd, ApiExample) {
  Tensor x = tensor({1.f, 2.f, 3.f}).requires_grad_();
  EXPECT_TRUE(x.requires_grad());
  EXPECT_FALSE(x.grad().defined());  // undefined before backward
  Tensor y = (x * x).sum();
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(x.is_leaf());
  y.backward();
  ASSERT_TRUE(x.grad().defined());
  expect_tensor(x.grad(), {3}, {2, 4, 6});
  EXPECT_FALSE(x.grad().requires_grad());
}

TEST(Autograd, RequiresGradPropagatesOnlyFromTensorsThatRequireIt) {
  Tensor a = randn({3});
  Tensor b = randn({3}).requires_grad_();
  EXPECT_FALSE(a.requires_grad());
  EXPECT_FALSE((a * 2.f).requires_grad());
  EXPECT_TRUE((a * b).requires_grad());
  EXPECT_FALSE((b > 0.f).requires_grad());  // Bool results carry no gradient
  EXPECT_FALSE(b.argmax().requires_grad());
  b.requires_grad_(false);
  EXPECT_FALSE(b.requires_grad());
  EXPECT_FALSE((a * b).requires_grad());
}

TEST(Autograd, GradientsAccumulateUntilReset) {
  Tensor x = tensor({1.0, 2.0}).requires_grad_();
  (x * 3.0).sum().backward();
  Tensor first = x.grad();
  (x * x).sum().backward();
  expect_tensor(x.grad(), {2}, {5, 7});
  expect_tensor(first, {2}, {5, 7});  // accumulated in place: the same gradient tensor
  x.mutable_grad() = Tensor();
  EXPECT_FALSE(x.grad().defined());
  (x * 3.0).sum().backward();
  expect_tensor(x.grad(), {2}, {3, 3});
}

TEST(Autograd, BackwardAfterTheForwardWasRealized) {
  Tensor w = tensor({0.5f, -1.f}).requires_grad_();
  Tensor h = tanh(w * 2.f);
  Tensor loss = (h * h).sum();
  const float value = loss.item<float>();  // realizes loss (and keeps its inputs for backward)
  EXPECT_NEAR(value, std::pow(std::tanh(1.0), 2) + std::pow(std::tanh(-2.0), 2), 1e-5);
  h.eval();
  loss.backward();
  for (int k = 0; k < 2; ++k) {
    const double wk = k == 0 ? 0.5 : -1.0;
    const double t = std::tanh(2 * wk);
    EXPECT_NEAR(w.grad().to_vector<double>()[k], 2 * t * (1 - t * t) * 2, 1e-5);
  }
}

TEST(Autograd, RealizedValuesKeepTheirInputsUntilBackwardReleasesThem) {
  Tensor w = ones({2}).requires_grad_();
  Tensor h = exp(w);
  h.eval();
  const ir::NodePtr n = h.impl()->node();
  EXPECT_TRUE(n->inputs().empty());        // the compiler sees a leaf
  EXPECT_EQ(n->grad_inputs().size(), 1u);  // autograd still sees the path to w
  h.sum().backward();
  EXPECT_TRUE(n->grad_inputs().empty());  // released: memory is bounded in a training loop
  expect_tensor(w.grad(), {2}, {std::exp(1.0), std::exp(1.0)});
  // Values computed without grad keep nothing.
  Tensor plain = exp(ones({2}));
  plain.eval();
  EXPECT_TRUE(plain.impl()->node()->grad_inputs().empty());
}

TEST(Autograd, WorksInEagerMode) {
  testing::EagerScope eager(true);
  Tensor x = tensor({1.0, -2.0}).requires_grad_();
  Tensor y = (tanh(x) * x).sum();  // every op realized as it is built
  y.backward();
  for (int k = 0; k < 2; ++k) {
    const double v = k == 0 ? 1.0 : -2.0, t = std::tanh(v);
    EXPECT_NEAR(x.grad().to_vector<double>()[k], t + v * (1 - t * t), 1e-12);
  }
}

TEST(Autograd, Detach) {
  Tensor x = tensor({1.0, 2.0}).requires_grad_();
  Tensor d = (x * 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
  expect_tensor(d, {2}, {2, 4});
  // Gradient stops at the detached value: only the direct x term contributes.
  (x * d).sum().backward();
  expect_tensor(x.grad(), {2}, {2, 4});
  Tensor realized = x.detach();
  EXPECT_FALSE(realized.requires_grad());
  EXPECT_TRUE(x.requires_grad());
}

TEST(Autograd, NoGradGuardNests) {
  Tensor x = randn({2}).requires_grad_();
  EXPECT_TRUE(GradMode::is_enabled());
  {
    NoGradGuard outer;
    EXPECT_FALSE((x * 2.f).requires_grad());
    {
      NoGradGuard inner;
      EXPECT_FALSE(GradMode::is_enabled());
    }
    EXPECT_FALSE(GradMode::is_enabled());  // the inner guard restored "off", not "on"
    EXPECT_FALSE(exp(x).requires_grad());
  }
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_TRUE((x * 2.f).requires_grad());
}

TEST(Autograd, NoGradIsPerThread) {
  NoGradGuard guard;
  bool other_thread_enabled = false;
  std::thread t([&] { other_thread_enabled = GradMode::is_enabled(); });
  t.join();
  EXPECT_TRUE(other_thread_enabled);
  EXPECT_FALSE(GradMode::is_enabled());
}

TEST(Autograd, RetainGraph) {
  Tensor x = tensor({1.0, 2.0}).requires_grad_();
  Tensor y = (exp(x) * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();  // allowed: the first one kept the graph
  const auto g = x.grad().to_vector<double>();
  EXPECT_NEAR(g[0], 2 * (std::exp(1.0) * 2), 1e-9);
  EXPECT_NEAR(g[1], 2 * (std::exp(2.0) * 3), 1e-9);
  expect_error([&] { y.backward(); }, {"backward", "second time", "retain_graph"});
  // Also after the freed forward was realized.
  Tensor z = (x * x).sum();
  z.eval();
  z.backward();
  expect_error([&] { z.backward(); }, {"second time"});
}

TEST(Autograd, Errors) {
  expect_error(
      [] {
        tensor({1, 2}).requires_grad_();
      },
      {"requires_grad_", "only tensors of floating point dtype", "i64"});
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  expect_error([&] { (x * 2.f).backward(); },
               {"backward", "implicitly created only for scalar outputs", "[2]"});
  expect_error([&] { (x * x).backward(ones({3})); }, {"backward", "shape", "[3]", "[2]"});
  expect_error([] { ones({2}).sum().backward(); }, {"backward", "does not require grad"});
  expect_error([&] { (x * 2.f).requires_grad_(false); }, {"leaf", "detach()"});
  Tensor unused = ones({1}).requires_grad_();
  expect_error([&] { grad({(x * x).sum()}, {unused}); }, {"grad", "allow_unused"});
  std::vector<Tensor> g = grad({(x * x).sum()}, {unused}, false, /*allow_unused=*/true);
  EXPECT_FALSE(g[0].defined());
  expect_error([&] { grad({(x * x).sum()}, {ones({2})}); }, {"grad", "does not require grad"});
}

TEST(Autograd, NonScalarBackwardWithGradient) {
  Tensor x = tensor({1.0, 2.0, 3.0}).requires_grad_();
  (x * x).backward(tensor({1.0, 0.0, -1.0}));
  expect_tensor(x.grad(), {3}, {2, 0, -6});
}

TEST(Autograd, IntegerAndBoolOperandsGetNoGradient) {
  Tensor x = tensor({1.0, 5.0, 3.0}).requires_grad_();
  Tensor idx = tensor({2, 2, 0});
  Tensor picked = x.index_select(0, idx);
  (where(x > 2.0, picked, x * 0.0) * picked).sum().backward();
  // picked = [x2, x2, x0] and the condition is [F, T, T], so the loss is x2^2 + x0^2: the Int64
  // index and the Bool condition get no gradient, and x1 only feeds the condition.
  expect_tensor(x.grad(), {3}, {2 * 1.0, 0, 2 * 3.0});
}

TEST(Autograd, TiesFollowPyTorch) {
  // amax/amin share the gradient evenly between ties.
  Tensor x = tensor({1.0, 3.0, 3.0, 2.0}).requires_grad_();
  x.max().backward();
  expect_tensor(x.grad(), {4}, {0, 0.5, 0.5, 0});
  // maximum/minimum split a tie half and half.
  Tensor a = tensor({1.0, 2.0}).requires_grad_();
  Tensor b = tensor({1.0, 3.0}).requires_grad_();
  maximum(a, b).sum().backward();
  expect_tensor(a.grad(), {2}, {0.5, 0});
  expect_tensor(b.grad(), {2}, {0.5, 1});
  // abs and relu have gradient 0 at 0; clamp passes the whole gradient at its bounds.
  Tensor z = tensor({0.0, -1.0, 2.0}).requires_grad_();
  (abs(z) + relu(z) + clamp(z, -1.0, 2.0)).sum().backward();
  expect_tensor(z.grad(), {3}, {0 + 0 + 1, -1 + 0 + 1, 1 + 1 + 1});
}

TEST(Autograd, SharedSubexpressionsSumTheirGradients) {
  Tensor x = tensor({2.0}).requires_grad_();
  Tensor y = x * x;
  Tensor z = y + y * y + exp(y);  // y used three times
  z.sum().backward();
  const double v = 2.0, yy = v * v;
  expect_tensor(x.grad(), {1}, {(1 + 2 * yy + std::exp(yy)) * 2 * v}, 1e-6);
}

// ---- higher order ------------------------------------------------------------------------------

TEST(Autograd, SecondDerivativeOfTanh) {
  Tensor x = tensor({-1.0, 0.0, 0.5, 2.0}).requires_grad_();
  std::vector<Tensor> d1 = grad({tanh(x).sum()}, {x}, /*create_graph=*/true);
  EXPECT_TRUE(d1[0].requires_grad());
  std::vector<Tensor> d2 = grad({d1[0].sum()}, {x});
  EXPECT_FALSE(d2[0].requires_grad());
  const std::vector<double> xs = {-1.0, 0.0, 0.5, 2.0};
  const auto got1 = d1[0].to_vector<double>();
  const auto got2 = d2[0].to_vector<double>();
  for (size_t k = 0; k < xs.size(); ++k) {
    const double t = std::tanh(xs[k]);
    EXPECT_NEAR(got1[k], 1 - t * t, 1e-12);
    EXPECT_NEAR(got2[k], -2 * t * (1 - t * t), 1e-12);
  }
  // Third order, through backward() with create_graph.
  Tensor y = tensor({0.3}).requires_grad_();
  std::vector<Tensor> g1 = grad({pow(y, 4.0).sum()}, {y}, true);  // 4y^3
  std::vector<Tensor> g2 = grad({g1[0].sum()}, {y}, true);        // 12y^2
  g2[0].sum().backward();                                         // 24y
  expect_tensor(y.grad(), {1}, {24 * 0.3}, 1e-12);
}

// A small MLP's Hessian-vector product, by double backward, against finite differences of its
// gradient.
TEST(Autograd, HessianVectorProductOfAnMlp) {
  manual_seed(3);
  Tensor x = randn({5, 3}, DType::Float64);
  Tensor w1_data = randn({3, 4}, DType::Float64);
  Tensor w2_data = randn({4, 1}, DType::Float64);
  Tensor v = randn({3, 4}, DType::Float64);  // the direction, for w1
  auto loss_of = [&](const Tensor& w1, const Tensor& w2) {
    return (matmul(tanh(matmul(x, w1)), w2) - 0.5).pow(2.0).mean();
  };
  Tensor w1 = w1_data.detach().requires_grad_();
  Tensor w2 = w2_data.detach().requires_grad_();
  std::vector<Tensor> g = grad({loss_of(w1, w2)}, {w1, w2}, /*create_graph=*/true);
  std::vector<Tensor> hv = grad({(g[0] * v).sum()}, {w1, w2});

  auto grad_at = [&](double eps) {
    Tensor a = (w1_data + v * eps).detach().requires_grad_();
    Tensor b = w2_data.detach().requires_grad_();
    return grad({loss_of(a, b)}, {a, b});
  };
  constexpr double kEps = 1e-5;
  std::vector<Tensor> plus = grad_at(kEps), minus = grad_at(-kEps);
  for (int i = 0; i < 2; ++i) {
    const auto want_p = plus[i].to_vector<double>();
    const auto want_m = minus[i].to_vector<double>();
    const auto got = hv[i].to_vector<double>();
    ASSERT_EQ(got.size(), want_p.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k], (want_p[k] - want_m[k]) / (2 * kEps), 1e-6) << i << " " << k;
    }
  }
}

// ---- scale ------------------------------------------------------------------------------------

TEST(Autograd, HundredThousandDeepChain) {
  Tensor x = tensor({0.5, -0.25}).requires_grad_();
  Tensor y = x;
  constexpr int kDepth = 100000;
  for (int i = 0; i < kDepth; ++i) y = y * 1.00001;
  y.sum().backward();
  const double d = std::pow(1.00001, kDepth);
  expect_tensor(x.grad(), {2}, {d, d}, 1e-9 * d);
}

TEST(Autograd, GradientsAreLazy) {
  Tensor x = randn({4, 4}).requires_grad_();
  Tensor loss = tanh(matmul(x, x)).sum();
  const uint64_t before = compiler_realizations();
  loss.backward();
  EXPECT_EQ(compiler_realizations(), before);  // backward computed nothing
  x.grad().eval();
  EXPECT_GT(compiler_realizations(), before);
}

}  // namespace
}  // namespace smelt
