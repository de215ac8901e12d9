// The runtime's fixed costs: a pool allocation against the system allocator, and what a
// parallel_for costs before any work is done, against the work it can speed up.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "base/buffer.h"
#include "runtime/memory_pool.h"
#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

// ---- allocation ---------------------------------------------------------------------------

void BM_PoolAllocateFree(benchmark::State& state) {
  CpuMemoryPool pool;
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    base::BufferPtr b = pool.allocate(n).value();
    benchmark::DoNotOptimize(b->data());
  }
}
BENCHMARK(BM_PoolAllocateFree)->RangeMultiplier(64)->Range(64, 64 << 20);

void BM_MallocFree(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::aligned_alloc(64, n);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_MallocFree)->RangeMultiplier(64)->Range(64, 64 << 20);

// What the pool replaces: a system allocation wrapped in a Buffer.
void BM_BufferAllocateHost(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    base::BufferPtr b = base::Buffer::allocate_host(n);
    benchmark::DoNotOptimize(b->data());
  }
}
BENCHMARK(BM_BufferAllocateHost)->RangeMultiplier(64)->Range(64, 64 << 20);

// Writing a fresh buffer: the system allocator maps new pages (and faults on every one) for big
// sizes each time, the pool hands back pages that are already mapped.
void BM_PoolAllocateWrite(benchmark::State& state) {
  CpuMemoryPool pool;
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    base::BufferPtr b = pool.allocate(n).value();
    std::memset(b->data(), 1, n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_PoolAllocateWrite)->Arg(256 << 10)->Arg(4 << 20)->Arg(64 << 20);

void BM_MallocWrite(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::aligned_alloc(64, n);
    std::memset(p, 1, n);
    benchmark::ClobberMemory();
    std::free(p);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_MallocWrite)->Arg(256 << 10)->Arg(4 << 20)->Arg(64 << 20);

// Eight threads sharing one pool: the cost of its single lock under contention.
void BM_PoolAllocateFreeContended(benchmark::State& state) {
  static CpuMemoryPool* pool = new CpuMemoryPool();
  for (auto _ : state) {
    base::BufferPtr b = pool->allocate(4096).value();
    benchmark::DoNotOptimize(b->data());
  }
}
BENCHMARK(BM_PoolAllocateFreeContended)->Threads(1)->Threads(2)->Threads(8);

// ---- parallel_for -------------------------------------------------------------------------

ThreadPool& pool_of(int threads) {
  static auto* pools = new std::map<int, std::unique_ptr<ThreadPool>>();
  std::unique_ptr<ThreadPool>& p = (*pools)[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

std::vector<int64_t> thread_counts() {
  std::vector<int64_t> counts = {1, 2, 4};
  int all = ThreadPool::default_num_threads();
  if (all > 4) counts.push_back(all);
  return counts;
}

// One chunk per thread and nothing to do: the pure fork-join cost.
void BM_ParallelForEmpty(benchmark::State& state) {
  ThreadPool& pool = pool_of(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    pool.parallel_for(pool.num_threads(), 1,
                      [](int64_t begin, int64_t) { benchmark::DoNotOptimize(begin); });
  }
}
BENCHMARK(BM_ParallelForEmpty)->ArgsProduct({thread_counts()})->UseRealTime();

// A range below the grain runs inline: the cost every small kernel pays.
// The lambda captures what a kernel's would (a few pointers and sizes).
void BM_ParallelForInline(benchmark::State& state) {
  ThreadPool& pool = pool_of(4);
  float in[100] = {};
  float out[100];
  float scale = 2.0f;
  for (auto _ : state) {
    pool.parallel_for(100, 1024, [&in, &out, scale](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = in[i] * scale;
    });
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_ParallelForInline);

// About 20 us of arithmetic per thread (64 items of 150 dependent multiply-adds), so the workers
// must wake and take part: the fork-join cost where it matters, next to the 1-thread time.
void BM_ParallelForShortWork(benchmark::State& state) {
  ThreadPool& pool = pool_of(static_cast<int>(state.range(0)));
  constexpr int64_t kItems = 64;
  constexpr int64_t kItemWork = 150;
  int threads = pool.num_threads();
  for (auto _ : state) {
    pool.parallel_for(kItems * threads, kItems, [](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        double x = static_cast<double>(i);
        for (int64_t k = 0; k < kItemWork; ++k) x = x * 0.999999 + 1e-9;
        benchmark::DoNotOptimize(x);
      }
    });
  }
}
BENCHMARK(BM_ParallelForShortWork)->ArgsProduct({thread_counts()})->UseRealTime();

// y = a * x + y over 16 Mi floats (three 64 MiB streams): bounded by memory bandwidth.
void BM_SaxpyParallel(benchmark::State& state) {
  ThreadPool& pool = pool_of(static_cast<int>(state.range(0)));
  constexpr int64_t kN = int64_t{1} << 24;
  std::vector<float> x(kN, 1.0f);
  std::vector<float> y(kN, 2.0f);
  const float a = 0.5f;
  for (auto _ : state) {
    pool.parallel_for(kN, 1 << 15, [&](int64_t begin, int64_t end) {
      float* __restrict yp = y.data();
      const float* __restrict xp = x.data();
      for (int64_t i = begin; i < end; ++i) yp[i] = a * xp[i] + yp[i];
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kN * 3 * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_SaxpyParallel)
    ->ArgsProduct({thread_counts()})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace smelt::runtime
