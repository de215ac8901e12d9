// Optimizers: updates against independent scalar implementations of PyTorch's rules, state
// save/restore, schedulers, and the properties of the lazy step (one realization, a few kernels,
// no recompilation when the learning rate changes, flat memory).
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <numbers>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/realize.h"
#include "frontend/tensor_impl.h"
#include "runtime/memory_pool.h"
#include "runtime/program.h"
#include "tests/common/random_graph.h"

namespace smelt::optim {
namespace {

using Vec = std::vector<double>;

Tensor param(const std::vector<float>& v) { return from_vector(v).requires_grad_(); }
void set_grad(const Tensor& p, const std::vector<float>& g) {
  p.mutable_grad() = from_vector(g, p.shape());
}
Vec values(const Tensor& t) { return t.to_vector<double>(); }
Vec as_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

void expect_near(const Vec& got, const Vec& want, double tol = 1e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << "element " << i;
  }
}

// ---- scalar reference implementations (PyTorch's formulas, element by element) -------------

struct RefSGD {
  double lr, momentum = 0, dampening = 0, wd = 0;
  bool nesterov = false;
  Vec buf;
  void step(Vec& p, const Vec& g) {
    const bool first = buf.empty();
    if (first) buf.resize(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (momentum != 0) {
        buf[i] = first ? d : momentum * buf[i] + (1 - dampening) * d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

struct RefAdam {
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0;
  bool amsgrad = false, decoupled = false;
  Vec m, v, vmax;
  int t = 0;
  void step(Vec& p, const Vec& g) {
    if (m.empty()) m = v = vmax = Vec(p.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < p.size(); ++i) {
      double gi = g[i];
      if (decoupled) {
        p[i] *= 1 - lr * wd;
      } else {
        gi += wd * p[i];
      }
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      vmax[i] = std::max(vmax[i], v[i]);
      const double denom = std::sqrt(amsgrad ? vmax[i] : v[i]) / std::sqrt(bc2) + eps;
      p[i] -= lr / bc1 * m[i] / denom;
    }
  }
};

const std::vector<std::vector<float>> kGrads = {
    {0.5f, -1.f, 2.f}, {0.25f, 0.5f, -0.75f}, {-1.f, 0.1f, 0.3f}, {0.f, 2.f, -2.f}};
const std::vector<float> kStart = {1.f, -2.f, 0.5f};

// Runs `opt` over kGrads on a parameter it was built for and the reference alongside.
template <typename Ref>
void check_against(Optimizer& opt, const Tensor& p, Ref ref) {
  Vec want = as_double(kStart);
  for (const auto& g : kGrads) {
    set_grad(p, g);
    opt.step();
    ref.step(want, as_double(g));
    expect_near(values(p), want);
  }
}

// ---- SGD ----------------------------------------------------------------------------------

TEST(SGD, PlainStepIsHandComputed) {
  Tensor p = param({1.f, 2.f, 3.f});
  SGD opt({p}, SGDOptions(0.1));
  set_grad(p, {1.f, -2.f, 0.5f});
  opt.step();
  expect_near(values(p), {0.9, 2.2, 2.95});
  EXPECT_TRUE(p.requires_grad());
  EXPECT_TRUE(p.is_leaf());
}

TEST(SGD, MomentumFirstStepBufferIsTheGradient) {
  Tensor p = param({1.f});
  SGD opt({p}, SGDOptions(0.1).momentum(0.9).dampening(0.5));
  set_grad(p, {1.f});
  opt.step();  // buf = 1 (no dampening on the first step): p = 1 - 0.1
  expect_near(values(p), {0.9});
  set_grad(p, {1.f});
  opt.step();  // buf = 0.9 * 1 + 0.5 * 1 = 1.4: p = 0.9 - 0.14
  expect_near(values(p), {0.76});
  expect_near(values(opt.param_state(0)[0].second), {1.4});
}

TEST(SGD, MatchesReference) {
  struct Case {
    SGDOptions o;
    RefSGD ref;
  };
  const std::vector<Case> cases = {
      {SGDOptions(0.1), {0.1}},
      {SGDOptions(0.1).weight_decay(0.01), {0.1, 0, 0, 0.01}},
      {SGDOptions(0.05).momentum(0.9), {0.05, 0.9}},
      {SGDOptions(0.05).momentum(0.9).dampening(0.3), {0.05, 0.9, 0.3}},
      {SGDOptions(0.05).momentum(0.8).nesterov(true), {0.05, 0.8, 0, 0, true}},
      {SGDOptions(0.05).momentum(0.8).nesterov(true).weight_decay(0.1), {0.05, 0.8, 0, 0.1, true}},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    Tensor p = param(kStart);
    SGD opt({p}, cases[c].o);
    check_against(opt, p, cases[c].ref);
  }
}

// A Linear(64, 96) layer (its weight is updated alone: >= 4096 elements) trained by SGD with
// momentum on fixed data.
struct MomentumLoop {
  nn::Linear layer;
  SGD opt;
  Tensor x, y;
  explicit MomentumLoop(uint64_t seed)
      : layer((manual_seed(seed), nn::Linear(64, 96))),
        opt(layer->parameters(), SGDOptions(0.05).momentum(0.9)),
        x(randn({32, 64})),
        y(randn({32, 96})) {}
  void step() {
    opt.zero_grad();
    nn::functional::mse_loss(layer(x), y).backward();
    opt.step();
  }
};

TEST(SGD, MomentumBufferIsUpdatedInPlaceUnlessSomeoneHoldsIt) {
  // A weight whose gradient is a product: from the second step on, the new momentum buffer is
  // accumulated in the old one's memory (an addmm on a donated buffer). A buffer the user holds
  // (param_state) is not the optimizer's to overwrite.
  MomentumLoop loop(21);
  SGD& opt = loop.opt;
  auto step = [&] { loop.step(); };
  auto buffer_data = [&] { return opt.param_state(0)[0].second.impl()->node()->buffer()->data(); };
  step();
  step();
  const void* second = buffer_data();
  step();
  EXPECT_EQ(buffer_data(), second) << "the third step's buffer is a new allocation";
  Tensor held = opt.param_state(0)[0].second;
  const std::vector<float> held_values = held.to_vector<float>();
  step();
  EXPECT_EQ(held.to_vector<float>(), held_values) << "a held momentum buffer changed";
  EXPECT_NE(buffer_data(), second);
}

// Parameters are updated in their own memory once the forward pass's values that read them are
// realized or dropped (compiler::plan_donations): a weight read only through its products
// (x W^T) is, from the third step on (the second builds the flat layout the third reuses).
TEST(SGD, ParametersAreUpdatedInPlaceWhenNothingElseReadsThem) {
  MomentumLoop loop(22);
  nn::Linear& layer = loop.layer;
  auto step = [&] { loop.step(); };
  auto weight_data = [&] { return layer->weight.impl()->node()->buffer()->data(); };
  step();
  step();
  step();
  const void* third = weight_data();
  step();
  EXPECT_EQ(weight_data(), third) << "the weight moved to a new block";

  // The same steps with the old weights and momentum kept alive by detached copies (which share
  // the memory, not the node): never in place, the same values bit for bit, and the copies
  // keep their old values.
  MomentumLoop twin_loop(22);
  nn::Linear& twin = twin_loop.layer;
  SGD& twin_opt = twin_loop.opt;
  for (int s = 0; s < 4; ++s) {
    Tensor before = twin->weight.detach();
    const std::vector<float> before_values = before.to_vector<float>();
    Tensor buffer = s == 0 ? Tensor() : twin_opt.param_state(0)[0].second.detach();
    const std::vector<float> buffer_values =
        buffer.defined() ? buffer.to_vector<float>() : std::vector<float>();
    twin_loop.step();
    EXPECT_EQ(before.to_vector<float>(), before_values) << "step " << s;
    if (buffer.defined()) {
      EXPECT_EQ(buffer.to_vector<float>(), buffer_values) << "step " << s << ": momentum";
    }
    EXPECT_NE(twin->weight.impl()->node()->buffer()->data(),
              before.impl()->node()->buffer()->data());
  }
  EXPECT_EQ(twin->weight.to_vector<float>(), layer->weight.to_vector<float>());
  EXPECT_EQ(twin->bias.to_vector<float>(), layer->bias.to_vector<float>());
}

// Values the user holds from the forward pass are still those of the old weights after a step
// that updated the weights in place: the products they read were realized with the step.
TEST(SGD, HeldForwardValuesKeepTheOldWeightsAfterAnInPlaceStep) {
  manual_seed(23);
  nn::Linear first(64, 80), second(80, 6);  // first's weight is updated alone (>= 4096)
  std::vector<Tensor> params = first->parameters();
  for (const Tensor& p : second->parameters()) params.push_back(p);
  SGD opt(params, SGDOptions(0.1).momentum(0.9));
  Tensor x = randn({16, 64}), y = randint(0, 6, {16});
  nn::CrossEntropyLoss ce;
  for (int s = 0; s < 5; ++s) {
    opt.zero_grad();
    std::vector<Tensor> old;
    for (const Tensor& p : params) old.push_back(p.detach().clone());
    eval(old);
    Tensor hidden = relu(first(x));
    Tensor out = second(hidden);
    Tensor loss = ce(out, y);
    loss.backward();
    const void* w1 = first->weight.impl()->node()->buffer()->data();
    opt.step();
    if (s >= 2) {
      EXPECT_EQ(first->weight.impl()->node()->buffer()->data(), w1)
          << "step " << s << ": the first weight was not updated in place";
    }
    Tensor want_hidden = relu(matmul(x, old[0].t()) + old[1]);
    Tensor want_out = matmul(want_hidden, old[2].t()) + old[3];
    EXPECT_EQ(hidden.to_vector<float>(), want_hidden.to_vector<float>()) << "step " << s;
    EXPECT_EQ(out.to_vector<float>(), want_out.to_vector<float>()) << "step " << s;
    EXPECT_NEAR(loss.item<float>(), ce(want_out, y).item<float>(), 1e-6) << "step " << s;
  }
}

TEST(SGD, RejectsInvalidOptions) {
  Tensor p = param({1.f});
  EXPECT_THROW(SGD({p}, SGDOptions(-0.1)), Error);
  EXPECT_THROW(SGD({p}, SGDOptions(0.1).momentum(-1)), Error);
  EXPECT_THROW(SGD({p}, SGDOptions(0.1).weight_decay(-1)), Error);
  EXPECT_THROW(SGD({p}, SGDOptions(0.1).nesterov(true)), Error);  // needs momentum
  EXPECT_THROW(SGD({p}, SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)), Error);
  EXPECT_THROW(SGD(std::vector<Tensor>{}, SGDOptions(0.1)), Error);
  EXPECT_THROW(SGD({p, p}, SGDOptions(0.1)), Error);  // the same parameter twice
  Tensor q = param({1.f});
  EXPECT_THROW(SGD({q * 2.f}, SGDOptions(0.1)), Error);  // not a leaf
}

TEST(SGD, GradientOfTheWrongShapeThrowsAndChangesNothing) {
  Tensor p = param({1.f, 2.f});
  Tensor q = param({3.f});
  SGD opt({p, q}, SGDOptions(0.1));
  set_grad(p, {1.f, 1.f});
  q.mutable_grad() = from_vector(std::vector<float>{1.f, 1.f});
  EXPECT_THROW(opt.step(), Error);
  expect_near(values(p), {1, 2});
  EXPECT_EQ(opt.step_count(0), 0);
}

// ---- Adam and AdamW ---------------------------------------------------------------------------

TEST(Adam, FirstStepIsHandComputed) {
  // m = 0.1 g, v = 0.001 g², corrected: m̂ = g, v̂ = g², so p -= lr * g / (|g| + eps).
  Tensor p = param({1.f, 1.f});
  Adam opt({p}, AdamOptions(0.1));
  set_grad(p, {2.f, -0.5f});
  opt.step();
  expect_near(values(p), {0.9, 1.1}, 1e-6);
}

TEST(Adam, MatchesReference) {
  struct Case {
    AdamOptions o;
    RefAdam ref;
  };
  const std::vector<Case> cases = {
      {AdamOptions(0.01), {0.01}},
      {AdamOptions(0.01).betas({0.8, 0.99}).eps(1e-3), {0.01, 0.8, 0.99, 1e-3}},
      {AdamOptions(0.01).weight_decay(0.1), {0.01, 0.9, 0.999, 1e-8, 0.1}},
      {AdamOptions(0.01).amsgrad(true), {0.01, 0.9, 0.999, 1e-8, 0, true}},
      {AdamOptions(0.02).amsgrad(true).weight_decay(0.05), {0.02, 0.9, 0.999, 1e-8, 0.05, true}},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    Tensor p = param(kStart);
    Adam opt({p}, cases[c].o);
    check_against(opt, p, cases[c].ref);
  }
}

// Adam's parameters and both moments are updated in their own memory once nothing else reads
// them, with the values of a twin whose detached copies keep every old block alive.
TEST(Adam, ParametersAndMomentsAreUpdatedInPlace) {
  manual_seed(24);
  nn::Linear layer(64, 96), twin(64, 96);
  {
    NoGradGuard no_grad;
    twin->weight.copy_(layer->weight);
    twin->bias.copy_(layer->bias);
  }
  Adam opt(layer->parameters(), AdamOptions(1e-2));
  Adam twin_opt(twin->parameters(), AdamOptions(1e-2));
  Tensor x = randn({32, 64}), y = randn({32, 96});
  auto data = [](const Tensor& t) { return t.impl()->node()->buffer()->data(); };
  std::vector<const void*> last;
  for (int s = 0; s < 5; ++s) {
    opt.zero_grad();
    nn::functional::mse_loss(layer(x), y).backward();
    opt.step();
    std::vector<const void*> now = {data(layer->weight)};
    for (const auto& [name, state] : opt.param_state(0)) {
      if (state.defined() && state.numel() == layer->weight.numel()) now.push_back(data(state));
    }
    if (s >= 3) EXPECT_EQ(now, last) << "step " << s << ": weight, exp_avg, exp_avg_sq";

    std::vector<Tensor> kept = {twin->weight.detach()};
    for (const auto& [name, state] : twin_opt.param_state(0)) {
      if (state.defined() && state.numel() == twin->weight.numel()) kept.push_back(state.detach());
    }
    std::vector<std::vector<float>> kept_values;
    for (const Tensor& t : kept) kept_values.push_back(t.to_vector<float>());
    twin_opt.zero_grad();
    nn::functional::mse_loss(twin(x), y).backward();
    twin_opt.step();
    for (size_t k = 0; k < kept.size(); ++k) {
      EXPECT_EQ(kept[k].to_vector<float>(), kept_values[k]) << "step " << s << ", tensor " << k;
    }
    EXPECT_EQ(twin->weight.to_vector<float>(), layer->weight.to_vector<float>()) << "step " << s;
    last = std::move(now);
  }
}

TEST(AdamW, MatchesReferenceWithDecoupledDecay) {
  {
    Tensor p = param(kStart);
    AdamW opt({p}, AdamWOptions(0.01));  // weight decay 1e-2 by default
    EXPECT_EQ(opt.options().weight_decay(), 1e-2);
    check_against(opt, p, RefAdam{0.01, 0.9, 0.999, 1e-8, 1e-2, false, true});
  }
  {
    Tensor p = param(kStart);
    AdamW opt({p}, AdamWOptions(0.05).betas({0.5, 0.9}).weight_decay(0.3).amsgrad(true));
    check_against(opt, p, RefAdam{0.05, 0.5, 0.9, 1e-8, 0.3, true, true});
  }
}

TEST(Adam, Float64Parameters) {
  Tensor p = from_vector(std::vector<double>{1.0, -2.0, 0.5}).requires_grad_();
  Adam opt({p}, AdamOptions(0.01).weight_decay(0.1));
  RefAdam ref{0.01, 0.9, 0.999, 1e-8, 0.1};
  Vec want = {1.0, -2.0, 0.5};
  for (const auto& g : kGrads) {
    p.mutable_grad() = from_vector(as_double(g));
    opt.step();
    ref.step(want, as_double(g));
    expect_near(values(p), want, 1e-12);
  }
  EXPECT_EQ(p.dtype(), DType::Float64);
}

TEST(Adam, SkipsParametersWithoutGradientAndCountsStepsPerParameter) {
  Tensor a = param(kStart);
  Tensor b = param({4.f, 5.f});
  Adam opt({a, b}, AdamOptions(0.01));
  RefAdam ra{0.01}, rb{0.01};
  Vec wa = as_double(kStart), wb = {4, 5};
  set_grad(a, kGrads[0]);
  opt.step();  // b has no gradient: untouched, no state
  ra.step(wa, as_double(kGrads[0]));
  expect_near(values(a), wa);
  expect_near(values(b), wb);
  EXPECT_EQ(opt.step_count(0), 1);
  EXPECT_EQ(opt.step_count(1), 0);
  EXPECT_FALSE(opt.param_state(1)[0].second.defined());
  for (int k = 1; k < 4; ++k) {  // now both: their bias corrections differ
    set_grad(a, kGrads[k]);
    set_grad(b, {kGrads[k][0], kGrads[k][1]});
    opt.step();
    ra.step(wa, as_double(kGrads[k]));
    rb.step(wb, {kGrads[k][0], kGrads[k][1]});
    expect_near(values(a), wa);
    expect_near(values(b), wb);
  }
  EXPECT_EQ(opt.step_count(0), 4);
  EXPECT_EQ(opt.step_count(1), 3);
  expect_near(values(opt.param_state(1)[1].second), rb.v);
}

// ---- common behaviour -----------------------------------------------------------------------

TEST(Optimizer, ZeroGradMakesGradientsUndefined) {
  Tensor p = param({1.f, 2.f});
  SGD opt({p}, SGDOptions(0.1));
  (p * p).sum().backward();
  ASSERT_TRUE(p.grad().defined());
  opt.zero_grad();
  EXPECT_FALSE(p.grad().defined());
  opt.step();  // nothing to do
  expect_near(values(p), {1, 2});
}

TEST(Optimizer, LearningRateAndGroups) {
  Tensor a = param({1.f});
  Tensor b = param({1.f});
  SGD opt(std::vector<ParamGroup>{{{a}, std::nullopt}, {{b}, 0.5}}, SGDOptions(0.1));
  EXPECT_EQ(opt.num_param_groups(), 2u);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.1);
  EXPECT_DOUBLE_EQ(opt.group_lr(1), 0.5);
  set_grad(a, {1.f});
  set_grad(b, {1.f});
  opt.step();
  expect_near(values(a), {0.9});
  expect_near(values(b), {0.5});
  opt.set_lr(0.25);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.25);
  EXPECT_DOUBLE_EQ(opt.group_lr(1), 0.25);
  opt.step();
  expect_near(values(a), {0.65});
  expect_near(values(b), {0.25});
  EXPECT_THROW(opt.set_lr(-1), Error);
  EXPECT_THROW(opt.group_lr(2), Error);
  Tensor c = param({2.f});
  opt.add_param_group({{c}, 1.0});
  EXPECT_EQ(opt.parameters().size(), 3u);
  EXPECT_THROW(opt.add_param_group({{a}, 1.0}), Error);  // already optimized
}

TEST(Optimizer, EveryHandleSeesTheUpdate) {
  Tensor p = param({1.f, 2.f});
  Tensor alias = p;  // another handle, as a module holds its parameters
  SGD opt({p}, SGDOptions(1.0));
  set_grad(p, {1.f, 1.f});
  opt.step();
  expect_near(values(alias), {0, 1});
  // Still a leaf whose gradient accumulates.
  (alias * 3.f).sum().backward();
  expect_near(values(p.grad()), {4, 4});  // 1 (left from before) + 3
}

// ---- schedulers -----------------------------------------------------------------------------

TEST(LRScheduler, StepLRFollowsTheClosedForm) {
  Tensor p = param({1.f});
  SGD opt({p}, SGDOptions(0.1));
  StepLR sched(opt, /*step_size=*/3, /*gamma=*/0.5);
  const Vec want = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025};
  for (size_t e = 0; e < want.size(); ++e) {
    EXPECT_NEAR(opt.lr(), want[e], 1e-15) << "epoch " << e;
    EXPECT_NEAR(sched.get_last_lr()[0], want[e], 1e-15);
    EXPECT_EQ(sched.last_epoch(), static_cast<int64_t>(e));
    sched.step();
  }
  EXPECT_THROW(StepLR(opt, 0), Error);
  // Resuming: step(epoch) jumps straight to that epoch's rate.
  sched.step(4);
  EXPECT_EQ(sched.last_epoch(), 4);
  EXPECT_NEAR(opt.lr(), 0.05, 1e-15);
  sched.step();
  EXPECT_NEAR(opt.lr(), 0.05, 1e-15);
  sched.step();
  EXPECT_NEAR(opt.lr(), 0.025, 1e-15);
  EXPECT_THROW(sched.step(-1), Error);
}

TEST(LRScheduler, CosineAnnealingFollowsTheClosedForm) {
  Tensor a = param({1.f});
  Tensor b = param({1.f});
  Adam opt(std::vector<ParamGroup>{{{a}, 0.1}, {{b}, 0.01}}, AdamOptions(1.0));
  CosineAnnealingLR sched(opt, /*T_max=*/4, /*eta_min=*/0.001);
  // eta_min + (base - eta_min) * (1 + cos(pi * e / 4)) / 2 for e = 0..4
  const double c1 = (1 + std::cos(std::numbers::pi / 4)) / 2;
  const double c3 = (1 + std::cos(3 * std::numbers::pi / 4)) / 2;
  const Vec want_a = {0.1, 0.001 + 0.099 * c1, 0.0505, 0.001 + 0.099 * c3, 0.001};
  const Vec want_b = {0.01, 0.001 + 0.009 * c1, 0.0055, 0.001 + 0.009 * c3, 0.001};
  for (size_t e = 0; e < want_a.size(); ++e) {
    EXPECT_NEAR(opt.group_lr(0), want_a[e], 1e-15) << "epoch " << e;
    EXPECT_NEAR(opt.group_lr(1), want_b[e], 1e-15) << "epoch " << e;
    ASSERT_EQ(sched.get_last_lr().size(), 2u);
    EXPECT_NEAR(sched.get_last_lr()[1], want_b[e], 1e-15);
    sched.step();
  }
}

// ---- the lazy step ----------------------------------------------------------------------------

struct Mlp {
  Tensor w1, b1, w2, b2;
  explicit Mlp(int hidden = 16) {
    w1 = (randn({4, hidden}) * 0.5f).detach().requires_grad_();
    b1 = zeros({hidden}).requires_grad_();
    w2 = (randn({hidden, 1}) * 0.5f).detach().requires_grad_();
    b2 = zeros({1}).requires_grad_();
    eval(params());
  }
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  Tensor loss(const Tensor& x, const Tensor& y) const {
    Tensor d = matmul(relu(matmul(x, w1) + b1), w2) + b2 - y;
    return (d * d).mean();
  }
};

struct Data {
  Tensor x, y;
  Data() {
    x = randn({64, 4});
    // A smooth nonlinear target.
    y = (tanh(x.slice(1, 0, 1) * 1.5f) + x.slice(1, 1, 2) * x.slice(1, 2, 3) * 0.5f).detach();
    eval({x, y});
  }
};

float train_step(Optimizer& opt, const Mlp& m, const Data& d) {
  opt.zero_grad();
  Tensor loss = m.loss(d.x, d.y);
  loss.backward();
  opt.step();
  return loss.item<float>();
}

template <typename Opt, typename Options>
void expect_loss_falls(Options options) {
  manual_seed(3);
  Mlp m;
  Data d;
  Opt opt(m.params(), options);
  const float first = train_step(opt, m, d);
  float last = first;
  for (int i = 0; i < 150; ++i) last = train_step(opt, m, d);
  EXPECT_LT(last, first * 0.3f) << "first " << first << " last " << last;
}

TEST(Training, LossFallsWithSGD) { expect_loss_falls<SGD>(SGDOptions(0.05).momentum(0.9)); }
TEST(Training, LossFallsWithAdam) { expect_loss_falls<Adam>(AdamOptions(0.01)); }

TEST(Training, ChangingTheLearningRateCompilesNothing) {
  manual_seed(4);
  Mlp m;
  Data d;
  Adam opt(m.params(), AdamOptions(0.01).weight_decay(1e-4));
  train_step(opt, m, d);
  train_step(opt, m, d);
  const compiler::CompileStats before = compiler::compile_stats();
  const uint64_t steps_before =
      compiler::realize_stats().by_reason[static_cast<size_t>(compiler::EvalReason::kStep)];
  for (double lr : {0.005, 0.001, 0.02}) {
    opt.set_lr(lr);
    train_step(opt, m, d);
  }
  const compiler::CompileStats after = compiler::compile_stats();
  EXPECT_EQ(after.program_misses, before.program_misses);
  EXPECT_EQ(after.kernels_compiled, before.kernels_compiled);
  // One realization per step.
  EXPECT_EQ(compiler::realize_stats().by_reason[static_cast<size_t>(compiler::EvalReason::kStep)],
            steps_before + 3);
}

TEST(Training, AdamStepOverManyParametersIsAFewKernels) {
  manual_seed(6);
  std::vector<Tensor> params;
  const std::vector<std::vector<int64_t>> shapes = {{16, 8}, {8}, {8, 3}, {3},
                                                    {5, 5},  {5}, {7},    {2, 3, 4}};
  for (const auto& s : shapes) params.push_back(randn(s).detach().requires_grad_());
  eval(params);
  Adam opt(params, AdamOptions(1e-3));
  auto kernels_of_one_step = [&] {
    std::vector<Tensor> grads;
    for (const Tensor& p : params) {
      p.mutable_grad() = randn(p.shape());
      grads.push_back(p.grad());
    }
    eval(grads);  // gradients are data here: count the update alone
    const runtime::ExecStats before = runtime::exec_stats();
    opt.step();
    const runtime::ExecStats after = runtime::exec_stats();
    return (after.kernels_launched - before.kernels_launched) +
           (after.library_calls - before.library_calls);
  };
  const uint64_t first = kernels_of_one_step();
  const uint64_t second = kernels_of_one_step();
  const uint64_t third = kernels_of_one_step();
  // New m, new v, new parameters: one kernel each for all eight parameters (not 8 x 3).
  EXPECT_LE(first, 4u);
  EXPECT_LE(second, 4u);
  EXPECT_LE(third, 4u);
}

TEST(Training, TheLossIsComputedWithTheStep) {
  // backward() notes its scalar loss for the next realization (the step's, which runs the
  // forward pass anyway): reading it afterwards, as a running loss does, runs nothing more.
  manual_seed(8);
  nn::Sequential model(nn::Linear(20, 16), nn::ReLU(), nn::Linear(16, 3));
  SGD opt(model->parameters(), SGDOptions(0.1).momentum(0.9));
  Tensor x = randn({8, 20}), y = randint(0, 3, {8});
  float first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    Tensor loss = nn::functional::cross_entropy(model(x), y);
    const float want = static_cast<float>(testing::reference_values(loss)[0]);
    loss.backward();
    opt.step();
    const runtime::ExecStats before = runtime::exec_stats();
    const float got = loss.item<float>();
    const runtime::ExecStats after = runtime::exec_stats();
    EXPECT_EQ(after.kernels_launched, before.kernels_launched) << "step " << step;
    EXPECT_EQ(after.library_calls, before.library_calls) << "step " << step;
    EXPECT_NEAR(got, want, 1e-5 * std::max(1.0f, std::fabs(want))) << "step " << step;
    (step == 0 ? first : last) = got;
  }
  EXPECT_LT(last, first);
}

TEST(Training, LargeParametersAreUpdatedAloneAndSmallOnesTogether) {
  // The MLP 784-256-10: the first weight (200,704 elements) is a bucket of its own, the second
  // weight and both biases share one flat vector; each bucket's new m, v and parameters are one
  // multi-output kernel: two kernels, not 4 x 3.
  manual_seed(7);
  std::vector<Tensor> params = {randn({784, 256}), randn({256}), randn({256, 10}), randn({10})};
  for (Tensor& p : params) p = (p * 0.05f).detach().requires_grad_();
  eval(params);
  Adam opt(params, AdamOptions(1e-3));
  uint64_t kernels = 0;
  for (int step = 0; step < 3; ++step) {
    std::vector<Tensor> grads;
    for (const Tensor& p : params) grads.push_back(p.mutable_grad() = randn(p.shape()));
    eval(grads);
    const runtime::ExecStats before = runtime::exec_stats();
    opt.step();
    const runtime::ExecStats after = runtime::exec_stats();
    kernels = after.kernels_launched - before.kernels_launched;
  }
  EXPECT_EQ(kernels, 2u);
}

TEST(Training, AReplacedParameterValueIsUsed) {
  // Something else (a load, a user) swaps in a new value between steps: the optimizer updates
  // that value, not its own copy.
  Tensor a = param(kStart);
  Tensor b = param({4.f, 5.f});
  SGD opt({a, b}, SGDOptions(0.5).momentum(0.5));
  RefSGD ra{0.5, 0.5}, rb{0.5, 0.5};
  Vec wa = as_double(kStart), wb = {4, 5};
  for (int k = 0; k < 4; ++k) {
    if (k == 2) {
      const std::vector<float> fresh = {7.f, 8.f, 9.f};
      a.impl()->set_node(from_vector(fresh).impl()->node());
      wa = as_double(fresh);
    }
    set_grad(a, kGrads[k]);
    set_grad(b, {kGrads[k][0], kGrads[k][2]});
    opt.step();
    ra.step(wa, as_double(kGrads[k]));
    rb.step(wb, {kGrads[k][0], kGrads[k][2]});
    expect_near(values(a), wa);
    expect_near(values(b), wb);
  }
  EXPECT_TRUE(a.requires_grad());
}

TEST(Training, AdamUpdatesManyParametersLikeTheReference) {
  // More parameters than one flat vector holds, odd sizes, and parameters that skip steps.
  manual_seed(8);
  std::vector<Tensor> params;
  std::vector<Vec> want;
  std::vector<RefAdam> refs;
  for (int i = 0; i < 19; ++i) {
    // Parameter 5 is large enough to be updated on its own.
    const std::vector<int64_t> shape =
        i == 5 ? std::vector<int64_t>{70, 80} : std::vector<int64_t>{i % 5 + 1, i % 3 + 2};
    params.push_back(randn(shape).detach().requires_grad_());
    want.push_back(values(params.back()));
    refs.push_back(RefAdam{0.01, 0.9, 0.999, 1e-8, 0.01, true});
  }
  Adam opt(params, AdamOptions(0.01).weight_decay(0.01).amsgrad(true));
  for (int step = 0; step < 4; ++step) {
    opt.zero_grad();
    for (size_t i = 0; i < params.size(); ++i) {
      if ((i + step) % 4 == 0) continue;  // no gradient this step
      params[i].mutable_grad() = randn(params[i].shape());
      refs[i].step(want[i], values(params[i].grad()));
    }
    opt.step();
    for (size_t i = 0; i < params.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(step) + " parameter " + std::to_string(i));
      expect_near(values(params[i]), want[i]);
    }
  }
}

TEST(Training, MemoryStaysFlat) {
  manual_seed(9);
  Mlp m(32);
  Data d;
  Adam opt(m.params(), AdamOptions(0.01));
  for (int i = 0; i < 20; ++i) train_step(opt, m, d);
  const runtime::MemoryStats warm = runtime::cpu_pool().stats();
  for (int i = 0; i < 10000; ++i) train_step(opt, m, d);  // the 10,000 steps
  const runtime::MemoryStats later = runtime::cpu_pool().stats();
  EXPECT_LE(later.allocated_bytes, warm.allocated_bytes);
  EXPECT_LE(later.reserved_bytes, warm.reserved_bytes);
  EXPECT_LE(later.live_buffers, warm.live_buffers);
}

TEST(Training, MemoryStaysFlatWithMomentumUpdatedInPlace) {
  // SGD with momentum on a weight large enough to be updated alone, whose gradient is a product:
  // its momentum buffer is accumulated in place (a donated buffer) every step.
  manual_seed(10);
  nn::Sequential model(nn::Linear(64, 128), nn::ReLU(), nn::Linear(128, 1));
  SGD opt(model->parameters(), SGDOptions(0.01).momentum(0.9));
  Tensor x = randn({32, 64}), y = randn({32, 1});
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = nn::functional::mse_loss(model(x), y);
    loss.backward();
    opt.step();
    return loss.item<float>();
  };
  const float first = step();
  for (int i = 0; i < 20; ++i) step();
  const runtime::MemoryStats warm = runtime::cpu_pool().stats();
  auto buffer_data = [&] { return opt.param_state(0)[0].second.impl()->node()->buffer()->data(); };
  const void* buffer = buffer_data();
  for (int i = 0; i < 3000; ++i) step();
  const runtime::MemoryStats later = runtime::cpu_pool().stats();
  EXPECT_EQ(buffer_data(), buffer) << "the momentum buffer was not updated in place";
  EXPECT_LE(later.allocated_bytes, warm.allocated_bytes);
  EXPECT_LE(later.reserved_bytes, warm.reserved_bytes);
  EXPECT_LE(later.live_buffers, warm.live_buffers);
  EXPECT_LT(step(), first);
}

// ---- state_dict ---------------------------------------------------------------------------------

TEST(StateDict, RoundTripContinuesIdentically) {
  Tensor a = param(kStart);
  Tensor b = param({4.f, 5.f});
  Adam opt({a, b}, AdamOptions(0.01).amsgrad(true));
  for (int k = 0; k < 2; ++k) {
    set_grad(a, kGrads[k]);
    set_grad(b, {kGrads[k][1], kGrads[k][2]});
    opt.step();
  }
  opt.set_lr(0.02);
  const NamedTensors state = opt.state_dict();
  std::vector<std::string> names;
  for (const auto& [name, t] : state) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"param_groups.0.lr", "state.0.step", "state.0.exp_avg",
                                             "state.0.exp_avg_sq", "state.0.max_exp_avg_sq",
                                             "state.1.step", "state.1.exp_avg",
                                             "state.1.exp_avg_sq", "state.1.max_exp_avg_sq"}));

  // A second optimizer over copies of the parameters, restored from the state.
  Tensor a2 = a.detach().clone().requires_grad_();
  Tensor b2 = b.detach().clone().requires_grad_();
  Adam restored({a2, b2}, AdamOptions(0.5).amsgrad(true));
  restored.load_state_dict(state);
  EXPECT_DOUBLE_EQ(restored.lr(), 0.02);
  EXPECT_EQ(restored.step_count(1), 2);
  for (int k = 2; k < 4; ++k) {
    set_grad(a, kGrads[k]);
    set_grad(b, {kGrads[k][1], kGrads[k][2]});
    set_grad(a2, kGrads[k]);
    set_grad(b2, {kGrads[k][1], kGrads[k][2]});
    opt.step();
    restored.step();
    expect_near(values(a2), values(a), 1e-7);
    expect_near(values(b2), values(b), 1e-7);
  }
}

TEST(StateDict, BadStateThrowsAndChangesNothing) {
  Tensor p = param(kStart);
  SGD opt({p}, SGDOptions(0.1).momentum(0.9));
  set_grad(p, kGrads[0]);
  opt.step();
  const NamedTensors good = opt.state_dict();
  const Vec buffer = values(opt.param_state(0)[0].second);
  auto with = [&](const std::string& name, const Tensor& t) {
    NamedTensors s = good;
    for (auto& [n, v] : s) {
      if (n == name) v = t;
    }
    return s;
  };
  auto without = [&](const std::string& name) {
    NamedTensors s;
    for (const auto& e : good) {
      if (e.first != name) s.push_back(e);
    }
    return s;
  };
  std::vector<NamedTensors> bad = {
      with("state.0.momentum_buffer", zeros({4})),                      // shape
      with("state.0.momentum_buffer", zeros({3}, DType::Float64)),      // dtype
      with("state.0.step", from_vector(std::vector<float>{1.f}, {})),   // step dtype
      with("state.0.step", from_vector(std::vector<int64_t>{-1}, {})),  // negative step
      with("param_groups.0.lr", from_vector(std::vector<double>{-1}, {})),
      without("param_groups.0.lr"),
      without("state.0.momentum_buffer"),  // partial state
  };
  NamedTensors unknown = good;
  unknown.emplace_back("state.0.exp_avg", zeros({3}));
  bad.push_back(unknown);
  NamedTensors out_of_range = good;
  out_of_range.emplace_back("state.7.step", from_vector(std::vector<int64_t>{1}, {}));
  bad.push_back(out_of_range);
  NamedTensors duplicate = good;
  duplicate.push_back(good.front());
  bad.push_back(duplicate);
  NamedTensors garbage = good;
  garbage.emplace_back("momentum", zeros({3}));
  bad.push_back(garbage);
  for (size_t k = 0; k < bad.size(); ++k) {
    EXPECT_THROW(opt.load_state_dict(bad[k]), Error) << "case " << k;
    EXPECT_EQ(opt.step_count(0), 1);
    EXPECT_DOUBLE_EQ(opt.lr(), 0.1);
    expect_near(values(opt.param_state(0)[0].second), buffer);
  }
  // The good one loads; an empty state resets.
  opt.load_state_dict(good);
  EXPECT_EQ(opt.step_count(0), 1);
  opt.load_state_dict({{"param_groups.0.lr", from_vector(std::vector<double>{0.3}, {})}});
  EXPECT_EQ(opt.step_count(0), 0);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.3);
}

}  // namespace
}  // namespace smelt::optim

namespace smelt::optim {
namespace {

TEST(StateFile, SaveAndLoadRoundTripAndBadFilesChangeNothing) {
  const std::string path = ::testing::TempDir() + "optim_state_test.smelt";
  Tensor p = param(kStart);
  SGD opt({p}, SGDOptions(0.1).momentum(0.9));
  set_grad(p, kGrads[0]);
  opt.step();
  opt.set_lr(0.05);
  save(opt, path);

  Tensor q = p.detach().clone().requires_grad_();
  SGD restored({q}, SGDOptions(0.1).momentum(0.9));
  load(restored, path);
  EXPECT_DOUBLE_EQ(restored.lr(), 0.05);
  EXPECT_EQ(restored.step_count(0), 1);
  set_grad(p, kGrads[1]);
  set_grad(q, kGrads[1]);
  opt.step();
  restored.step();
  expect_near(values(q), values(p), 1e-7);

  // A truncated file, and a state of another optimizer kind: errors, nothing changed.
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size() / 2);
  }
  Adam adam({q}, AdamOptions(0.01));
  EXPECT_THROW(load(adam, path), Error);
  save(restored, path);
  EXPECT_THROW(load(adam, path), Error);  // momentum_buffer is no Adam state
  EXPECT_EQ(adam.step_count(0), 0);
  EXPECT_DOUBLE_EQ(adam.lr(), 0.01);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace smelt::optim

namespace smelt::optim {
namespace {

TEST(Cuda, AdamAndSGDOnTheDeviceMatchTheCpu) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  manual_seed(12);
  // Two small parameters (one flat vector) and one large (on its own).
  const std::vector<std::vector<int64_t>> shapes = {{3, 5}, {7}, {80, 70}};
  std::vector<Tensor> cpu, dev;
  for (const auto& s : shapes) {
    Tensor v = randn(s);
    cpu.push_back(v.detach().clone().requires_grad_());
    dev.push_back(v.cuda().requires_grad_());
  }
  Adam cpu_adam({cpu[0], cpu[2]}, AdamOptions(0.01).weight_decay(0.1).amsgrad(true));
  Adam dev_adam({dev[0], dev[2]}, AdamOptions(0.01).weight_decay(0.1).amsgrad(true));
  SGD cpu_sgd({cpu[1]}, SGDOptions(0.1).momentum(0.9).nesterov(true));
  SGD dev_sgd({dev[1]}, SGDOptions(0.1).momentum(0.9).nesterov(true));
  for (int step = 0; step < 4; ++step) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor g = randn(shapes[i]);
      cpu[i].mutable_grad() = g;
      dev[i].mutable_grad() = g.cuda();
    }
    cpu_adam.step();
    dev_adam.step();
    cpu_sgd.step();
    dev_sgd.step();
    for (size_t i = 0; i < shapes.size(); ++i) {
      EXPECT_EQ(dev[i].device(), Device::cuda());
      expect_near(values(dev[i]), values(cpu[i]), 1e-5);
    }
  }
}

}  // namespace
}  // namespace smelt::optim
