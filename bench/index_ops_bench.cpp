// The library ops that index or scan (ir/ops/scan.cpp, ir/ops/gather.cpp; runtime/scan.cpp,
// runtime/blas.cpp): their LibTorch twins are BM_Torch_<same name> in bench/libtorch_bench.cpp.
//
//   BM_Cumsum/dim:1       cumsum of [4096, 1024] along its rows (one line per unit)
//   BM_Cumsum/dim:0       the same along its columns (blocks of 256 columns read along rows)
//   BM_Sort               sort (values and positions) of [512, 1024] along dim 1
//   BM_TopK               topk(5) of [4096, 1000] (classifier scores) along dim 1
//   BM_EmbeddingBackward  rows of a [10000, 128] table at 640 indices, forward and the table's
//                         gradient (index_select + index_add)
#include <benchmark/benchmark.h>
#include <smelt/smelt.h>

namespace {

using namespace smelt;

void BM_Cumsum(benchmark::State& state) {
  manual_seed(1);
  Tensor x = randn({4096, 1024});
  x.eval();
  for (auto _ : state) x.cumsum(state.range(0)).eval();
  state.SetBytesProcessed(state.iterations() * 4096 * 1024 * 8);
}
BENCHMARK(BM_Cumsum)->ArgName("dim")->Arg(1)->Arg(0)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Sort(benchmark::State& state) {
  manual_seed(2);
  Tensor x = randn({512, 1024});
  x.eval();
  for (auto _ : state) {
    auto [values, positions] = x.sort(1);
    eval({values, positions});
  }
  state.SetItemsProcessed(state.iterations() * 512 * 1024);
}
BENCHMARK(BM_Sort)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_TopK(benchmark::State& state) {
  manual_seed(3);
  Tensor x = randn({4096, 1000});
  x.eval();
  for (auto _ : state) {
    auto [values, positions] = x.topk(5);
    eval({values, positions});
  }
  state.SetItemsProcessed(state.iterations() * 4096 * 1000);
}
BENCHMARK(BM_TopK)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_EmbeddingBackward(benchmark::State& state) {
  manual_seed(4);
  Tensor table = randn({10000, 128}).requires_grad_();
  Tensor idx = randint(0, 10000, {640});
  Tensor w = randn({640, 128});
  eval({table, idx, w});
  for (auto _ : state) {
    std::vector<Tensor> g = grad({(table.index_select(0, idx) * w).sum()}, {table});
    eval(g);
  }
}
BENCHMARK(BM_EmbeddingBackward)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
