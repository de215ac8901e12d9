#include "runtime/memory_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace smelt::runtime {
namespace {

using ::testing::HasSubstr;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;
constexpr size_t kGiB = 1024 * kMiB;

base::BufferPtr must_allocate(CpuMemoryPool& pool, size_t nbytes) {
  absl::StatusOr<base::BufferPtr> b = pool.allocate(nbytes);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

bool aligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(CpuMemoryPool, RoundSizeClassesBoundWaste) {
  EXPECT_EQ(CpuMemoryPool::round_size(0), 64u);
  EXPECT_EQ(CpuMemoryPool::round_size(1), 64u);
  EXPECT_EQ(CpuMemoryPool::round_size(64), 64u);
  EXPECT_EQ(CpuMemoryPool::round_size(65), 128u);
  EXPECT_EQ(CpuMemoryPool::round_size(256), 256u);
  EXPECT_EQ(CpuMemoryPool::round_size(257), 320u);
  EXPECT_EQ(CpuMemoryPool::round_size(1000), 1024u);
  EXPECT_EQ(CpuMemoryPool::round_size(1025), 1280u);
  EXPECT_EQ(CpuMemoryPool::round_size(kMiB), kMiB);
  EXPECT_EQ(CpuMemoryPool::round_size(kMiB + 1), kMiB + kMiB / 4);
  for (size_t n = 1; n < 100000; n = n * 9 / 8 + 1) {
    size_t r = CpuMemoryPool::round_size(n);
    EXPECT_GE(r, n);
    EXPECT_EQ(r % 64, 0u);
    EXPECT_LE(r, std::max<size_t>(64, n + n / 4 + 63)) << n;
    EXPECT_EQ(CpuMemoryPool::round_size(r), r) << "a class size is its own class";
  }
}

TEST(CpuMemoryPool, BlocksAre64ByteAlignedAndWritable) {
  CpuMemoryPool pool;
  std::vector<base::BufferPtr> live;
  for (size_t n : {1ul, 3ul, 64ul, 100ul, 4096ul, 100000ul, kMiB, 3 * kMiB + 5}) {
    base::BufferPtr b = must_allocate(pool, n);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(aligned(b->data(), 64)) << n;
    EXPECT_EQ(b->nbytes(), n);
    EXPECT_EQ(b->device(), Device::cpu());
    std::memset(b->data(), 0xab, n);
    live.push_back(std::move(b));
  }
}

TEST(CpuMemoryPool, FreedBlockIsReusedForTheSameSize) {
  CpuMemoryPool pool;
  void* first = must_allocate(pool, 1000)->data();  // the buffer dies at the end of the line
  MemoryStats before = pool.stats();
  EXPECT_EQ(before.cache_misses, 1);
  EXPECT_EQ(before.cached_bytes, 1024u);
  base::BufferPtr again = must_allocate(pool, 1000);
  EXPECT_EQ(again->data(), first);
  MemoryStats after = pool.stats();
  EXPECT_EQ(after.cache_hits, 1);
  EXPECT_EQ(after.cache_misses, 1);
  EXPECT_EQ(after.system_allocations, 1);
}

TEST(CpuMemoryPool, LastFreedIsFirstReused) {
  CpuMemoryPool pool;
  base::BufferPtr a = must_allocate(pool, 512);
  base::BufferPtr b = must_allocate(pool, 512);
  void* pa = a->data();
  void* pb = b->data();
  a.reset();
  b.reset();
  EXPECT_EQ(must_allocate(pool, 512)->data(), pb);
  base::BufferPtr c = must_allocate(pool, 512);
  base::BufferPtr d = must_allocate(pool, 512);
  EXPECT_EQ(c->data(), pb);
  EXPECT_EQ(d->data(), pa);
}

TEST(CpuMemoryPool, ReusesALargerBlockOnlyWithinTheWasteBound) {
  CpuMemoryPool pool;
  void* p2k = must_allocate(pool, 2048)->data();
  // 1024 may take a cached 2048 block (twice its size)...
  base::BufferPtr b = must_allocate(pool, 1024);
  EXPECT_EQ(b->data(), p2k);
  EXPECT_EQ(pool.stats().allocated_bytes, 2048u) << "the block, not the request, is counted";
  EXPECT_EQ(pool.stats().requested_bytes, 1024u);
  b.reset();
  // ...but 896 (a class) may not take more than 1792.
  base::BufferPtr c = must_allocate(pool, 896);
  EXPECT_NE(c->data(), p2k);
  EXPECT_EQ(pool.stats().cache_hits, 1);
  EXPECT_EQ(pool.stats().cache_misses, 2);
}

TEST(CpuMemoryPool, LargeRequestsReuseOnlyTheNextClass) {
  CpuMemoryPool pool;
  must_allocate(pool, 16 * kMiB);  // cached at once
  base::BufferPtr small = must_allocate(pool, 8 * kMiB);
  EXPECT_EQ(pool.stats().cache_hits, 0) << "half of a 16 MiB block must not sit idle";
  base::BufferPtr close = must_allocate(pool, 14 * kMiB);
  EXPECT_EQ(pool.stats().cache_hits, 1) << "14 MiB is one class below 16 MiB";
  EXPECT_EQ(pool.stats().allocated_bytes, 24 * kMiB);
}

TEST(CpuMemoryPool, StatsAccountExactly) {
  CpuMemoryPool pool;
  base::BufferPtr a = must_allocate(pool, 100);           // 128
  base::BufferPtr b = must_allocate(pool, 1000);          // 1024
  base::BufferPtr c = must_allocate(pool, 2 * kMiB + 1);  // 2.5 MiB
  MemoryStats s = pool.stats();
  size_t total = 128 + 1024 + 2 * kMiB + kMiB / 2;
  EXPECT_EQ(s.allocated_bytes, total);
  EXPECT_EQ(s.requested_bytes, 100 + 1000 + 2 * kMiB + 1);
  EXPECT_EQ(s.reserved_bytes, total);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.live_buffers, 3);
  EXPECT_EQ(s.allocations, 3);
  EXPECT_EQ(s.system_allocations, 3);
  EXPECT_EQ(s.cache_misses, 3);

  b.reset();
  s = pool.stats();
  EXPECT_EQ(s.allocated_bytes, total - 1024);
  EXPECT_EQ(s.requested_bytes, 100 + 2 * kMiB + 1);
  EXPECT_EQ(s.reserved_bytes, total);
  EXPECT_EQ(s.cached_bytes, 1024u);
  EXPECT_EQ(s.live_buffers, 2);

  a.reset();
  c.reset();
  s = pool.stats();
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.requested_bytes, 0u);
  EXPECT_EQ(s.reserved_bytes, total);
  EXPECT_EQ(s.cached_bytes, total);
  EXPECT_EQ(s.live_buffers, 0);
  EXPECT_EQ(s.system_frees, 0);
}

TEST(CpuMemoryPool, PeakTracksTheHighestAllocationAndResets) {
  CpuMemoryPool pool;
  {
    base::BufferPtr a = must_allocate(pool, 4096);
    base::BufferPtr b = must_allocate(pool, 4096);
  }
  base::BufferPtr c = must_allocate(pool, 1024);
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.peak_allocated_bytes, 8192u);
  EXPECT_EQ(s.peak_reserved_bytes, 8192u + 1024);
  EXPECT_EQ(s.allocated_bytes, 1024u);

  pool.reset_peak();
  s = pool.stats();
  EXPECT_EQ(s.peak_allocated_bytes, 1024u);
  EXPECT_EQ(s.peak_reserved_bytes, 8192u + 1024);

  base::BufferPtr d = must_allocate(pool, 4096);  // a cache hit still raises the peak
  EXPECT_EQ(pool.stats().peak_allocated_bytes, 1024u + 4096);
}

TEST(CpuMemoryPool, EmptyCacheFreesOnlyUnusedBlocks) {
  CpuMemoryPool pool;
  base::BufferPtr keep = must_allocate(pool, 4096);
  must_allocate(pool, 8192);
  must_allocate(pool, 4 * kMiB);
  EXPECT_EQ(pool.stats().cached_bytes, 8192u + 4 * kMiB);

  pool.empty_cache();
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.reserved_bytes, 4096u);
  EXPECT_EQ(s.allocated_bytes, 4096u);
  EXPECT_EQ(s.system_frees, 2);
  std::memset(keep->data(), 1, 4096);

  must_allocate(pool, 8192);
  EXPECT_EQ(pool.stats().cache_misses, 4) << "the emptied block is not reused";
}

TEST(CpuMemoryPool, LimitFailsWithAReadableMessageAndLeavesThePoolUsable) {
  CpuMemoryPool pool(4 * kMiB);
  base::BufferPtr a = must_allocate(pool, 3 * kMiB);
  absl::StatusOr<base::BufferPtr> b = pool.allocate(1536 * kKiB);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(b.status().message(),
            "CPU out of memory: tried to allocate 1.50 MiB; 3.00 MiB allocated, 3.00 MiB "
            "reserved, limit 4.00 MiB");
  EXPECT_EQ(pool.stats().failures, 1);
  EXPECT_EQ(pool.stats().reserved_bytes, 3 * kMiB) << "a failure reserves nothing";

  base::BufferPtr c = must_allocate(pool, kMiB);
  ASSERT_NE(c, nullptr);
  std::memset(c->data(), 0, kMiB);
  a.reset();
  base::BufferPtr d = must_allocate(pool, 1536 * kKiB);
  EXPECT_NE(d, nullptr) << "freeing makes room again";
}

TEST(CpuMemoryPool, LimitEmptiesTheCacheBeforeFailing) {
  CpuMemoryPool pool(4 * kMiB);
  must_allocate(pool, 3 * kMiB);  // cached
  EXPECT_EQ(pool.stats().reserved_bytes, 3 * kMiB);
  base::BufferPtr b = must_allocate(pool, 2 * kMiB);
  ASSERT_NE(b, nullptr);
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.reserved_bytes, 2 * kMiB);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.system_frees, 1);
}

TEST(CpuMemoryPool, SetLimitAppliesToTheNextAllocation) {
  CpuMemoryPool pool;
  EXPECT_EQ(pool.limit(), std::nullopt);
  base::BufferPtr a = must_allocate(pool, 4096);
  pool.set_limit(4096);
  EXPECT_EQ(pool.allocate(1).status().code(), absl::StatusCode::kResourceExhausted);
  pool.set_limit(std::nullopt);
  EXPECT_TRUE(pool.allocate(1).ok());
}

TEST(CpuMemoryPool, ImpossibleRequestFailsWithoutOverflow) {
  CpuMemoryPool pool;
  absl::StatusOr<base::BufferPtr> b = pool.allocate(SIZE_MAX);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(b.status().message(), HasSubstr("CPU out of memory: tried to allocate 16.00 EiB"));
  EXPECT_EQ(pool.stats().reserved_bytes, 0u);
}

TEST(CpuMemoryPool, ZeroBytesGivesDistinctValidBuffers) {
  CpuMemoryPool pool;
  base::BufferPtr a = must_allocate(pool, 0);
  base::BufferPtr b = must_allocate(pool, 0);
  ASSERT_NE(a->data(), nullptr);
  EXPECT_NE(a->data(), b->data());
  EXPECT_EQ(a->nbytes(), 0u);
  EXPECT_TRUE(aligned(a->data(), 64));
  EXPECT_EQ(pool.stats().allocated_bytes, 128u);
  EXPECT_EQ(pool.stats().requested_bytes, 0u);
}

TEST(CpuMemoryPool, BuffersMayOutliveTheirPool) {
  base::BufferPtr survivor;
  {
    CpuMemoryPool pool;
    survivor = must_allocate(pool, 5000);
    must_allocate(pool, 100);  // cached, freed with the pool
  }
  std::memset(survivor->data(), 7, 5000);
  survivor.reset();  // frees to the system and deletes the pool's state; ASan would catch a leak
}

TEST(CpuMemoryPool, ManyRandomSizesKeepStatsConsistent) {
  CpuMemoryPool pool;
  std::mt19937 rng(42);
  std::vector<base::BufferPtr> live;
  size_t expected_requested = 0;
  for (int step = 0; step < 20000; ++step) {
    if (!live.empty() && rng() % 2 == 0) {
      size_t i = rng() % live.size();
      expected_requested -= live[i]->nbytes();
      live[i] = std::move(live.back());
      live.pop_back();
      continue;
    }
    // Log-uniform sizes from 0 to 4 MiB, so every class range gets traffic.
    size_t n = static_cast<size_t>(std::exp2(std::uniform_real_distribution<>(0, 22)(rng))) - 1;
    base::BufferPtr b = must_allocate(pool, n);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(aligned(b->data(), 64));
    if (n > 0) {
      static_cast<char*>(b->data())[0] = 1;
      static_cast<char*>(b->data())[n - 1] = 1;
    }
    expected_requested += n;
    live.push_back(std::move(b));
  }
  std::set<void*> distinct;
  for (const base::BufferPtr& b : live) distinct.insert(b->data());
  EXPECT_EQ(distinct.size(), live.size()) << "no block is handed out twice";

  MemoryStats s = pool.stats();
  EXPECT_EQ(s.requested_bytes, expected_requested);
  EXPECT_EQ(s.live_buffers, static_cast<int64_t>(live.size()));
  EXPECT_EQ(s.reserved_bytes, s.allocated_bytes + s.cached_bytes);
  EXPECT_EQ(s.cache_hits + s.cache_misses, s.allocations);
  EXPECT_EQ(s.system_allocations, s.cache_misses);
  EXPECT_GT(s.cache_hits, s.cache_misses);
  live.clear();
  s = pool.stats();
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.reserved_bytes, s.cached_bytes);
}

TEST(CpuMemoryPool, ConcurrentAllocateAndFreeKeepStatsConsistent) {
  CpuMemoryPool pool;
  constexpr int kThreads = 8;
  constexpr int kSteps = 5000;
  std::vector<std::thread> threads;
  std::vector<base::BufferPtr> handed_over(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&pool, &handed_over, t] {
      std::mt19937 rng(t);
      std::vector<base::BufferPtr> live;
      for (int step = 0; step < kSteps; ++step) {
        if (live.size() > 16 || (!live.empty() && rng() % 3 == 0)) {
          live.erase(live.begin() + rng() % live.size());
          continue;
        }
        size_t n = rng() % (64 * kKiB);
        absl::StatusOr<base::BufferPtr> b = pool.allocate(n);
        ASSERT_TRUE(b.ok());
        // Another thread may have cached this block a moment ago; writing it checks that no
        // one else still holds it.
        std::memset((*b)->data(), t, n);
        live.push_back(*std::move(b));
      }
      // A buffer freed on another thread than the one that made it.
      handed_over[t] = pool.allocate(100 + t).value();
    });
  }
  for (std::thread& t : threads) t.join();

  MemoryStats s = pool.stats();
  EXPECT_EQ(s.live_buffers, kThreads);
  EXPECT_EQ(s.allocations, s.cache_hits + s.cache_misses);
  EXPECT_EQ(s.reserved_bytes, s.allocated_bytes + s.cached_bytes);
  size_t requested = 0;
  for (const base::BufferPtr& b : handed_over) requested += b->nbytes();
  EXPECT_EQ(s.requested_bytes, requested);
  handed_over.clear();
  s = pool.stats();
  EXPECT_EQ(s.live_buffers, 0);
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.requested_bytes, 0u);
  pool.empty_cache();
  s = pool.stats();
  EXPECT_EQ(s.reserved_bytes, 0u);
  EXPECT_EQ(s.system_frees, s.system_allocations);
}

TEST(CpuMemoryPool, ConcurrentAllocationsRespectTheLimit) {
  CpuMemoryPool pool(8 * kMiB);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<base::BufferPtr> a = pool.allocate(kMiB);
        absl::StatusOr<base::BufferPtr> b = pool.allocate(kMiB);
        failures += !a.ok() + !b.ok();
        EXPECT_LE(pool.stats().reserved_bytes, 8 * kMiB);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  MemoryStats s = pool.stats();
  EXPECT_LE(s.peak_reserved_bytes, 8 * kMiB);
  EXPECT_EQ(s.failures, failures.load());
  EXPECT_EQ(s.cache_hits + s.cache_misses, s.allocations + s.failures);
  EXPECT_EQ(s.allocated_bytes, 0u);
}

TEST(CpuMemoryPool, ProcessPoolIsOneObject) {
  EXPECT_EQ(&cpu_pool(), &cpu_pool());
  base::BufferPtr b = cpu_pool().allocate(10).value();
  EXPECT_TRUE(aligned(b->data(), 64));
}

TEST(FormatBytes, UsesBinaryUnitsWithTwoDecimals) {
  EXPECT_EQ(format_bytes(0), "0 bytes");
  EXPECT_EQ(format_bytes(1023), "1023 bytes");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536 * kMiB), "1.50 GiB");
  EXPECT_EQ(format_bytes(3 * kGiB * 1024), "3.00 TiB");
}

}  // namespace
}  // namespace smelt::runtime
