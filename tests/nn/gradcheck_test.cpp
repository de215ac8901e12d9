// The layers' and losses' gradients against central finite differences, in Float64.
#include "tests/common/gradcheck.h"

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <functional>
#include <vector>

namespace smelt {
namespace {

namespace F = nn::functional;

using testing::gradcheck;

TEST(GradCheck, Linear) {
  manual_seed(1);
  gradcheck([](const auto& in) { return (F::linear(in[0], in[1], in[2]).tanh()).sum(); },
            {randn({3, 4}), randn({2, 4}), randn({2})});
}

TEST(GradCheck, Conv2dAndMaxPool) {
  manual_seed(2);
  gradcheck(
      [](const auto& in) {
        return F::max_pool2d(F::conv2d(in[0], in[1], in[2], 1, 1), 2).pow(2.f).sum();
      },
      {randn({1, 2, 4, 4}), randn({3, 2, 3, 3}), randn({3})}, 1e-5);
}

TEST(GradCheck, BatchNormTraining) {
  manual_seed(3);
  gradcheck(
      [](const auto& in) {
        // No running statistics: a pure function of its inputs.
        return (F::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], /*training=*/true) * in[3])
            .sum();
      },
      {randn({4, 3, 2}), randn({3}), randn({3}), randn({4, 3, 2})}, 1e-5);
}

TEST(GradCheck, LayerNormAndEmbedding) {
  manual_seed(5);
  gradcheck(
      [](const auto& in) {
        return (F::layer_norm(in[0], {3, 2}, in[1], in[2]) * in[3]).sum();
      },
      {randn({4, 3, 2}), randn({3, 2}), randn({3, 2}), randn({4, 3, 2})}, 1e-5);
  const Tensor idx = from_vector(std::vector<int64_t>{2, 0, 2, 3, 1, 2}, {2, 3});
  gradcheck([&](const auto& in) { return (F::embedding(idx, in[0]) * in[1]).sum(); },
            {randn({4, 5}), randn({2, 3, 5})});
}

TEST(GradCheck, Losses) {
  manual_seed(4);
  const Tensor targets = from_vector(std::vector<int64_t>{2, 0, 1, 2});
  gradcheck([&](const auto& in) { return F::cross_entropy(in[0] * 3.f, targets); },
            {randn({4, 3})});
  gradcheck([&](const auto& in) { return F::nll_loss(F::log_softmax(in[0], 1), targets); },
            {randn({4, 3})});
  gradcheck([](const auto& in) { return F::mse_loss(in[0], in[1], nn::Reduction::Sum); },
            {randn({5}), randn({5})});
  gradcheck([](const auto& in) { return F::binary_cross_entropy_with_logits(in[0] * 4.f, in[1]); },
            {randn({6}), rand({6})});
}

}  // namespace
}  // namespace smelt
