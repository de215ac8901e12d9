// The caching device allocator: its block logic on the CPU with a fake segment source (always),
// and the real device allocator and copies (only where a CUDA device is present).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "runtime/cuda_api.h"

#if SMELT_HAVE_CUDA
#include "runtime/cuda/allocator.h"
#endif

namespace smelt::runtime::cuda {
namespace {

using ::testing::HasSubstr;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;

TEST(CudaAvailability, NeverCrashesAndExplainsItself) {
  const bool avail = available();
  absl::Status s = availability();
  EXPECT_EQ(avail, s.ok()) << s;
  if (!avail) {
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_FALSE(s.message().empty());
    EXPECT_EQ(device_count(), 0);
    absl::StatusOr<base::BufferPtr> b = allocate(16);
    EXPECT_TRUE(absl::IsUnavailable(b.status())) << b.status();
    EXPECT_TRUE(absl::IsUnavailable(synchronize()));
    EXPECT_EQ(memory_stats().reserved_bytes, 0u);
    empty_cache();  // harmless without a device
  } else {
    EXPECT_GE(device_count(), 1);
  }
  EXPECT_FALSE(target_arch().empty());
}

#if SMELT_HAVE_CUDA

// Fake device memory: addresses from a counter (segments never overlap), a cap on the bytes
// held, and counters of what the allocator asked for. No memory is touched.
class FakeSource final : public SegmentSource {
 public:
  absl::StatusOr<uintptr_t> allocate(size_t nbytes) override {
    ++allocate_calls;
    if (fail_other) return absl::InternalError("fake: the device fell off the bus");
    if (cap != 0 && held + nbytes > cap) {
      ++refusals;
      return absl::ResourceExhaustedError("fake: out of memory");
    }
    const uintptr_t ptr = next;
    next += nbytes + 4096;  // a gap, so adjacent segments are never contiguous
    segments.emplace(ptr, nbytes);
    held += nbytes;
    return ptr;
  }
  void free(uintptr_t ptr, size_t nbytes) override {
    auto it = segments.find(ptr);
    ASSERT_NE(it, segments.end()) << "freeing an unknown segment";
    ASSERT_EQ(it->second, nbytes);
    held -= nbytes;
    segments.erase(it);
    EXPECT_GT(syncs, 0) << "freed a segment without waiting for the stream";
  }
  void synchronize() override { ++syncs; }
  std::string describe_memory() override { return "device: fake"; }

  uintptr_t next = 0x100000000;
  size_t cap = 0;
  size_t held = 0;
  bool fail_other = false;
  int allocate_calls = 0, refusals = 0, syncs = 0;
  std::map<uintptr_t, size_t> segments;
};

base::BufferPtr must_allocate(CachingAllocator& a, size_t nbytes) {
  absl::StatusOr<base::BufferPtr> b = a.allocate(nbytes);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

uintptr_t addr(const base::BufferPtr& b) { return reinterpret_cast<uintptr_t>(b->data()); }

TEST(CachingAllocator, RoundsAndSizesSegments) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::segment_size(512), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size(kMiB), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size(kMiB + 512), 20 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size(10 * kMiB - 512), 20 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size(10 * kMiB), 10 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size(11 * kMiB + 1), 12 * kMiB);
}

TEST(CachingAllocator, SmallRequestsShareASegmentAndAreReused) {
  FakeSource src;
  CachingAllocator a(&src, {});
  base::BufferPtr x = must_allocate(a, 100);
  base::BufferPtr y = must_allocate(a, 1000);
  EXPECT_EQ(x->nbytes(), 100u);
  EXPECT_EQ(x->device(), Device::cuda(0));
  EXPECT_EQ(src.allocate_calls, 1);
  EXPECT_EQ(addr(y), addr(x) + 512);  // split from the same segment
  DeviceMemoryStats s = a.stats();
  EXPECT_EQ(s.allocated_bytes, 512u + 1024u);
  EXPECT_EQ(s.reserved_bytes, 2 * kMiB);
  EXPECT_EQ(s.allocations, 2);
  EXPECT_EQ(s.device_allocations, 1);
  const uintptr_t old_x = addr(x);
  x.reset();
  base::BufferPtr z = must_allocate(a, 300);
  EXPECT_EQ(addr(z), old_x);  // best fit: the freed 512-byte hole
  EXPECT_EQ(src.allocate_calls, 1);
  EXPECT_EQ(a.check_invariants(), "");
}

TEST(CachingAllocator, LargePoolSplitsOnlyBigRemainders) {
  FakeSource src;
  CachingAllocator a(&src, {});
  base::BufferPtr x = must_allocate(a, 3 * kMiB);  // a 20 MiB segment, 17 MiB remain
  EXPECT_EQ(a.stats().reserved_bytes, 20 * kMiB);
  base::BufferPtr y = must_allocate(a, 16 * kMiB);  // remainder 1 MiB: not split
  EXPECT_EQ(src.allocate_calls, 1);
  EXPECT_EQ(a.stats().allocated_bytes, 20 * kMiB);
  // Small requests never come from the large pool.
  base::BufferPtr s = must_allocate(a, 4 * kKiB);
  EXPECT_EQ(src.allocate_calls, 2);
  EXPECT_EQ(a.stats().reserved_bytes, 22 * kMiB);
  EXPECT_EQ(a.check_invariants(), "");
}

TEST(CachingAllocator, BestFitPicksTheSmallestBlockThatFits) {
  FakeSource src;
  CachingAllocator a(&src, {});
  // Three free holes of 4, 2 and 8 KiB, separated by live blocks.
  std::vector<base::BufferPtr> keep, holes;
  for (size_t n : {4 * kKiB, 2 * kKiB, 8 * kKiB}) {
    holes.push_back(must_allocate(a, n));
    keep.push_back(must_allocate(a, 512));
  }
  const uintptr_t hole2 = addr(holes[1]);
  holes.clear();
  base::BufferPtr b = must_allocate(a, 1500);
  EXPECT_EQ(addr(b), hole2);
  EXPECT_EQ(a.check_invariants(), "");
}

TEST(CachingAllocator, FreedNeighboursMergeInAnyOrder) {
  FakeSource src;
  CachingAllocator a(&src, {});
  std::vector<base::BufferPtr> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(must_allocate(a, 64 * kKiB));
  const uintptr_t base = addr(blocks[0]);
  for (int i : {3, 1, 2, 7, 0, 5, 6, 4}) {
    blocks[i].reset();
    EXPECT_EQ(a.check_invariants(), "") << "after freeing block " << i;
  }
  // Everything merged back into one free 2 MiB block: a 2 MiB-ish small request fits at base.
  base::BufferPtr whole = must_allocate(a, kMiB);
  EXPECT_EQ(addr(whole), base);
  EXPECT_EQ(src.allocate_calls, 1);
}

TEST(CachingAllocator, RandomWorkloadKeepsInvariantsAndReturnsEverything) {
  FakeSource src;
  CachingAllocator a(&src, {});
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> kind(0, 9);
  std::vector<base::BufferPtr> live;
  size_t peak = 0;
  for (int step = 0; step < 3000; ++step) {
    if (live.empty() || kind(rng) < 6) {
      size_t n;
      switch (kind(rng) % 4) {
        case 0:
          n = std::uniform_int_distribution<size_t>(0, 4 * kKiB)(rng);
          break;
        case 1:
          n = std::uniform_int_distribution<size_t>(4 * kKiB, kMiB)(rng);
          break;
        case 2:
          n = std::uniform_int_distribution<size_t>(kMiB, 12 * kMiB)(rng);
          break;
        default:
          n = std::uniform_int_distribution<size_t>(12 * kMiB, 40 * kMiB)(rng);
          break;
      }
      live.push_back(must_allocate(a, n));
    } else {
      std::swap(live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)], live.back());
      live.pop_back();
    }
    peak = std::max(peak, a.stats().allocated_bytes);
    if (step % 97 == 0) {
      ASSERT_EQ(a.check_invariants(), "") << "at step " << step;
      if (step % 5 == 0) a.empty_cache();
    }
  }
  // Live buffers never overlap.
  std::vector<std::pair<uintptr_t, size_t>> spans;
  for (const auto& b : live) spans.emplace_back(addr(b), CachingAllocator::round_size(b->nbytes()));
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    ASSERT_LE(spans[i - 1].first + spans[i - 1].second, spans[i].first);
  }
  EXPECT_EQ(a.stats().peak_allocated_bytes, peak);
  live.clear();
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  EXPECT_EQ(a.check_invariants(), "");
  a.empty_cache();
  DeviceMemoryStats s = a.stats();
  EXPECT_EQ(s.reserved_bytes, 0u);
  EXPECT_EQ(src.held, 0u);
  EXPECT_EQ(a.segment_count(), 0u);
  EXPECT_EQ(s.device_allocations, s.device_frees);
}

TEST(CachingAllocator, OutOfMemoryFlushesTheCacheAndRetries) {
  FakeSource src;
  src.cap = 40 * kMiB;
  CachingAllocator a(&src, {});
  { base::BufferPtr x = must_allocate(a, 30 * kMiB); }  // cached: 30 MiB reserved, unused
  EXPECT_EQ(a.stats().reserved_bytes, 30 * kMiB);
  base::BufferPtr y = must_allocate(a, 32 * kMiB);  // needs the cache freed first
  DeviceMemoryStats s = a.stats();
  EXPECT_EQ(s.oom_retries, 1);
  EXPECT_EQ(s.reserved_bytes, 32 * kMiB);
  EXPECT_EQ(s.device_frees, 1);
  EXPECT_EQ(src.refusals, 1);
  EXPECT_EQ(a.check_invariants(), "");
}

TEST(CachingAllocator, OutOfMemoryFailsCleanlyAndStaysUsable) {
  FakeSource src;
  src.cap = 24 * kMiB;
  CachingAllocator a(&src, {});
  base::BufferPtr x = must_allocate(a, 20 * kMiB);
  absl::StatusOr<base::BufferPtr> y = a.allocate(10 * kMiB);
  ASSERT_TRUE(absl::IsResourceExhausted(y.status())) << y.status();
  EXPECT_THAT(y.status().message(), HasSubstr("tried to allocate 10.00 MiB"));
  EXPECT_THAT(y.status().message(), HasSubstr("20.00 MiB allocated"));
  EXPECT_THAT(y.status().message(), HasSubstr("20.00 MiB reserved"));
  EXPECT_THAT(y.status().message(), HasSubstr("device: fake"));
  EXPECT_EQ(a.stats().failures, 1);
  EXPECT_EQ(a.check_invariants(), "");
  x.reset();
  base::BufferPtr z = must_allocate(a, 10 * kMiB);  // reuses the freed segment
  EXPECT_EQ(a.stats().allocations, 2);
  EXPECT_EQ(a.check_invariants(), "");
}

TEST(CachingAllocator, MemoryLimitCapsReserved) {
  FakeSource src;
  CachingAllocator a(&src, {});
  a.set_memory_limit(4 * kMiB);
  std::vector<base::BufferPtr> held;
  for (int i = 0; i < 4; ++i) held.push_back(must_allocate(a, kMiB));  // 2 small segments: 4 MiB
  absl::StatusOr<base::BufferPtr> z = a.allocate(kMiB);
  ASSERT_TRUE(absl::IsResourceExhausted(z.status())) << z.status();
  EXPECT_THAT(z.status().message(), HasSubstr("limit 4.00 MiB"));
  EXPECT_LE(a.stats().reserved_bytes, 4 * kMiB);
  a.set_memory_limit(0);
  EXPECT_TRUE(a.allocate(kMiB).ok());
}

TEST(CachingAllocator, OtherSourceErrorsPassThrough) {
  FakeSource src;
  src.fail_other = true;
  CachingAllocator a(&src, {});
  absl::StatusOr<base::BufferPtr> b = a.allocate(100);
  EXPECT_TRUE(absl::IsInternal(b.status())) << b.status();
  EXPECT_EQ(a.stats().oom_retries, 0);
}

TEST(CachingAllocator, WithoutCachingEveryBufferIsItsOwnSegment) {
  FakeSource src;
  CachingAllocator a(&src, {.caching = false});
  base::BufferPtr x = must_allocate(a, 100);
  base::BufferPtr y = must_allocate(a, 100);
  EXPECT_EQ(a.stats().reserved_bytes, 1024u);
  EXPECT_EQ(src.allocate_calls, 2);
  x.reset();
  EXPECT_EQ(a.stats().reserved_bytes, 512u);
  EXPECT_EQ(a.stats().device_frees, 1);
  y.reset();
  EXPECT_EQ(src.held, 0u);
}

TEST(CachingAllocator, PeaksAndTheirReset) {
  FakeSource src;
  CachingAllocator a(&src, {});
  { base::BufferPtr x = must_allocate(a, 3 * kMiB); }
  DeviceMemoryStats s = a.stats();
  EXPECT_EQ(s.peak_allocated_bytes, 3 * kMiB);
  EXPECT_EQ(s.allocated_bytes, 0u);
  a.reset_peak_stats();
  s = a.stats();
  EXPECT_EQ(s.peak_allocated_bytes, 0u);
  EXPECT_EQ(s.peak_reserved_bytes, 20 * kMiB);
}

TEST(CachingAllocator, ThreadsAllocateAndFreeConcurrently) {
  FakeSource src;
  CachingAllocator a(&src, {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&a, t] {
      std::mt19937 rng(t);
      std::vector<base::BufferPtr> mine;
      for (int i = 0; i < 2000; ++i) {
        if (mine.size() < 20 && rng() % 3 != 0) {
          auto b = a.allocate(rng() % (3 * kMiB));
          if (b.ok()) mine.push_back(*b);
        } else if (!mine.empty()) {
          mine.erase(mine.begin() + rng() % mine.size());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(a.check_invariants(), "");
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
}

#endif  // SMELT_HAVE_CUDA

// ---- on a device ------------------------------------------------------------------------------

#define SKIP_WITHOUT_DEVICE() \
  if (!available()) GTEST_SKIP() << "no CUDA device: " << availability()

TEST(CudaDevice, InfoAndArch) {
  SKIP_WITHOUT_DEVICE();
  absl::StatusOr<DeviceInfo> info = device_info(0);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->name.empty());
  EXPECT_GT(info->total_memory, 0u);
  EXPECT_EQ(target_arch(), "sm_" + std::to_string(info->cc_major) + std::to_string(info->cc_minor));
}

TEST(CudaDevice, CopyRoundTrips) {
  SKIP_WITHOUT_DEVICE();
  for (size_t n : {size_t{0}, size_t{1}, size_t{511}, size_t{4096}, size_t{256 * kKiB},
                   size_t{3 * kMiB + 7}, size_t{8 * kMiB}, size_t{21 * kMiB + 3}}) {
    std::vector<uint8_t> in(n), out(n, 0xAB);
    for (size_t i = 0; i < n; ++i) in[i] = static_cast<uint8_t>(i * 131 + 7);
    absl::StatusOr<base::BufferPtr> d = allocate(n);
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(copy_to_device((*d)->data(), in.data(), n).ok()) << n;
    absl::StatusOr<base::BufferPtr> d2 = allocate(n);
    ASSERT_TRUE(d2.ok()) << d2.status();
    ASSERT_TRUE(copy_on_device((*d2)->data(), (*d)->data(), n).ok());
    ASSERT_TRUE(copy_to_host(out.data(), (*d2)->data(), n).ok()) << n;
    EXPECT_EQ(in, out) << n << " bytes";
    if (n > 0) {
      ASSERT_TRUE(memset_on_device((*d2)->data(), 0x5A, n).ok());
      ASSERT_TRUE(copy_to_host(out.data(), (*d2)->data(), n).ok());
      EXPECT_EQ(std::count(out.begin(), out.end(), 0x5A), static_cast<ptrdiff_t>(n));
    }
  }
  EXPECT_TRUE(synchronize().ok());
}

TEST(CudaDevice, AllocatorStressReuseAndEmptyCache) {
  SKIP_WITHOUT_DEVICE();
  empty_cache();
  const DeviceMemoryStats before = memory_stats();
  std::mt19937 rng(7);
  std::vector<base::BufferPtr> live;
  for (int i = 0; i < 2000; ++i) {
    if (live.size() < 64 && rng() % 3 != 0) {
      size_t n = rng() % 4 == 0 ? rng() % (64 * kMiB) : rng() % (256 * kKiB);
      absl::StatusOr<base::BufferPtr> b = allocate(n);
      ASSERT_TRUE(b.ok()) << b.status();
      // Touch both ends, so an out-of-segment block would fault.
      if (n > 0) {
        ASSERT_TRUE(memset_on_device((*b)->data(), 1, 1).ok());
        ASSERT_TRUE(memset_on_device(static_cast<char*>((*b)->data()) + n - 1, 1, 1).ok());
      }
      live.push_back(*b);
    } else if (!live.empty()) {
      live.erase(live.begin() + rng() % live.size());
    }
  }
  ASSERT_TRUE(synchronize().ok());
  live.clear();
  DeviceMemoryStats s = memory_stats();
  EXPECT_EQ(s.allocated_bytes, before.allocated_bytes);
  EXPECT_LT(s.device_allocations - before.device_allocations, 2000);  // reuse happened
  empty_cache();
  EXPECT_EQ(memory_stats().reserved_bytes, before.reserved_bytes);
}

TEST(CudaDevice, OutOfMemoryWithALimitRecovers) {
  SKIP_WITHOUT_DEVICE();
  if (const char* v = std::getenv("SMELT_CUDA_NO_CACHE");
      v != nullptr && std::strcmp(v, "1") == 0) {
    GTEST_SKIP() << "SMELT_CUDA_NO_CACHE=1: there is no cache to flush";
  }
  empty_cache();
  set_memory_limit(64 * kMiB);
  {
    absl::StatusOr<base::BufferPtr> a = allocate(40 * kMiB);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  // 40 MiB cached: a 50 MiB request only fits after the cache is flushed.
  const int64_t retries = memory_stats().oom_retries;
  absl::StatusOr<base::BufferPtr> b = allocate(50 * kMiB);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(memory_stats().oom_retries, retries + 1);
  absl::StatusOr<base::BufferPtr> c = allocate(50 * kMiB);
  ASSERT_TRUE(absl::IsResourceExhausted(c.status())) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("free of"));
  b->reset();
  set_memory_limit(0);
  EXPECT_TRUE(allocate(50 * kMiB).ok());
  empty_cache();
}

TEST(CudaDevice, HugeRequestFailsWithResourceExhausted) {
  SKIP_WITHOUT_DEVICE();
  absl::StatusOr<base::BufferPtr> b = allocate(size_t{1} << 50);  // 1 PiB
  ASSERT_TRUE(absl::IsResourceExhausted(b.status())) << b.status();
  EXPECT_THAT(b.status().message(), HasSubstr("CUDA out of memory"));
  absl::StatusOr<base::BufferPtr> ok = allocate(kMiB);
  EXPECT_TRUE(ok.ok()) << ok.status();
}

}  // namespace
}  // namespace smelt::runtime::cuda
