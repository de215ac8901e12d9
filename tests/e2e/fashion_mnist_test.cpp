// End to end on the real data: the introduction's training loop (DataLoader, Sequential MLP,
// CrossEntropyLoss, Adam) on a Fashion-MNIST subset must learn — the loss falls and the test
// accuracy beats chance (10%) by a wide margin — and memory must not grow from step to step.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <filesystem>

#include "runtime/memory_pool.h"

namespace smelt {
namespace {

constexpr const char* kRoot = "/usr/share/datasets/fashion-mnist";

TEST(FashionMnist, AnMlpLearnsOnASubset) {
  if (!std::filesystem::exists(kRoot)) GTEST_SKIP() << kRoot << " is missing";
  manual_seed(0);
  data::FashionMNIST train_full(kRoot, /*train=*/true);
  data::FashionMNIST test_full(kRoot, /*train=*/false);
  data::TensorDataset train(train_full.images().slice(0, 0, 12000),
                            train_full.targets().slice(0, 0, 12000));
  data::TensorDataset test(test_full.images().slice(0, 0, 2000),
                           test_full.targets().slice(0, 0, 2000));
  data::DataLoader loader(train, data::DataLoaderOptions().batch_size(128).shuffle(true));

  nn::Sequential model(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  optim::Adam opt(model->parameters(), optim::AdamOptions(2e-3));
  nn::CrossEntropyLoss loss_fn;

  float first_loss = -1, last_loss = -1;
  runtime::MemoryStats after_first_epoch;
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (auto& batch : loader) {
      opt.zero_grad();
      Tensor loss = loss_fn(model(batch.data), batch.target);
      loss.backward();
      opt.step();
      last_loss = loss.item<float>();
      if (first_loss < 0) first_loss = last_loss;
    }
    if (epoch == 0) after_first_epoch = runtime::cpu_pool().stats();
  }
  // Flat memory: the second epoch allocates nothing new from the system.
  EXPECT_LE(runtime::cpu_pool().stats().reserved_bytes,
            after_first_epoch.reserved_bytes + (1 << 20));
  EXPECT_LT(last_loss, 0.6f * first_loss) << "first " << first_loss << ", last " << last_loss;

  NoGradGuard no_grad;
  model->eval();
  Tensor logits = model(test.data());
  const double accuracy = (logits.argmax(1) == test.targets()).sum().item<int64_t>() / 2000.0;
  EXPECT_GT(accuracy, 0.75) << "test accuracy " << accuracy;
}

}  // namespace
}  // namespace smelt
