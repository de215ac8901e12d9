#include "runtime/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

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

// One parallel_for call. It lives on the caller's stack, so the caller may not return while a
// worker still points at it: `participants` counts the workers inside, and the caller waits for 0
// after taking the job off the queue (after which no worker can find it).
struct Job {
  Job(absl::FunctionRef<void(int64_t, int64_t)> fn, int64_t num_chunks, int64_t n)
      : fn(fn), num_chunks(num_chunks), quotient(n / num_chunks), remainder(n % num_chunks) {}

  absl::FunctionRef<void(int64_t, int64_t)> fn;
  int64_t num_chunks;
  // Chunk i starts at i * quotient + min(i, remainder): sizes differ by at most one, so every
  // chunk is at least `grain` when num_chunks <= n / grain.
  int64_t quotient;
  int64_t remainder;
  std::atomic<int64_t> next_chunk{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // written by the first chunk to throw, read after the join
  int participants = 0;      // guarded by ThreadPool::State::mu
  int to_wake = 0;           // workers still to wake for this job, likewise

  bool exhausted() const { return next_chunk.load(std::memory_order_relaxed) >= num_chunks; }

  void run_chunks() {
    ParallelRegion region;
    for (;;) {
      int64_t i = next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (i >= num_chunks) return;
      int64_t begin = i * quotient + std::min(i, remainder);
      int64_t end = begin + quotient + (i < remainder ? 1 : 0);
      try {
        fn(begin, end);
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();
        next_chunk.store(num_chunks, std::memory_order_relaxed);
      }
    }
  }
};

// Each thread that joins a job wakes at most this many more, so the wake-ups (a futex call each)
// spread over a tree instead of all falling on the caller before it can start its own chunk.
constexpr int kWakeFanout = 2;

}  // namespace

// std::mutex, not absl::Mutex: the distribution's absl is built with its debug deadlock detector
// on, which made a lock/unlock pair cost 74 ns against 8 ns, and every parallel_for takes several.
struct ThreadPool::State {
  std::mutex mu;
  std::condition_variable work_cv;  // a job was queued, or stop
  std::condition_variable done_cv;  // some job's last participant left
  std::deque<Job*> jobs;            // guarded by mu, like idle and stop
  int idle = 0;
  bool stop = false;
  int num_threads = 1;
  std::vector<std::thread> workers;

  // How many sleeping workers to wake for `job`; the caller notifies them after unlocking, so
  // that they do not wake only to block on the mutex it still holds.
  int claim_wakeups(Job& job) {
    int n = std::min({kWakeFanout, job.to_wake, idle});
    job.to_wake -= n;
    return n;
  }

  void wake(int n) {
    for (int i = 0; i < n; ++i) work_cv.notify_one();
  }

  void remove(Job* job) {
    auto it = std::find(jobs.begin(), jobs.end(), job);
    if (it != jobs.end()) jobs.erase(it);
  }

  void worker_loop() {
    t_in_parallel_region = true;
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      while (jobs.empty() && !stop) {
        ++idle;
        work_cv.wait(lock);
        --idle;
      }
      if (stop) return;
      Job* job = jobs.front();
      if (job->exhausted()) {
        jobs.pop_front();
        continue;
      }
      ++job->participants;
      int wakeups = claim_wakeups(*job);
      lock.unlock();
      wake(wakeups);
      job->run_chunks();
      lock.lock();
      remove(job);
      if (--job->participants == 0) {
        // The caller may return as soon as it sees 0, but done_cv is the pool's, not the job's,
        // so notifying after the unlock is safe.
        lock.unlock();
        done_cv.notify_all();
        lock.lock();
      }
    }
  }
};

ThreadPool::ThreadPool(int num_threads) : state_(std::make_unique<State>()) {
  state_->num_threads = num_threads > 0 ? num_threads : default_num_threads();
  state_->workers.reserve(state_->num_threads - 1);
  for (int i = 1; i < state_->num_threads; ++i) {
    std::thread& t = state_->workers.emplace_back([s = state_.get()] { s->worker_loop(); });
    // Named so that top -H, perf and gdb tell our workers from OpenBLAS's and LLVM's; here, not
    // in the thread, so the name is there as soon as the constructor returns.
    pthread_setname_np(t.native_handle(), "smelt-worker");
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
    state_->work_cv.notify_all();
  }
  for (std::thread& t : state_->workers) t.join();
}

int ThreadPool::num_threads() const { return state_->num_threads; }

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t num_chunks = std::min<int64_t>(state_->num_threads, n / grain);
  if (num_chunks <= 1 || t_in_parallel_region) {
    fn(0, n);
    return;
  }

  Job job(fn, num_chunks, n);
  State& s = *state_;
  int wakeups;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    job.to_wake = static_cast<int>(num_chunks - 1);
    s.jobs.push_back(&job);
    wakeups = s.claim_wakeups(job);
  }
  s.wake(wakeups);
  job.run_chunks();
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.remove(&job);
    s.done_cv.wait(lock, [&] { return job.participants == 0; });
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
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

}  // namespace smelt::runtime
