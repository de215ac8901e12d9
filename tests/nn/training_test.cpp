// End to end: an nn::Sequential MLP trained with a hand-written SGD step, updating parameters
// in place the way an optimizer does, learns a synthetic task.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <vector>

#include "frontend/tensor_impl.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

// p <- p - lr * grad, computed without recording a graph and swapped into the parameter's
// handle: it stays a leaf that requires grad, and every holder of the handle sees the update.
void sgd_step(const std::vector<Tensor>& params, float lr) {
  std::vector<Tensor> next;
  {
    NoGradGuard no_grad;
    for (const Tensor& p : params) next.push_back(p - p.grad() * lr);
  }
  eval(next);
  for (size_t i = 0; i < params.size(); ++i) params[i].impl()->set_node(next[i].impl()->node());
}

TEST(Training, RegressionMlpLossFalls) {
  manual_seed(42);
  nn::Sequential model(nn::Linear(10, 50), nn::ReLU(), nn::Linear(50, 1));
  Tensor x = randn({64, 10});
  Tensor y = (x.sum(1, true) * 0.3f + 0.5f).detach();
  nn::MSELoss mse;
  const std::vector<Tensor> params = model->parameters();
  float first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    model->zero_grad();
    Tensor loss = mse(model(x), y);
    loss.backward();
    sgd_step(params, 0.05f);
    last = loss.item<float>();
    if (step == 0) first = last;
  }
  EXPECT_LT(last, first * 0.05f) << "first " << first << " last " << last;
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.is_leaf() && p.requires_grad());
}

TEST(Training, ClassifierWithDropoutAndBatchNormBeatsChance) {
  manual_seed(7);
  // Three Gaussian blobs in 4-d, classified by an MLP with BatchNorm and Dropout.
  const int64_t n = 192, classes = 3;
  Tensor labels =
      arange(0, n, 1, DType::Int64) - (arange(0, n, 1, DType::Int64) / classes) * classes;
  labels = from_vector(labels.to_vector<int64_t>());
  Tensor centers = tensor({{2.f, 0.f, 0.f, 1.f}, {0.f, 2.f, 0.f, -1.f}, {0.f, 0.f, 2.f, 0.f}});
  Tensor onehot = (labels.unsqueeze(1) == arange(0, classes, 1, DType::Int64)).to(DType::Float32);
  Tensor x =
      from_vector((matmul(onehot, centers) + randn({n, 4}) * 0.7f).to_vector<float>(), {n, 4});
  nn::Sequential model(nn::Linear(4, 32), nn::BatchNorm1d(32), nn::ReLU(), nn::Dropout(0.1),
                       nn::Linear(32, classes));
  nn::CrossEntropyLoss ce;
  const std::vector<Tensor> params = model->parameters();
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    model->zero_grad();
    Tensor loss = ce(model(x), labels);
    loss.backward();
    sgd_step(params, 0.2f);
    last = loss.item<float>();
    if (step == 0) first = last;
  }
  EXPECT_LT(last, first * 0.5f) << "first " << first << " last " << last;
  model->eval();
  const std::vector<int64_t> predicted = model(x).argmax(1).to_vector<int64_t>();
  const std::vector<int64_t> truth = labels.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  EXPECT_GT(static_cast<double>(correct) / n, 0.85) << correct << " of " << n;  // chance: 1/3
}

}  // namespace
}  // namespace smelt
