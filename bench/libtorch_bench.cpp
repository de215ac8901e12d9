// The LibTorch column of the compiler benchmarks: the same workloads as compiler_bench.cpp, run
// eagerly by LibTorch (CPU). Built only when CMake finds LibTorch (find_package(Torch) or
// -DSMELT_TORCH_ROOT=<site-packages>/torch, see bench/CMakeLists.txt); never required.
#ifdef SMELT_HAVE_TORCH

#include <benchmark/benchmark.h>
#include <smelt/data.h>
#include <smelt/error.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bench/bench_data.h"

namespace {

constexpr int64_t kN = int64_t{1} << 24;

void BM_Torch_Chain(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  auto x = torch::randn({kN}), y = torch::randn({kN});
  for (auto _ : state) {
    auto out = torch::tanh(x * 0.5 + y) * torch::sigmoid(x) + torch::exp(-(x * x));
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.SetBytesProcessed(state.iterations() * kN * 12);
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Torch_Chain)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_Axpby(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  auto x = torch::randn({kN}), y = torch::randn({kN});
  for (auto _ : state) {
    auto out = x * 0.75 + y * -1.25;
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.SetBytesProcessed(state.iterations() * kN * 12);
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Torch_Axpby)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_Softmax(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  auto x = torch::randn({4096, 1024});
  for (auto _ : state) {
    auto out = torch::softmax(x, -1);
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.SetBytesProcessed(state.iterations() * 4096 * 1024 * 8);
  state.SetItemsProcessed(state.iterations() * 4096 * 1024);
}
BENCHMARK(BM_Torch_Softmax)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_Sum(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(6);
  auto x = torch::randn({kN});
  for (auto _ : state) {
    auto out = x.sum();
    benchmark::DoNotOptimize(out.item<float>());
  }
  state.SetBytesProcessed(state.iterations() * kN * 4);
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Torch_Sum)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_Matmul(benchmark::State& state) {
  torch::NoGradGuard ng;
  const int64_t n = state.range(0);
  torch::manual_seed(7);
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  for (auto _ : state) {
    auto out = torch::matmul(a, b);
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Torch_Matmul)
    ->ArgName("n")
    ->Arg(256)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Torch_MlpForward(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  auto x = torch::randn({128, 784});
  auto w1 = torch::randn({256, 784}), b1 = torch::randn({256});
  auto w2 = torch::randn({10, 256}), b2 = torch::randn({10});
  for (auto _ : state) {
    auto h = torch::relu(torch::matmul(x, w1.t()) + b1);
    auto out = torch::matmul(h, w2.t()) + b2;
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  double flops = 2.0 * 128 * 784 * 256 + 2.0 * 128 * 256 * 10;
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * 128);
}
BENCHMARK(BM_Torch_MlpForward)->UseRealTime()->Unit(benchmark::kMicrosecond);

// 20 tiny ops, like BM_RealizeOverhead: LibTorch's per-op dispatch overhead.
void BM_Torch_TinyOps(benchmark::State& state) {
  torch::NoGradGuard ng;
  auto x = torch::randn({4});
  for (auto _ : state) {
    auto t = x;
    for (int i = 0; i < 10; ++i) t = t * 1.0001 + x;
    benchmark::DoNotOptimize(t.data_ptr<float>());
  }
  state.counters["per_op"] = benchmark::Counter(
      double(state.iterations()) * 20, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Torch_TinyOps)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The training steps of bench/training_bench.cpp, written with LibTorch's nn and optim.
template <typename Model, typename Opt>
void torch_steps(benchmark::State& state, Model& model, Opt& opt, const torch::Tensor& x,
                 const torch::Tensor& y, bool classification) {
  auto step = [&] {
    opt.zero_grad();
    auto out = model->forward(x);
    auto loss =
        classification ? torch::nn::functional::cross_entropy(out, y) : torch::mse_loss(out, y);
    loss.backward();
    opt.step();
    return loss;
  };
  step();
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * x.size(0));
}

// Runs a benchmark body with LibTorch at `threads` intra-op threads, then restores the default:
// its best configuration for small steps is often 1 thread (OpenMP spin-waiting at 2).
class TorchThreads {
 public:
  explicit TorchThreads(int64_t threads) : saved_(torch::get_num_threads()) {
    torch::set_num_threads(static_cast<int>(threads));
  }
  ~TorchThreads() { torch::set_num_threads(saved_); }

 private:
  int saved_;
};

void BM_Torch_TrainStep_Mlp(benchmark::State& state) {
  TorchThreads threads(state.range(1));
  torch::manual_seed(1);
  auto x = torch::randn({128, 784});
  auto y = torch::randint(0, 10, {128});
  torch::nn::Sequential model(torch::nn::Linear(784, 256), torch::nn::ReLU(),
                              torch::nn::Linear(256, 10));
  if (state.range(0) == 0) {
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    torch_steps(state, model, opt, x, y, true);
  } else {
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
    torch_steps(state, model, opt, x, y, true);
  }
}
BENCHMARK(BM_Torch_TrainStep_Mlp)
    ->ArgNames({"adam", "threads"})
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Torch_TrainStep_Cnn(benchmark::State& state) {
  TorchThreads threads(state.range(0));
  torch::manual_seed(2);
  auto x = torch::randn({64, 1, 28, 28});
  auto y = torch::randint(0, 10, {64});
  torch::nn::Sequential model(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)), torch::nn::ReLU(),
      torch::nn::MaxPool2d(2), torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)),
      torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(),
      torch::nn::Linear(64 * 7 * 7, 128), torch::nn::ReLU(), torch::nn::Linear(128, 10));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
  torch_steps(state, model, opt, x, y, true);
}
BENCHMARK(BM_Torch_TrainStep_Cnn)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Torch_TrainStep_Intro(benchmark::State& state) {
  TorchThreads threads(state.range(0));
  torch::manual_seed(3);
  auto x = torch::randn({64, 10});
  auto y = x.sum(1, true) * 0.5 + 0.1;
  torch::nn::Sequential model(torch::nn::Linear(10, 50), torch::nn::ReLU(),
                              torch::nn::Linear(50, 1));
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01));
  torch_steps(state, model, opt, x, y, false);
}
BENCHMARK(BM_Torch_TrainStep_Intro)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// One epoch of the Fashion-MNIST MLP (784-256-10, Adam 1e-3, batch 128, reshuffled every
// epoch) as a LibTorch program would write it: the whole training set as one tensor, a randperm
// per epoch, index_select per batch. The images come through smelt's IDX reader (the same
// bytes as BM_Epoch_FashionMnistMlp's) so both train on identical data.
void BM_Torch_Epoch_FashionMnistMlp(benchmark::State& state) {
  TorchThreads threads(state.range(0));
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  try {
    smelt::data::FashionMNIST train(smelt::bench::kFashionMnistRoot, /*train=*/true);
    smelt::data::DataLoader all(train, smelt::data::DataLoaderOptions().batch_size(train.size()));
    for (auto& batch : all) {
      pixels = batch.data.to_vector<float>();
      labels = batch.target.to_vector<int64_t>();
    }
  } catch (const smelt::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const int64_t n = static_cast<int64_t>(labels.size());
  const torch::Tensor images = torch::from_blob(pixels.data(), {n, 784}).clone();
  const torch::Tensor targets = torch::from_blob(labels.data(), {n}, torch::kInt64).clone();
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(784, 256), torch::nn::ReLU(),
                              torch::nn::Linear(256, 10));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
  torch::Tensor loss;
  for (auto _ : state) {
    const torch::Tensor perm = torch::randperm(n);
    for (int64_t i = 0; i < n; i += 128) {
      const torch::Tensor idx = perm.slice(0, i, std::min(i + 128, n));
      opt.zero_grad();
      loss = torch::nn::functional::cross_entropy(model->forward(images.index_select(0, idx)),
                                                  targets.index_select(0, idx));
      loss.backward();
      opt.step();
    }
  }
  state.counters["loss_last"] = loss.item<float>();
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_Torch_Epoch_FashionMnistMlp)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Twins of bench/conv_bench.cpp: one conv layer of the CNN's size, and a 2x2 max pool.
void BM_Torch_Conv2d_Forward(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  auto x = torch::randn({64, 32, 14, 14}), w = torch::randn({64, 32, 3, 3}) * 0.1;
  auto b = torch::randn({64});
  for (auto _ : state) benchmark::DoNotOptimize(torch::conv2d(x, w, b, 1, 1));
}
BENCHMARK(BM_Torch_Conv2d_Forward)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_Conv2d_ForwardBackward(benchmark::State& state) {
  torch::manual_seed(1);
  auto x = torch::randn({64, 32, 14, 14}).requires_grad_();
  auto w = (torch::randn({64, 32, 3, 3}) * 0.1).detach().requires_grad_();
  auto b = torch::randn({64}).requires_grad_();
  auto r = torch::randn({64, 64, 14, 14});
  for (auto _ : state) {
    auto g = torch::autograd::grad({(torch::conv2d(x, w, b, 1, 1) * r).sum()}, {x, w, b});
    benchmark::DoNotOptimize(g);
  }
}
BENCHMARK(BM_Torch_Conv2d_ForwardBackward)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_MaxPool2d_ForwardBackward(benchmark::State& state) {
  torch::manual_seed(1);
  auto x = torch::randn({64, 64, 14, 14}).requires_grad_();
  auto r = torch::randn({64, 64, 7, 7});
  for (auto _ : state) {
    auto g = torch::autograd::grad({(torch::max_pool2d(x, 2) * r).sum()}, {x});
    benchmark::DoNotOptimize(g);
  }
}
BENCHMARK(BM_Torch_MaxPool2d_ForwardBackward)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- the index and scan ops (bench/index_ops_bench.cpp)
// ------------------------------------------

void BM_Torch_Cumsum(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  auto x = torch::randn({4096, 1024});
  for (auto _ : state) {
    auto out = torch::cumsum(x, state.range(0));
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.SetBytesProcessed(state.iterations() * 4096 * 1024 * 8);
}
BENCHMARK(BM_Torch_Cumsum)
    ->ArgName("dim")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Torch_Sort(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(2);
  auto x = torch::randn({512, 1024});
  for (auto _ : state) {
    auto [values, positions] = torch::sort(x, 1, /*descending=*/false, /*stable=*/true);
    benchmark::DoNotOptimize(values.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * 512 * 1024);
}
BENCHMARK(BM_Torch_Sort)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_TopK(benchmark::State& state) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  auto x = torch::randn({4096, 1000});
  for (auto _ : state) {
    auto [values, positions] = torch::topk(x, 5, 1);
    benchmark::DoNotOptimize(values.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * 4096 * 1000);
}
BENCHMARK(BM_Torch_TopK)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Torch_EmbeddingBackward(benchmark::State& state) {
  torch::manual_seed(4);
  auto table = torch::randn({10000, 128}).requires_grad_();
  auto idx = torch::randint(0, 10000, {640});
  auto w = torch::randn({640, 128});
  for (auto _ : state) {
    auto g = torch::autograd::grad({(table.index_select(0, idx) * w).sum()}, {table});
    benchmark::DoNotOptimize(g[0].data_ptr<float>());
  }
}
BENCHMARK(BM_Torch_EmbeddingBackward)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

#endif  // SMELT_HAVE_TORCH
