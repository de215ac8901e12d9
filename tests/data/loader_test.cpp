// Datasets, collation and the DataLoader: order, shuffling by seed and epoch, drop_last, partial
// batches, custom collate, workers, errors.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/frontend/frontend_testing.h"

namespace smelt::data {
namespace {

using smelt::testing::expect_error;

// n examples: data[i] = {i, 10 i} (Float32 [2]), target i (Int64).
TensorDataset numbered(int64_t n) {
  std::vector<float> data;
  std::vector<int64_t> targets;
  for (int64_t i = 0; i < n; ++i) {
    data.push_back(static_cast<float>(i));
    data.push_back(static_cast<float>(10 * i));
    targets.push_back(i);
  }
  return TensorDataset(from_vector(data, {n, 2}), from_vector(targets));
}

// Every batch's targets, in order.
std::vector<std::vector<int64_t>> epoch_targets(DataLoader& loader) {
  std::vector<std::vector<int64_t>> out;
  for (auto& batch : loader) out.push_back(batch.target.to_vector<int64_t>());
  return out;
}

std::vector<int64_t> flat(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// ---- TensorDataset ------------------------------------------------------------------------------

TEST(TensorDataset, ExamplesAreRows) {
  const TensorDataset ds = numbered(5);
  EXPECT_EQ(ds.size(), 5);
  const Example e = ds.get(3);
  testing::expect_tensor(e.data, {2}, {3, 30});
  EXPECT_EQ(e.target.shape(), std::vector<int64_t>{});
  EXPECT_EQ(e.target.item<int64_t>(), 3);
  const Example b = ds.get_batch({4, 0, 4});
  testing::expect_tensor(b.data, {3, 2}, {4, 40, 0, 0, 4, 40});
  EXPECT_EQ(b.target.to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 4}));
}

TEST(TensorDataset, LazyInputsAndHigherRanks) {
  // A pending graph is realized once, at construction.
  Tensor images = arange(0, 24, 1, DType::Float32).reshape({3, 2, 2, 2}) * 2.f;
  TensorDataset ds(images, arange(0, 3));
  testing::expect_tensor(ds.get(1).data, {2, 2, 2}, {16, 18, 20, 22, 24, 26, 28, 30});
  EXPECT_EQ(ds.get_batch({2, 1}).data.shape(), (std::vector<int64_t>{2, 2, 2, 2}));
}

TEST(TensorDataset, Errors) {
  expect_error(
      [] {
        TensorDataset(zeros({4, 3}), zeros({5}));
      },
      {"TensorDataset: data has 4 examples", "[4, 3]", "targets has 5", "[5]"});
  expect_error([] { TensorDataset(zeros({}), zeros({1})); }, {"need at least one dim"});
  expect_error([] { TensorDataset(Tensor(), zeros({1})); }, {"data tensor is undefined"});
  const TensorDataset ds = numbered(3);
  expect_error([&] { ds.get(3); }, {"TensorDataset: index 3 is out of range for 3 examples"});
  expect_error([&] { ds.get(-1); }, {"index -1 is out of range"});
  expect_error([&] { ds.get_batch({0, 7}); }, {"index 7 is out of range"});
}

// ---- default_collate ----------------------------------------------------------------------------

TEST(DefaultCollate, StacksDataAndTargets) {
  std::vector<Example> examples = {{tensor({1.f, 2.f}), scalar_tensor(int64_t{7})},
                                   {tensor({3.f, 4.f}) * 1.f, scalar_tensor(int64_t{8})}};
  const Example b = default_collate(examples);
  testing::expect_tensor(b.data, {2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(b.target.shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(b.target.to_vector<int64_t>(), (std::vector<int64_t>{7, 8}));
  // Without targets.
  const Example d = default_collate({{tensor({1.f})}, {tensor({2.f})}});
  EXPECT_FALSE(d.target.defined());
  testing::expect_tensor(d.data, {2, 1}, {1, 2});
}

TEST(DefaultCollate, Errors) {
  expect_error([] { default_collate({}); }, {"default_collate: no examples"});
  expect_error(
      [] {
        default_collate({{zeros({2})}, {zeros({3})}});
      },
      {"example 1's data is f32 [3]", "example 0's is f32 [2]", "custom collate"});
  expect_error(
      [] {
        default_collate({{zeros({2}), zeros({})}, {zeros({2})}});
      },
      {"example 1 has no target"});
}

// ---- DataLoader ---------------------------------------------------------------------------------

TEST(DataLoader, InOrderWithPartialLastBatch) {
  const TensorDataset ds = numbered(10);
  DataLoader loader(ds, DataLoaderOptions().batch_size(4));
  EXPECT_EQ(loader.size(), 3);
  std::vector<std::vector<int64_t>> batches;
  for (auto& batch : loader) {
    EXPECT_EQ(batch.data.dim(), 2);
    EXPECT_EQ(batch.data.size(0), batch.target.size(0));
    batches.push_back(batch.target.to_vector<int64_t>());
  }
  EXPECT_EQ(batches, (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_EQ(loader.epoch(), 0);
  // The data travels with its targets.
  auto it = loader.begin();
  ++it;
  testing::expect_tensor(it->data, {4, 2}, {4, 40, 5, 50, 6, 60, 7, 70});
}

TEST(DataLoader, DropLast) {
  const TensorDataset ds = numbered(10);
  DataLoader loader(ds, DataLoaderOptions(4).drop_last(true));
  EXPECT_EQ(loader.size(), 2);
  EXPECT_EQ(epoch_targets(loader), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  // An exact multiple loses nothing; a dataset smaller than a batch gives no batch.
  DataLoader exact(numbered(8), DataLoaderOptions(4).drop_last(true));
  EXPECT_EQ(exact.size(), 2);
  DataLoader none(numbered(3), DataLoaderOptions(4).drop_last(true));
  EXPECT_EQ(none.size(), 0);
  EXPECT_TRUE(none.begin() == none.end());
  DataLoader one(numbered(3), DataLoaderOptions(4));
  EXPECT_EQ(epoch_targets(one), (std::vector<std::vector<int64_t>>{{0, 1, 2}}));
}

TEST(DataLoader, EmptyDataset) {
  DataLoader loader(TensorDataset(zeros({0, 2}), zeros({0}, DType::Int64)), DataLoaderOptions(4));
  EXPECT_EQ(loader.size(), 0);
  int batches = 0;
  for (auto& batch : loader) {
    (void)batch;
    ++batches;
  }
  EXPECT_EQ(batches, 0);
}

TEST(DataLoader, ShuffleIsAPermutationNewEachEpochAndFixedBySeed) {
  const TensorDataset ds = numbered(100);
  DataLoader a(ds, DataLoaderOptions().batch_size(16).shuffle(true).seed(42));
  DataLoader b(ds, DataLoaderOptions().batch_size(16).shuffle(true).seed(42));
  DataLoader c(ds, DataLoaderOptions().batch_size(16).shuffle(true).seed(43));
  const std::vector<int64_t> a0 = flat(epoch_targets(a)), a1 = flat(epoch_targets(a));
  const std::vector<int64_t> b0 = flat(epoch_targets(b)), b1 = flat(epoch_targets(b));
  const std::vector<int64_t> c0 = flat(epoch_targets(c));
  std::vector<int64_t> sorted = a0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(100);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);  // every example once
  EXPECT_NE(a0, all);      // not the dataset's order
  EXPECT_EQ(a0, b0);       // same seed, same epoch: same order
  EXPECT_EQ(a1, b1);
  EXPECT_NE(a0, a1);  // a new order each epoch
  EXPECT_NE(a0, c0);  // another seed, another order
  EXPECT_EQ(a.epoch(), 1);

  // set_epoch replays an epoch.
  a.set_epoch(1);
  EXPECT_EQ(flat(epoch_targets(a)), a1);
  a.set_epoch(0);
  EXPECT_EQ(flat(epoch_targets(a)), a0);
}

TEST(DataLoader, UnseededShuffleFollowsManualSeed) {
  const TensorDataset ds = numbered(50);
  manual_seed(7);
  DataLoader a(ds, DataLoaderOptions(10).shuffle(true));
  manual_seed(7);
  DataLoader b(ds, DataLoaderOptions(10).shuffle(true));
  EXPECT_EQ(epoch_targets(a), epoch_targets(b));
}

TEST(DataLoader, CustomCollate) {
  const TensorDataset ds = numbered(5);
  std::atomic<int> calls{0};
  DataLoader loader(ds, DataLoaderOptions(2).collate([&](std::vector<Example> examples) {
    ++calls;
    // Sums each batch's data instead of stacking it, and counts the examples.
    Tensor sum = examples[0].data;
    for (size_t i = 1; i < examples.size(); ++i) sum = sum + examples[i].data;
    return Example{sum, scalar_tensor(static_cast<int64_t>(examples.size()))};
  }));
  std::vector<std::vector<double>> sums;
  std::vector<int64_t> counts;
  for (auto& batch : loader) {
    sums.push_back(batch.data.to_vector<double>());
    counts.push_back(batch.target.item<int64_t>());
  }
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(sums, (std::vector<std::vector<double>>{{1, 10}, {5, 50}, {4, 40}}));
  EXPECT_EQ(counts, (std::vector<int64_t>{2, 2, 1}));
}

TEST(DataLoader, WorkersGiveTheSameBatches) {
  // Random transforms too: each batch's draws are seeded by (seed, epoch, batch), whichever
  // thread makes it.
  Tensor images = rand({64, 1, 4, 4});
  const TensorDataset base(images, arange(0, 64));
  const TransformDataset ds(base, transforms::Compose({transforms::RandomHorizontalFlip(),
                                                       transforms::RandomCrop(4, 1)}));
  auto run = [&](int workers, int prefetch) {
    DataLoader loader(
        ds,
        DataLoaderOptions(6).shuffle(true).seed(5).num_workers(workers).prefetch_factor(prefetch));
    std::vector<std::vector<float>> out;
    for (int epoch = 0; epoch < 2; ++epoch) {
      for (auto& batch : loader) {
        out.push_back(batch.data.to_vector<float>());
        std::vector<int64_t> t = batch.target.to_vector<int64_t>();
        out.push_back(std::vector<float>(t.begin(), t.end()));
      }
    }
    return out;
  };
  const auto sync = run(0, 2);
  EXPECT_EQ(sync.size(), 2u * 2 * 11);
  EXPECT_EQ(run(1, 1), sync);
  EXPECT_EQ(run(1, 4), sync);
  EXPECT_EQ(run(3, 2), sync);
}

TEST(DataLoader, WorkersPrefetchAheadOfTheLoopWithinTheirWindow) {
  // Counts the examples read. While the loop holds batch 0, the workers make the next
  // num_workers * prefetch_factor batches and no more; without workers nothing runs ahead.
  struct Counting : Dataset {
    std::shared_ptr<std::atomic<int>> reads = std::make_shared<std::atomic<int>>(0);
    int64_t size() const override { return 40; }
    Example get(int64_t i) const override {
      ++*reads;
      return {full({1}, static_cast<float>(i)), scalar_tensor(i)};
    }
  };
  // Waits up to 10 s for `reads` to reach `want`, then gives it 50 ms to overshoot.
  auto settle = [](const std::atomic<int>& reads, int want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (reads.load() < want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return reads.load();
  };
  for (int workers : {0, 1, 2}) {
    const Counting ds;
    DataLoader loader(ds, DataLoaderOptions(2).num_workers(workers).prefetch_factor(2));
    std::vector<int64_t> seen;
    int64_t batch_index = 0;
    for (auto& batch : loader) {
      if (batch_index == 0) {
        // Batch 0 plus the window: (1 + 2 * workers) batches of 2 examples.
        const int want = 2 * (1 + 2 * workers);
        EXPECT_EQ(settle(*ds.reads, want), want) << "workers " << workers;
      }
      for (int64_t t : batch.target.to_vector<int64_t>()) seen.push_back(t);
      ++batch_index;
    }
    std::vector<int64_t> all(40);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "workers " << workers;
    EXPECT_EQ(ds.reads->load(), 40);
  }
}

TEST(DataLoader, BreakingOutAndRestarting) {
  const TensorDataset ds = numbered(20);
  DataLoader loader(ds, DataLoaderOptions(3).num_workers(2));
  for (auto& batch : loader) {
    EXPECT_EQ(batch.target.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
    break;  // the workers of this epoch are stopped by the next begin()
  }
  EXPECT_EQ(flat(epoch_targets(loader)).size(), 20u);
  EXPECT_EQ(loader.epoch(), 1);
}

TEST(DataLoader, ExceptionsReachTheLoop) {
  struct Failing : Dataset {
    int64_t size() const override { return 6; }
    Example get(int64_t i) const override {
      if (i == 4) throw Error("bad example 4");
      return {full({1}, 1.f), scalar_tensor(i)};
    }
  };
  for (int workers : {0, 2}) {
    DataLoader loader(Failing(), DataLoaderOptions(2).num_workers(workers));
    int batches = 0;
    try {
      for (auto& batch : loader) {
        (void)batch;
        ++batches;
      }
      ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "bad example 4");
    }
    EXPECT_EQ(batches, 2) << "workers " << workers;
    // The loader is usable again.
    EXPECT_NO_THROW(loader.begin());
  }
}

TEST(DataLoader, OwnsTemporariesAndSharesPointers) {
  DataLoader owned(numbered(4), DataLoaderOptions(4));
  EXPECT_EQ(flat(epoch_targets(owned)), (std::vector<int64_t>{0, 1, 2, 3}));
  auto shared = std::make_shared<TensorDataset>(numbered(3));
  DataLoader from_ptr(shared, DataLoaderOptions(2));
  EXPECT_EQ(&from_ptr.dataset(), shared.get());
  // Movable and usable as a value type.
  std::vector<DataLoader> loaders;
  loaders.push_back(std::move(owned));
  EXPECT_EQ(loaders[0].size(), 1);
  EXPECT_EQ(flat(epoch_targets(loaders[0])), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(DataLoader, BadOptions) {
  const TensorDataset ds = numbered(4);
  expect_error([&] { DataLoader(ds, DataLoaderOptions(0)); },
               {"DataLoader: batch_size must be at least 1, got 0"});
  expect_error([&] { DataLoader(ds, DataLoaderOptions().num_workers(-1)); },
               {"num_workers must be 0", "got -1"});
  expect_error([&] { DataLoader(ds, DataLoaderOptions().prefetch_factor(0)); },
               {"prefetch_factor must be at least 1"});
  DataLoader loader(ds);
  expect_error([&] { *loader.end(); }, {"past the end"});
}

TEST(DataLoader, ApiExampleCompiles) {
  // API.md's lines, verbatim.
  Tensor images = rand({130, 1, 28, 28});
  Tensor labels = randint(0, 10, {130});
  data::TensorDataset ds(images, labels);
  auto loader = data::DataLoader(ds, data::DataLoaderOptions().batch_size(64).shuffle(true));
  std::vector<int64_t> sizes;
  for (auto& batch : loader) {
    EXPECT_EQ(batch.data.dim(), 4);
    sizes.push_back(batch.target.size(0));
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{64, 64, 2}));
  auto& [x, y] = *loader.begin();
  EXPECT_EQ(x.shape(), (std::vector<int64_t>{64, 1, 28, 28}));
  EXPECT_EQ(y.dtype(), DType::Int64);
}

TEST(DataLoader, GatherIsFastForALargeDataset) {
  // An epoch of 60,000 examples of 784 floats in batches of 128 is 469 gathers of 400 KB: well
  // under a second, not dominated by per-example overhead.
  const TensorDataset ds(zeros({60000, 1, 28, 28}) + 1.f, zeros({60000}, DType::Int64));
  DataLoader loader(ds, DataLoaderOptions(128).shuffle(true).seed(3));
  const auto start = std::chrono::steady_clock::now();
  int64_t n = 0;
  for (auto& batch : loader) n += batch.data.size(0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(n, 60000);
  EXPECT_LT(seconds, 2.0);
}

}  // namespace
}  // namespace smelt::data
