// conv2d and max_pool2d as library ops (ir/ops/conv.cpp, runtime/conv.cpp): one conv layer of the
// CNN benchmark's size alone, forward and forward + backward, and a 2x2 max pool; the LibTorch
// twins are BM_Torch_Conv2d_* in bench/libtorch_bench.cpp.
//
//   BM_Conv2d_Forward          [64, 32, 14, 14] * [64, 32, 3, 3], padding 1, + bias
//   BM_Conv2d_ForwardBackward  the same, then the gradients of x, w and b of sum(y * r)
//   BM_MaxPool2d_ForwardBackward  2x2 pool of [64, 64, 14, 14] and its gradient
#include <benchmark/benchmark.h>
#include <smelt/smelt.h>

namespace {

using namespace smelt;

void BM_Conv2d_Forward(benchmark::State& state) {
  manual_seed(1);
  Tensor x = randn({64, 32, 14, 14}), w = randn({64, 32, 3, 3}) * 0.1f, b = randn({64});
  eval({x, w, b});
  for (auto _ : state) conv2d(x, w, b, 1, 1).eval();
  // 2 * N * O * OH * OW * C * KH * KW
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * 64 * 64 * 14 * 14 * 32 * 9 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Conv2d_Forward)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Conv2d_ForwardBackward(benchmark::State& state) {
  manual_seed(1);
  Tensor x = randn({64, 32, 14, 14}).requires_grad_();
  Tensor w = (randn({64, 32, 3, 3}) * 0.1f).detach().requires_grad_();
  Tensor b = randn({64}).requires_grad_();
  Tensor r = randn({64, 64, 14, 14});
  eval({x, w, b, r});
  for (auto _ : state) {
    std::vector<Tensor> g = grad({(conv2d(x, w, b, 1, 1) * r).sum()}, {x, w, b});
    eval(g);
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      3 * 2.0 * 64 * 64 * 14 * 14 * 32 * 9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Conv2d_ForwardBackward)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_MaxPool2d_ForwardBackward(benchmark::State& state) {
  manual_seed(1);
  Tensor x = randn({64, 64, 14, 14}).requires_grad_();
  Tensor r = randn({64, 64, 7, 7});
  eval({x, r});
  for (auto _ : state) grad({(max_pool2d(x, 2) * r).sum()}, {x})[0].eval();
}
BENCHMARK(BM_MaxPool2d_ForwardBackward)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
