#include "runtime/memory_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace smelt::runtime {
namespace {

constexpr size_t kAlignment = 64;
// Below this, aligned_alloc; from here on, whole pages from mmap, which munmap returns to the OS
// at once (malloc may keep freed memory in its arenas).
constexpr size_t kMapThreshold = size_t{1} << 20;
// No machine has this much memory; the bound keeps round_size from overflowing.
constexpr size_t kMaxRequest = size_t{1} << 60;

// Class sizes are 64, 128, 192, 256, then m * 2^(k-2) for m in 5..8: four per power of two.
constexpr size_t class_round(size_t nbytes) {
  if (nbytes <= 256) return nbytes == 0 ? 64 : (nbytes + 63) & ~size_t{63};
  int k = std::bit_width(nbytes - 1) - 1;  // 2^k < nbytes <= 2^(k+1)
  size_t step = size_t{1} << (k - 2);
  return (nbytes + step - 1) & ~(step - 1);
}

constexpr int class_index(size_t block) {
  if (block <= 256) return static_cast<int>(block / 64) - 1;
  int k = std::bit_width(block - 1) - 1;
  return 4 + (k - 8) * 4 + static_cast<int>(block >> (k - 2)) - 5;
}

constexpr size_t class_size(int index) {
  if (index < 4) return 64 * static_cast<size_t>(index + 1);
  int k = 8 + (index - 4) / 4;
  return static_cast<size_t>(5 + (index - 4) % 4) << (k - 2);
}

constexpr int kNumClasses = class_index(class_round(kMaxRequest)) + 1;
static_assert(class_size(kNumClasses - 1) == class_round(kMaxRequest));

// The largest class a request of class `index` may take from the cache. Twice the request keeps
// waste bounded while letting shapes that vary a little reuse blocks; big blocks get only the next
// class up, since half of a 1 GiB block idle is too much to strand.
int max_reuse_index(int index) {
  size_t size = class_size(index);
  int limit = size < kMapThreshold ? class_index(2 * size) : index + 1;
  return std::min(limit, kNumClasses - 1);
}

void* system_allocate(size_t block) {
  if (block < kMapThreshold) return std::aligned_alloc(kAlignment, block);
  void* p = mmap(nullptr, block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  // No MADV_HUGEPAGE: with the common THP setting "defrag=madvise" the first fault can stall for
  // compaction (we measured 220 ms for a 64 MiB block against 40 ms with small pages).
  return p == MAP_FAILED ? nullptr : p;
}

void system_free(void* p, size_t block) {
  if (block < kMapThreshold) {
    std::free(p);
  } else {
    munmap(p, block);
  }
}

struct Block {
  void* ptr;
  size_t size;
};

void system_free_all(const std::vector<Block>& blocks) {
  for (const Block& b : blocks) system_free(b.ptr, b.size);
}

}  // namespace

// Lives as long as the pool or its last outstanding buffer, whichever is later. Buffers hold a
// raw pointer, and the count of live buffers decides when to delete it, rather than a shared_ptr
// that would push the release callback out of std::function's inline storage.
//
// std::mutex, not absl::Mutex: the distribution's absl is built with its debug deadlock detector
// on, which made a lock/unlock pair cost 74 ns against 8 ns, and each buffer takes two.
struct CpuMemoryPool::State {
  mutable std::mutex mu;
  std::optional<size_t> limit;  // everything here is guarded by mu
  MemoryStats stats;
  // One LIFO list per class, so a freed block is the next one handed out: its lines may still be
  // in cache.
  std::vector<std::vector<void*>> free_lists;
  // Set when the pool is destroyed: no one could empty the cache any more, so releases free.
  bool orphaned = false;

  // Empties the cache into `out`, for the caller to free outside the lock.
  void take_cache(std::vector<Block>& out) {
    for (int i = 0; i < kNumClasses; ++i) {
      size_t size = class_size(i);
      for (void* p : free_lists[i]) out.push_back({p, size});
      stats.cached_bytes -= size * free_lists[i].size();
      stats.reserved_bytes -= size * free_lists[i].size();
      stats.system_frees += static_cast<int64_t>(free_lists[i].size());
      free_lists[i].clear();
    }
  }

  void note_allocated(size_t block, size_t nbytes) {
    ++stats.allocations;
    ++stats.live_buffers;
    stats.allocated_bytes += block;
    stats.requested_bytes += nbytes;
    stats.peak_allocated_bytes = std::max(stats.peak_allocated_bytes, stats.allocated_bytes);
    stats.peak_reserved_bytes = std::max(stats.peak_reserved_bytes, stats.reserved_bytes);
  }

  absl::Status out_of_memory(size_t nbytes, absl::string_view why) {
    ++stats.failures;
    return absl::ResourceExhaustedError(
        absl::StrFormat("CPU out of memory: tried to allocate %s; %s allocated, %s reserved, %s",
                        format_bytes(nbytes), format_bytes(stats.allocated_bytes),
                        format_bytes(stats.reserved_bytes), why));
  }

  // A Buffer's release callback. Two words and trivially copyable, so std::function stores it
  // inline instead of allocating.
  struct ReturnBlock {
    State* state;
    size_t block;
    void operator()(void* data, size_t nbytes) const { state->release(data, block, nbytes); }
  };

  base::BufferPtr make_buffer(void* p, size_t block, size_t nbytes) {
    static_assert(std::is_trivially_copyable_v<ReturnBlock> && sizeof(ReturnBlock) <= 16);
    return std::make_shared<base::Buffer>(p, nbytes, Device::cpu(), ReturnBlock{this, block});
  }

  void release(void* p, size_t block, size_t nbytes) {
    bool free_now;
    bool delete_state;
    {
      std::lock_guard<std::mutex> lock(mu);
      --stats.live_buffers;
      stats.allocated_bytes -= block;
      stats.requested_bytes -= nbytes;
      free_now = orphaned;
      delete_state = orphaned && stats.live_buffers == 0;
      if (!free_now) {
        free_lists[class_index(block)].push_back(p);
        stats.cached_bytes += block;
      }
    }
    if (free_now) system_free(p, block);
    if (delete_state) delete this;
  }
};

CpuMemoryPool::CpuMemoryPool(std::optional<size_t> limit) : state_(new State) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->limit = limit;
  state_->free_lists.resize(kNumClasses);
}

CpuMemoryPool::~CpuMemoryPool() {
  std::vector<Block> cached;
  bool delete_state;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->take_cache(cached);
    state_->orphaned = true;
    delete_state = state_->stats.live_buffers == 0;
  }
  system_free_all(cached);
  if (delete_state) delete state_;
}

size_t CpuMemoryPool::round_size(size_t nbytes) { return class_round(nbytes); }

absl::StatusOr<base::BufferPtr> CpuMemoryPool::allocate(size_t nbytes) {
  State& s = *state_;
  if (nbytes > kMaxRequest) {
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.stats.cache_misses;
    return s.out_of_memory(nbytes, "more than any machine has");
  }
  size_t want = class_round(nbytes);
  int index = class_index(want);

  std::vector<Block> evicted;
  absl::Status refused;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    for (int i = index, last = max_reuse_index(index); i <= last; ++i) {
      std::vector<void*>& list = s.free_lists[i];
      if (list.empty()) continue;
      void* p = list.back();
      list.pop_back();
      size_t block = class_size(i);
      s.stats.cached_bytes -= block;
      ++s.stats.cache_hits;
      s.note_allocated(block, nbytes);
      lock.unlock();
      return s.make_buffer(p, block, nbytes);
    }
    ++s.stats.cache_misses;
    if (s.limit && s.stats.reserved_bytes + want > *s.limit) {
      s.take_cache(evicted);
      if (s.stats.reserved_bytes + want > *s.limit) {
        refused = s.out_of_memory(nbytes, "limit " + format_bytes(*s.limit));
      }
    }
    // Counted before the system call, so that concurrent misses cannot together pass the limit.
    if (refused.ok()) s.stats.reserved_bytes += want;
  }
  system_free_all(evicted);
  if (!refused.ok()) return refused;

  void* p = system_allocate(want);
  if (p == nullptr) {
    // Cached blocks of other classes may be what the system is missing.
    evicted.clear();
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.take_cache(evicted);
    }
    system_free_all(evicted);
    p = system_allocate(want);
  }
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (p == nullptr) {
      s.stats.reserved_bytes -= want;
      return s.out_of_memory(nbytes, "and the system refused more");
    }
    ++s.stats.system_allocations;
    s.note_allocated(want, nbytes);
  }
  return s.make_buffer(p, want, nbytes);
}

MemoryStats CpuMemoryPool::stats() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->stats;
}

void CpuMemoryPool::reset_peak() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stats.peak_allocated_bytes = state_->stats.allocated_bytes;
  state_->stats.peak_reserved_bytes = state_->stats.reserved_bytes;
}

void CpuMemoryPool::empty_cache() {
  std::vector<Block> cached;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->take_cache(cached);
  }
  system_free_all(cached);
}

std::optional<size_t> CpuMemoryPool::limit() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->limit;
}

void CpuMemoryPool::set_limit(std::optional<size_t> limit) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->limit = limit;
}

CpuMemoryPool& cpu_pool() {
  static CpuMemoryPool* pool = new CpuMemoryPool();
  return *pool;
}

std::string format_bytes(size_t nbytes) {
  if (nbytes < 1024) return absl::StrFormat("%d bytes", nbytes);
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(nbytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.2f %s", value, kUnits[unit]);
}

}  // namespace smelt::runtime
