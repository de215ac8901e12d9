// The LibTorch column of the compiler benchmarks: the same workloads as compiler_bench.cpp, run
// eagerly by LibTorch (CPU). Built only when CMake finds LibTorch (find_package(Torch) or
// -DSMELT_TORCH_ROOT=<site-packages>/torch, see bench/CMakeLists.txt); never required.
#ifdef SMELT_HAVE_TORCH

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdint>

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

}  // namespace

#endif  // SMELT_HAVE_TORCH
