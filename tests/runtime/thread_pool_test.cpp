#include "runtime/thread_pool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/blas.h"

namespace smelt::runtime {
namespace {

// Runs parallel_for and checks that every index of [0, n) was visited exactly once, in chunks of
// at least `grain` (or one chunk of all n).
void expect_exact_cover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> visits(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::atomic<int64_t> chunks{0};
  std::atomic<bool> short_chunk{false};
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    ++chunks;
    if (end - begin < grain && !(begin == 0 && end == n)) short_chunk = true;
    for (int64_t i = begin; i < end; ++i) visits[i].fetch_add(1, std::memory_order_relaxed);
  });
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(visits[i].load(), 1) << "index " << i << " of n=" << n << " grain=" << grain;
  }
  EXPECT_FALSE(short_chunk) << "n=" << n << " grain=" << grain;
  EXPECT_LE(chunks.load(), pool.num_threads());
  if (n == 0) {
    EXPECT_EQ(chunks.load(), 0);
  }
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 8, 16, 31, 100, 1000, 4097, 100003}) {
      for (int64_t grain : {-1, 0, 1, 2, 3, 7, 64, 1000, 1 << 20}) {
        expect_exact_cover(pool, n, grain);
      }
    }
  }
}

TEST(ThreadPool, UsesSeveralThreadsWhenTheWorkIsLarge) {
  ThreadPool pool(4);
  std::mutex mu;
  std::set<std::thread::id> seen;
  // Each chunk waits until a second thread arrives, so the test passes only if the chunks run
  // in parallel, not if the caller happens to run them all before the workers wake.
  std::atomic<int> arrived{0};
  pool.parallel_for(4, 1, [&](int64_t, int64_t) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(std::this_thread::get_id());
    }
    ++arrived;
    while (arrived.load() < 2) std::this_thread::yield();
  });
  EXPECT_GE(seen.size(), 2u);
}

TEST(ThreadPool, SmallRangeRunsInlineOnTheCaller) {
  ThreadPool pool(4);
  std::thread::id caller = std::this_thread::get_id();
  int calls = 0;
  pool.parallel_for(10, 16, [&](int64_t begin, int64_t end) {
    ++calls;
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 10);
    EXPECT_FALSE(in_parallel_region()) << "an inline loop may still parallelize inside";
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(4);
  constexpr int64_t kOuter = 64;
  constexpr int64_t kInner = 1000;
  std::vector<std::atomic<int>> visits(kOuter * kInner);
  std::atomic<int> inner_chunks{0};
  pool.parallel_for(kOuter, 1, [&](int64_t begin, int64_t end) {
    EXPECT_TRUE(in_parallel_region());
    for (int64_t i = begin; i < end; ++i) {
      pool.parallel_for(kInner, 1, [&](int64_t b, int64_t e) {
        ++inner_chunks;
        for (int64_t j = b; j < e; ++j) ++visits[i * kInner + j];
      });
    }
  });
  for (auto& v : visits) ASSERT_EQ(v.load(), 1);
  EXPECT_EQ(inner_chunks.load(), kOuter) << "each inner loop ran as one inline chunk";
  EXPECT_FALSE(in_parallel_region());
}

TEST(ThreadPool, NestedCallOnAnotherPoolRunsInline) {
  ThreadPool outer(3);
  ThreadPool inner(3);
  std::atomic<int64_t> sum{0};
  outer.parallel_for(30, 1, [&](int64_t begin, int64_t end) {
    inner.parallel_for(end - begin, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  });
  EXPECT_EQ(sum.load(), 30);
}

TEST(ThreadPool, FirstExceptionPropagatesAndThePoolStaysUsable) {
  ThreadPool pool(4);
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> ran{0};
    try {
      pool.parallel_for(1000, 1, [&](int64_t begin, int64_t) {
        ++ran;
        throw std::runtime_error("chunk " + std::to_string(begin));
      });
      FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("chunk ", 0), 0u);
    }
    EXPECT_GE(ran.load(), 1);
    EXPECT_LE(ran.load(), 4);
    expect_exact_cover(pool, 1000, 1);
  }
}

TEST(ThreadPool, ExceptionFromAnInlineRunPropagates) {
  ThreadPool pool(4);
  EXPECT_THROW(pool.parallel_for(1, 1, [](int64_t, int64_t) { throw std::logic_error("x"); }),
               std::logic_error);
}

TEST(ThreadPool, ConcurrentCallersFromSeveralThreads) {
  ThreadPool pool(4);
  constexpr int kCallers = 6;
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&pool, &failures, c] {
      for (int round = 0; round < 300; ++round) {
        int64_t n = 1 + (round * 37 + c * 11) % 5000;
        std::vector<int> visits(n, 0);  // chunks are disjoint, so no atomics needed
        pool.parallel_for(n, 1 + round % 7, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) ++visits[i];
        });
        for (int v : visits) {
          if (v != 1) ++failures;
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPool, ManyTinyLoopsDoNotLoseWakeups) {
  ThreadPool pool(3);
  int64_t total = 0;
  for (int round = 0; round < 20000; ++round) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(3, 1, [&](int64_t begin, int64_t end) { sum += end - begin; });
    total += sum.load();
  }
  EXPECT_EQ(total, 3 * 20000);
}

struct WorkerCpu {
  int threads = 0;
  double seconds = 0;
};

// CPU time of this process's pool workers, from /proc: process-wide clocks would also count
// OpenBLAS's threads, which spin for a while after they start.
WorkerCpu worker_cpu() {
  WorkerCpu cpu;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::string name;
    std::getline(std::ifstream(task.path() / "comm"), name);
    if (name != "smelt-worker") continue;
    int64_t ns = 0;
    std::ifstream(task.path() / "schedstat") >> ns;
    ++cpu.threads;
    cpu.seconds += static_cast<double>(ns) * 1e-9;
  }
  return cpu;
}

// The design promise: an idle pool sleeps, so a process that stopped computing leaves the cores
// to others. Its OpenMP workers spin for a few milliseconds after a loop first (libgomp's
// GOMP_SPINCOUNT: 20 ms of CPU over three workers on a 16-core machine), which is what lets the
// next loop, or the GEMM after it, start at once; after that they must be asleep.
TEST(ThreadPool, IdleWorkersDoNotSpin) {
  ThreadPool pool(4);
  expect_exact_cover(pool, 100000, 1);
  EXPECT_GE(worker_cpu().threads, 3) << "the workers are named smelt-worker";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  WorkerCpu before = worker_cpu();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  double used = worker_cpu().seconds - before.seconds;
  EXPECT_LT(used, 0.005) << "idle workers burned " << used << " s of CPU in 0.2 s";
}

std::set<std::string> thread_ids() {
  std::set<std::string> ids;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    ids.insert(task.path().filename().string());
  }
  return ids;
}

// libgomp ends the threads that a smaller team leaves out and creates new ones for the next
// bigger team; a loop of few chunks between two GEMMs on many cores paid one thread creation per
// missing thread (runtime/thread_pool.cpp). The pool forks its whole team every time.
TEST(ThreadPool, KeepsItsThreadsWhateverTheChunkCount) {
  ThreadPool pool(4);
  expect_exact_cover(pool, 100000, 1);  // the team exists from here on
  const std::set<std::string> before = thread_ids();
  for (int i = 0; i < 20; ++i) {
    expect_exact_cover(pool, 2, 1);  // two chunks
    expect_exact_cover(pool, 100000, 1);
  }
  EXPECT_EQ(thread_ids(), before) << "threads were ended and created again";
}

// After fork() only the forking thread exists in the child, while libgomp still counts the
// parent's team: a region there would wait for it forever. The child must run loops and GEMMs
// on its one thread. (The alarm turns a hang into a failed exit status.)
TEST(ThreadPool, AForkedChildRunsLoopsAndGemmsOnItsOwn) {
  ThreadPool& pool = default_thread_pool();
  std::vector<float> a(256 * 256, 0.5f), c(256 * 256);
  auto work = [&] {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1 << 20, 1, [&](int64_t b, int64_t e) { sum += e - b; });
    const absl::Status st = gemm(DType::Float32, false, false, 256, 256, 256, a.data(), 256,
                                 a.data(), 256, 0.0, c.data(), 256);
    return sum == (1 << 20) && st.ok() && c[0] == 64.0f && c.back() == 64.0f;
  };
  ASSERT_TRUE(work());  // the parent's team and OpenBLAS's exist from here on
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(30);
    _exit(work() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child hung or crashed (signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child computed wrong values";
  EXPECT_TRUE(work()) << "the parent's team still works";
}

TEST(ThreadPool, DefaultSizeComesFromTheEnvironment) {
  const char* saved = std::getenv("SMELT_NUM_THREADS");
  std::string saved_value = saved ? saved : "";
  setenv("SMELT_NUM_THREADS", "3", 1);
  EXPECT_EQ(ThreadPool::default_num_threads(), 3);
  EXPECT_EQ(ThreadPool().num_threads(), 3);
  setenv("SMELT_NUM_THREADS", "zero", 1);
  EXPECT_GE(ThreadPool::default_num_threads(), 1) << "a bad value falls back to the CPU count";
  if (saved) {
    setenv("SMELT_NUM_THREADS", saved_value.c_str(), 1);
  } else {
    unsetenv("SMELT_NUM_THREADS");
  }
}

TEST(ThreadPool, DefaultPoolIsOneObject) {
  EXPECT_EQ(&default_thread_pool(), &default_thread_pool());
  EXPECT_GE(default_thread_pool().num_threads(), 1);
  expect_exact_cover(default_thread_pool(), 12345, 10);
}

}  // namespace
}  // namespace smelt::runtime
