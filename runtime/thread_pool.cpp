#include "runtime/thread_pool.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <thread>

#include "absl/strings/numbers.h"

namespace smelt::runtime {
namespace {

thread_local bool t_in_parallel_region = false;

class ParallelRegion {
 public:
  ParallelRegion() : saved_(t_in_parallel_region) { t_in_parallel_region = true; }
  ~ParallelRegion() { t_in_parallel_region = saved_; }

 private:
  bool saved_;
};

// One parallel_for call. There are never more chunks than team threads: thread t runs chunk t
// when it gets there first, then (or when it has none) any chunk still unclaimed. So a loop
// over the same range as the one before it finds chunk t's data in thread t's cache: the
// weight update after a GEMM cut into row panels (runtime/blas.cpp) read its panel from L2
// instead of the other core's (the MLP step's 200K-element update 30 -> 19 us, bench/RESULTS.md
// "GEMM panels"), while a thread that wakes late still loses no time to one that waits.
struct Job {
  Job(absl::FunctionRef<void(int64_t, int64_t)> fn, int64_t num_chunks, int64_t n)
      : fn(fn), num_chunks(num_chunks), quotient(n / num_chunks), remainder(n % num_chunks) {}

  absl::FunctionRef<void(int64_t, int64_t)> fn;
  int64_t num_chunks;
  // Chunk i starts at i * quotient + min(i, remainder): sizes differ by at most one, so every
  // chunk is at least `grain` when num_chunks <= n / grain.
  int64_t quotient;
  int64_t remainder;
  // Bit i: chunk i is claimed (up to 64 chunks; beyond that the counter hands them out in order).
  std::atomic<uint64_t> claimed{0};
  std::atomic<int64_t> next_chunk{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // written by the first chunk to throw, read after the join

  static constexpr int64_t kMaxClaimBits = 64;

  bool claim(int64_t i) {
    const uint64_t bit = uint64_t{1} << i;
    return (claimed.fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
  }

  void run(int64_t i) {
    const int64_t begin = i * quotient + std::min(i, remainder);
    const int64_t end = begin + quotient + (i < remainder ? 1 : 0);
    try {
      fn(begin, end);
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  }

  void run_chunks(int64_t thread) {
    ParallelRegion region;
    if (num_chunks > kMaxClaimBits) {
      for (int64_t i; !failed.load(std::memory_order_relaxed) &&
                      (i = next_chunk.fetch_add(1, std::memory_order_relaxed)) < num_chunks;) {
        run(i);
      }
      return;
    }
    if (thread < num_chunks && claim(thread)) run(thread);
    for (int64_t i = 0; i < num_chunks && !failed.load(std::memory_order_relaxed); ++i) {
      if (claim(i)) run(i);
    }
  }
};

// Names an OpenMP worker the first time it runs a chunk, so that top -H, perf and gdb tell
// smelt's (and OpenBLAS's: it is the same team) threads from LLVM's and the user's.
void name_worker() {
  thread_local bool named = false;
  if (named) return;
  named = true;
  if (omp_get_thread_num() != 0) pthread_setname_np(pthread_self(), "smelt-worker");
}

// A child of fork() has only the thread that forked, but libgomp still counts the parent's team
// as its own and would wait for it at the next region forever. So the child runs every
// parallel_for inline, and OpenBLAS's OpenMP build, which forks omp_get_max_threads(), gets 1.
// (smelt's own pool before session 9 ran a child's loops on the caller alone too.)
std::atomic<bool> g_in_forked_child{false};

void on_fork_child() {
  g_in_forked_child.store(true, std::memory_order_relaxed);
  omp_set_num_threads(1);
}

[[maybe_unused]] const bool g_fork_handler_installed = [] {
  pthread_atfork(nullptr, nullptr, on_fork_child);
  return true;
}();

}  // namespace

struct ThreadPool::State {
  int num_threads = 1;
};

ThreadPool::ThreadPool(int num_threads) : state_(std::make_unique<State>()) {
  state_->num_threads = num_threads > 0 ? num_threads : default_num_threads();
}

ThreadPool::~ThreadPool() = default;

int ThreadPool::num_threads() const { return state_->num_threads; }

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t num_chunks = std::min<int64_t>(state_->num_threads, n / grain);
  if (num_chunks <= 1 || t_in_parallel_region || omp_in_parallel() ||
      g_in_forked_child.load(std::memory_order_relaxed)) {
    fn(0, n);
    return;
  }
  Job job(fn, num_chunks, n);
  // The whole team, whatever the chunk count: libgomp ends the threads a smaller team leaves out
  // and creates them again for the next bigger one, and OpenBLAS forks omp_get_max_threads() for
  // its GEMMs (the same count as the default pool's, unless SMELT_NUM_THREADS differs), so a
  // 3-chunk kernel between two GEMMs on 16 cores cost 13 thread creations (the MLP step 0.7 -> 6-12
  // ms there). Threads that find no chunk go straight to the join.
  const int team = std::max(state_->num_threads, omp_get_max_threads());
#pragma omp parallel num_threads(team)
  {
    name_worker();
    job.run_chunks(omp_get_thread_num());
  }
  if (job.error) std::rethrow_exception(job.error);
}

int ThreadPool::default_num_threads() {
  if (const char* env = std::getenv("SMELT_NUM_THREADS")) {
    int n;
    if (absl::SimpleAtoi(env, &n) && n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

bool in_parallel_region() { return t_in_parallel_region; }

ThreadPool& default_thread_pool() {
  // No more threads than the OpenMP team OpenBLAS forks (OMP_NUM_THREADS, else the CPUs): a
  // bigger SMELT_NUM_THREADS would make every kernel grow the team and every GEMM shrink it.
  static ThreadPool* pool =
      new ThreadPool(std::min(ThreadPool::default_num_threads(), omp_get_max_threads()));
  return *pool;
}

}  // namespace smelt::runtime
