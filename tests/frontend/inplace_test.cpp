// In-place operations: values, sharing between handles, broadcasting and dtype rules, autograd
// (leaves only under NoGradGuard; non-leaves differentiate through), and the manual SGD loop an
// introduction to PyTorch writes.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <vector>

#include "compiler/compile.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

TEST(InPlace, ArithmeticUpdatesEveryHandle) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  Tensor alias = a;  // a copy of the handle shares the value, as in PyTorch
  a.add_(1.f);
  a.mul_(tensor({2.f, 3.f, 4.f}));
  a.sub_(tensor({1.f}));  // broadcasts
  a.div_(2);
  expect_tensor(alias, {3}, {1.5, 4, 7.5});
  a += 1.f;
  a -= tensor({0.5f, 0.5f, 0.5f});
  a *= 2.f;
  a /= tensor({1.f, 2.f, 3.f});
  expect_tensor(a, {3}, {4, 4.5, 5.33333333}, 1e-6);
  a.clamp_(4.25, 5.f);
  expect_tensor(alias, {3}, {4.25, 4.5, 5});
  Tensor r = tensor({-1.f, 0.f, 2.f});
  r.relu_();
  expect_tensor(r, {3}, {0, 0, 2});
  r.fill_(7);
  expect_tensor(r, {3}, {7, 7, 7});
  r.zero_();
  expect_tensor(r, {3}, {0, 0, 0});
  r.copy_(tensor({1.0, 2.0, 3.0}));  // converts Float64 into the Float32 tensor
  EXPECT_EQ(r.dtype(), DType::Float32);
  expect_tensor(r, {3}, {1, 2, 3});
  r.copy_(scalar_tensor(5.f));  // broadcasts
  expect_tensor(r, {3}, {5, 5, 5});
}

TEST(InPlace, ViewsTakenBeforeKeepTheOldValue) {
  Tensor a = tensor({1.f, 2.f, 3.f, 4.f});
  Tensor head = a.slice(0, 0, 2);
  a.add_(10.f);
  expect_tensor(head, {2}, {1, 2});  // documented difference from PyTorch's shared storage
  expect_tensor(a, {4}, {11, 12, 13, 14});
}

TEST(InPlace, IntegerTensorsAndErrors) {
  Tensor i = arange(0, 4);  // Int64
  i.add_(2);
  i.mul_(3);
  expect_tensor(i, {4}, {6, 9, 12, 15});
  EXPECT_EQ(i.dtype(), DType::Int64);
  expect_error([&] { i.add_(0.5); }, {"add_", "f32", "cannot be stored in place into i64 [4]"});
  expect_error([&] { i.fill_(1.5); }, {"fill_", "floating", "i64 [4]"});
  Tensor f = zeros({2, 3});
  expect_error([&] { f.add_(ones({3, 3})); }, {"add"});  // does not broadcast at all
  expect_error(
      [&] {
        f.add_(ones({4, 2, 3}));
      },
      {"add_", "[4, 2, 3]", "f32 [2, 3]", "must broadcast to the tensor's shape"});
  expect_error([&] { f.copy_(ones({4})); }, {"copy_", "f32 [4]", "does not broadcast", "[2, 3]"});
  Tensor undefined;
  expect_error([&] { undefined.zero_(); }, {"zero_", "undefined"});
  // A failed in-place op leaves the value as it was.
  expect_tensor(f, {2, 3}, {0, 0, 0, 0, 0, 0});
}

TEST(InPlace, AutogradRules) {
  Tensor w = tensor({1.f, 2.f}).requires_grad_();
  expect_error([&] { w.sub_(1.f); }, {"sub_", "leaf that requires grad", "NoGradGuard"});
  expect_tensor(w, {2}, {1, 2});
  {
    NoGradGuard no_grad;
    w.mul_(3.f);
  }
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
  // The updated value is still the leaf gradients accumulate into.
  (w * w).sum().backward();
  expect_tensor(w.grad(), {2}, {6, 12});
  // A non-leaf changed in place: autograd differentiates through the new value.
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  Tensor y = x * 2.f;
  y.mul_(x);  // y = 2x * x
  y.sum().backward();
  expect_tensor(x.grad(), {2}, {4, 8});
  // grad().zero_() resets the accumulated gradient through the handle grad() returns.
  x.grad().zero_();
  expect_tensor(x.grad(), {2}, {0, 0});
}

TEST(InPlace, ManualSgdLoopOfAnIntroduction) {
  manual_seed(5);
  Tensor data = randn({32, 3});
  Tensor target = data.matmul(tensor({{2.f}, {-1.f}, {0.5f}})) + 0.3f;
  Tensor w = zeros({3, 1}).requires_grad_();
  Tensor b = zeros({1}).requires_grad_();
  float first = 0, last = 0;
  const uint64_t misses = compiler::compile_stats().program_misses;
  for (int step = 0; step < 200; ++step) {
    Tensor loss = (data.matmul(w) + b - target).pow(2).mean();
    loss.backward();
    {
      NoGradGuard no_grad;
      w -= w.grad() * 0.1f;
      b -= b.grad() * 0.1f;
      w.grad().zero_();
      b.grad().zero_();
    }
    const float v = loss.item<float>();
    if (step == 0) first = v;
    last = v;
  }
  EXPECT_LT(last, 1e-4f * first);
  // Reading the loss also computes the pending updates, so every step is the same one-step
  // graph over realized parameters: a few programs in all, not one per step.
  EXPECT_LE(compiler::compile_stats().program_misses - misses, 6u);
  expect_tensor(w, {3, 1}, {2, -1, 0.5}, 1e-3);
  expect_tensor(b, {1}, {0.3}, 1e-3);
}

TEST(InPlace, CopyIntoAParameterLeavesTheSourcesGradientsAlone) {
  // Copying one model's weight into another's (a target network, an EMA copy) must not make the
  // copy the owner of the source's gradients.
  manual_seed(5);
  nn::Linear source(4, 3), copy(4, 3);
  {
    NoGradGuard no_grad;
    copy->weight.copy_(source->weight);
  }
  EXPECT_EQ(copy->weight.to_vector<float>(), source->weight.to_vector<float>());
  source(randn({2, 4})).sum().backward();
  EXPECT_TRUE(source->weight.grad().defined());
  EXPECT_FALSE(copy->weight.grad().defined());
  const std::vector<float> copied = copy->weight.to_vector<float>();
  {
    NoGradGuard no_grad;
    source->weight.add_(1.0f);
  }
  EXPECT_EQ(copy->weight.to_vector<float>(), copied);
}

TEST(InPlace, LikeFactoriesKeepTheDevice) {
  Tensor t = ones({2, 2}, DType::Float64);
  EXPECT_EQ(zeros_like(t).device(), t.device());
  EXPECT_EQ(full_like(t, 3).dtype(), DType::Float64);
  expect_tensor(full_like(t, 3), {2, 2}, {3, 3, 3, 3});
}

}  // namespace
}  // namespace smelt
