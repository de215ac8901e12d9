// smelt's compiled programs against eager smelt and hand-written loops.
//
// Every smelt benchmark builds its lazy graph from realized inputs and realizes it in each
// iteration (the steady state of a training loop); one untimed warm-up realize before the loop
// compiles the program, so the timed iterations hit the program cache. "Eager" runs the same
// expression with smelt::set_eager(true): every op realizes at once through the same runtime
// (one cached program per op). The hand-written loops live in bench/reference_loops.cpp, the only
// file built with -O3 -march=native -ffast-math; they run on 1 thread and, split like smelt's
// kernels, on every thread of a pool the size of smelt's.
//
// BM_FirstCompile_Chain measures what a fresh graph costs to compile: see its comment.
#include <benchmark/benchmark.h>
#include <smelt/smelt.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bench/reference_loops.h"
#include "compiler/compile.h"
#include "runtime/program.h"
#include "runtime/thread_pool.h"

namespace {

using smelt::Tensor;

constexpr int64_t kN = int64_t{1} << 24;  // 16 Mi floats = 64 MiB per stream

// Eager mode for one benchmark's lifetime (inputs included), restored on exit.
class EagerScope {
 public:
  explicit EagerScope(bool eager) { smelt::set_eager(eager); }
  ~EagerScope() { smelt::set_eager(false); }
};

Tensor make_input(const std::vector<int64_t>& shape, uint64_t seed) {
  smelt::manual_seed(seed);
  Tensor t = smelt::randn(shape);
  t.eval();
  return t;
}

smelt::runtime::ThreadPool& ref_pool(int threads) {
  static auto* one = new smelt::runtime::ThreadPool(1);
  static auto* all =
      new smelt::runtime::ThreadPool(smelt::runtime::ThreadPool::default_num_threads());
  return threads == 1 ? *one : *all;
}

// 1 = single thread, 0 = all threads.
int threads_arg(const benchmark::State& state) { return state.range(0) == 1 ? 1 : 0; }

// Runs fn over [0, n) on the reference pool.
template <typename Fn>
void ref_parallel(const benchmark::State& state, int64_t n, Fn fn) {
  if (threads_arg(state) == 1) {
    fn(int64_t{0}, n);
  } else {
    ref_pool(0).parallel_for(n, 1 << 15, fn);
  }
}

// ---- (a) STREAM triad: the memory-bandwidth floor -----------------------------------------

void BM_Triad_HandLoop(benchmark::State& state) {
  std::vector<float> a(kN, 0.f), b(kN, 1.f), c(kN, 2.f);
  const float s = 3.f;
  for (auto _ : state) {
    ref_parallel(state, kN, [&](int64_t lo, int64_t hi) {
      smelt::bench::triad_ref(a.data(), b.data(), c.data(), s, lo, hi);
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kN * 3 * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Triad_HandLoop)
    ->ArgName("threads1")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- (b) elementwise chain: tanh(x*0.5+y) * sigmoid(x) + exp(-x*x) --------------------------

Tensor chain(const Tensor& x, const Tensor& y) {
  return smelt::tanh(x * 0.5f + y) * smelt::sigmoid(x) + smelt::exp(-(x * x));
}

void BM_Chain(benchmark::State& state) {
  EagerScope scope(state.range(0) != 0);
  Tensor x = make_input({kN}, 1), y = make_input({kN}, 2);
  chain(x, y).eval();  // warm-up: compile
  for (auto _ : state) {
    Tensor out = chain(x, y);
    out.eval();
  }
  state.SetBytesProcessed(state.iterations() * kN * 3 * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Chain)->ArgName("eager")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Chain_HandLoop(benchmark::State& state) {
  Tensor xt = make_input({kN}, 1), yt = make_input({kN}, 2);
  std::vector<float> x = xt.to_vector<float>(), y = yt.to_vector<float>(), out(kN);
  for (auto _ : state) {
    ref_parallel(state, kN, [&](int64_t lo, int64_t hi) {
      smelt::bench::chain_ref(x.data(), y.data(), out.data(), lo, hi);
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kN * 3 * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Chain_HandLoop)
    ->ArgName("threads1")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- (b2) x*a + y*b: bandwidth bound, three streams like the triad --------------------------

void BM_Axpby(benchmark::State& state) {
  EagerScope scope(state.range(0) != 0);
  Tensor x = make_input({kN}, 3), y = make_input({kN}, 4);
  const float a = 0.75f, b = -1.25f;
  (x * a + y * b).eval();
  for (auto _ : state) {
    Tensor out = x * a + y * b;
    out.eval();
  }
  state.SetBytesProcessed(state.iterations() * kN * 3 * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Axpby)->ArgName("eager")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Axpby_HandLoop(benchmark::State& state) {
  std::vector<float> x(kN, 1.f), y(kN, 2.f), out(kN);
  for (auto _ : state) {
    ref_parallel(state, kN, [&](int64_t lo, int64_t hi) {
      smelt::bench::axpby_ref(x.data(), y.data(), out.data(), 0.75f, -1.25f, lo, hi);
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kN * 3 * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Axpby_HandLoop)
    ->ArgName("threads1")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- (c) row softmax of [4096, 1024] ---------------------------------------------------------

void BM_Softmax(benchmark::State& state) {
  EagerScope scope(state.range(0) != 0);
  constexpr int64_t kRows = 4096, kCols = 1024;
  Tensor x = make_input({kRows, kCols}, 5);
  smelt::softmax(x, -1).eval();
  for (auto _ : state) {
    Tensor out = smelt::softmax(x, -1);
    out.eval();
  }
  // One read and one write of the matrix: the least any implementation moves.
  state.SetBytesProcessed(state.iterations() * kRows * kCols * 2 * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
}
BENCHMARK(BM_Softmax)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- (d) full sum of 2^24 floats ---------------------------------------------------------------

void BM_Sum(benchmark::State& state) {
  EagerScope scope(state.range(0) != 0);
  Tensor x = make_input({kN}, 6);
  x.sum().eval();
  for (auto _ : state) {
    Tensor out = x.sum();
    out.eval();
  }
  state.SetBytesProcessed(state.iterations() * kN * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Sum)->ArgName("eager")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Sum_HandLoop(benchmark::State& state) {
  std::vector<float> x(kN, 1.f);
  for (auto _ : state) {
    float total = 0;
    if (threads_arg(state) == 1) {
      total = smelt::bench::sum_ref(x.data(), 0, kN);
    } else {
      auto& pool = ref_pool(0);
      int t = pool.num_threads();
      std::vector<float> partial(t, 0.f);
      int64_t chunk = (kN + t - 1) / t;
      pool.parallel_for(t, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          int64_t b = i * chunk, e = std::min(kN, b + chunk);
          partial[i] = smelt::bench::sum_ref(x.data(), b, e);
        }
      });
      for (float p : partial) total += p;
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(state.iterations() * kN * int64_t{sizeof(float)});
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Sum_HandLoop)
    ->ArgName("threads1")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- (e) matmul n^3 ----------------------------------------------------------------------------

void BM_Matmul(benchmark::State& state) {
  const int64_t n = state.range(0);
  EagerScope scope(state.range(1) != 0);
  Tensor a = make_input({n, n}, 7), b = make_input({n, n}, 8);
  smelt::matmul(a, b).eval();
  for (auto _ : state) {
    Tensor out = smelt::matmul(a, b);
    out.eval();
  }
  double flops = 2.0 * double(n) * double(n) * double(n);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Matmul)
    ->ArgNames({"n", "eager"})
    ->ArgsProduct({{256, 1024}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- (f) MLP forward 784 -> 256 -> 10, relu, batch 128 ---------------------------------------

void BM_MlpForward(benchmark::State& state) {
  EagerScope scope(state.range(0) != 0);
  constexpr int64_t kB = 128, kIn = 784, kHid = 256, kOut = 10;
  Tensor x = make_input({kB, kIn}, 9);
  Tensor w1 = make_input({kHid, kIn}, 10), b1 = make_input({kHid}, 11);
  Tensor w2 = make_input({kOut, kHid}, 12), b2 = make_input({kOut}, 13);
  auto forward = [&] {
    Tensor h = smelt::relu(smelt::matmul(x, w1.t()) + b1);
    return smelt::matmul(h, w2.t()) + b2;
  };
  forward().eval();
  for (auto _ : state) {
    Tensor out = forward();
    out.eval();
  }
  double flops = 2.0 * kB * kIn * kHid + 2.0 * kB * kHid * kOut;
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * kB);  // samples/s
}
BENCHMARK(BM_MlpForward)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// ---- (g) realize overhead on a program-cache hit ---------------------------------------------

// 20 ops (10 multiplies, 10 adds) on [4] floats: the work is nothing, the time is the host's.
constexpr int kTinyOps = 20;
Tensor tiny_chain(const Tensor& x) {
  Tensor t = x;
  for (int i = 0; i < kTinyOps / 2; ++i) t = t * 1.0001f + x;
  return t;
}

void BM_RealizeOverhead(benchmark::State& state) {
  const bool eager = state.range(0) != 0;
  EagerScope scope(eager);
  Tensor x = make_input({4}, 14);
  tiny_chain(x).eval();
  auto before = smelt::compiler::compile_stats();
  for (auto _ : state) {
    Tensor out = tiny_chain(x);
    out.eval();
  }
  auto after = smelt::compiler::compile_stats();
  double iters = double(state.iterations());
  // Program-cache hits and misses per iteration: 1 / 0 fused, one hit per op eager.
  state.counters["hits/iter"] = double(after.program_hits - before.program_hits) / iters;
  state.counters["misses/iter"] = double(after.program_misses - before.program_misses) / iters;
  // Per-op time: the eager per-op overhead (fused: the realize cost spread over its ops).
  state.counters["per_op"] = benchmark::Counter(
      iters * kTinyOps, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RealizeOverhead)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// ---- first compile of the chain ---------------------------------------------------------------

// The compile cost of a graph the process has never seen. Each repetition builds the chain with
// a constant no earlier graph used (0.5 + rep * 1e-3 instead of 0.5), so its program-cache key is
// new and the whole pipeline (passes, fusion, lowering, LLVM codegen) runs; the inputs are [1024]
// floats so executing it is negligible. Reported: compile_ms = the growth of
// compiler::compile_stats().compile_seconds across the one realize (the compiler's own clock),
// and the benchmark's time = the wall time of that whole first realize (compile + run + host).
// Note the kernel cache may still hit if an earlier benchmark compiled an identical kernel; the
// changed constant makes that unlikely (kernels_compiled/iter says how many were built).
void BM_FirstCompile_Chain(benchmark::State& state) {
  static int rep = 0;
  const float c = 0.5f + 1e-3f * float(++rep);
  Tensor x = make_input({1024}, 15), y = make_input({1024}, 16);
  double compile_s = 0;
  uint64_t kernels = 0, misses = 0;
  for (auto _ : state) {
    auto before = smelt::compiler::compile_stats();
    Tensor out = smelt::tanh(x * c + y) * smelt::sigmoid(x) + smelt::exp(-(x * x));
    out.eval();
    auto after = smelt::compiler::compile_stats();
    compile_s += after.compile_seconds - before.compile_seconds;
    kernels += after.kernels_compiled - before.kernels_compiled;
    misses += after.program_misses - before.program_misses;
  }
  double iters = double(state.iterations());
  state.counters["compile_ms"] = compile_s * 1e3 / iters;
  state.counters["kernels_compiled/iter"] = double(kernels) / iters;
  state.counters["misses/iter"] = double(misses) / iters;
}
BENCHMARK(BM_FirstCompile_Chain)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
