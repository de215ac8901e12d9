// The CPU kernels' threads. A fork-join pool: parallel_for splits a range into chunks that the
// workers and the calling thread run together, and returns when all are done.
//
// The workers are an OpenMP team (GCC's libgomp), not threads of smelt's own: OpenBLAS's OpenMP
// build, which runtime/blas.cpp loads when it is installed, runs its GEMMs on the same team, so
// the two never take turns on the same cores. A pool of its own (condition variables, session 1
// to 8) had to wake a sleeping worker on a core where OpenBLAS's idle pthreads were still
// spinning after each GEMM, which made a kernel right after a GEMM slower on two threads than on
// one (bench/RESULTS.md, "One thread team"). Every fork takes the whole team (the larger of
// the pool's size and omp_get_max_threads(), which OpenBLAS forks), even for two chunks:
// libgomp ends the threads a smaller team leaves out and creates them again for the next
// bigger one. Idle team threads spin briefly, then sleep (libgomp's OMP_WAIT_POLICY /
// GOMP_SPINCOUNT apply).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"

namespace smelt::runtime {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread: a pool of N runs N chunks at once on N-1 workers plus
  // the caller. 0 picks the default: SMELT_NUM_THREADS if set, else the CPUs this process may run
  // on.
  explicit ThreadPool(int num_threads = 0);
  // No parallel_for may be running. The OpenMP team outlives the pool (libgomp keeps it).
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const;

  // Calls fn(begin, end) on disjoint chunks that cover [0, n) exactly once, each at least `grain`
  // long (or all of a shorter n), on up to num_threads() threads, and returns when all have
  // returned.
  // Runs inline, with no synchronization, when n < 2 * grain, when the pool has one thread, or
  // when called from inside another parallel_for (nested parallelism would only oversubscribe).
  // Chunk t runs on team thread t unless another thread takes it first (that one came late), so
  // two loops over the same n touch each chunk's data from the same core.
  // If fn throws, chunks not yet started are skipped and the first exception is rethrown here.
  //
  // fn is an absl::FunctionRef, not a std::function: a lambda that captures more than two words
  // would make std::function allocate on every call, the inline ones included.
  void parallel_for(int64_t n, int64_t grain,
                    absl::FunctionRef<void(int64_t begin, int64_t end)> fn);

  // SMELT_NUM_THREADS if it holds a positive number, else the CPUs in this process's affinity
  // mask (which, unlike hardware_concurrency, honours taskset and container CPU sets).
  static int default_num_threads();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// True on any thread while it runs a chunk of a parallel_for (then a nested parallel_for, and an
// OpenMP OpenBLAS call, runs on that thread alone).
bool in_parallel_region();

// The process-wide pool, made on first use and never destroyed, so that no worker is joined
// during static destruction. Its size is default_num_threads(), at most omp_get_max_threads().
ThreadPool& default_thread_pool();

}  // namespace smelt::runtime
