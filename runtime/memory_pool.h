// The CPU caching allocator. Every realized CPU value lives in a block from here, so a training
// loop that makes the same shapes each step stops calling the system allocator (and stops
// page-faulting fresh memory) after its first step.
//
// Requests round up to size classes: multiples of 64 bytes up to 256, then four classes per power
// of two, so above 256 bytes no block is more than 25% larger than its request. A freed block goes
// to the cache; a request takes the smallest cached block of its class or a few classes above (at
// most twice its size, or one class above for blocks of 1 MiB and more, which could otherwise
// strand a lot of memory), else a new block from the system. Blocks are 64-byte aligned; blocks
// of 1 MiB and more are mapped pages, so empty_cache() gives them straight back to the OS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "base/buffer.h"

namespace smelt::runtime {

// Byte counts of a pool at one moment. "Block" bytes are what the pool hands out (the request
// rounded up to its class); `requested_bytes` is what the live buffers asked for.
struct MemoryStats {
  size_t allocated_bytes = 0;       // blocks held by live buffers
  size_t requested_bytes = 0;       // bytes the live buffers asked for
  size_t reserved_bytes = 0;        // blocks taken from the system: allocated plus cached
  size_t cached_bytes = 0;          // free blocks kept for reuse (reserved - allocated)
  size_t peak_allocated_bytes = 0;  // highest allocated_bytes since construction or reset_peak()
  size_t peak_reserved_bytes = 0;   // highest reserved_bytes, likewise
  int64_t live_buffers = 0;
  // Every allocate() call is a hit or a miss, and ends in an allocation or a failure.
  int64_t allocations = 0;         // successful allocate() calls
  int64_t cache_hits = 0;          // served from a cached block
  int64_t cache_misses = 0;        // found no cached block to take
  int64_t system_allocations = 0;  // blocks taken from the system
  int64_t system_frees = 0;        // blocks given back to the system
  int64_t failures = 0;            // allocate() calls that returned ResourceExhausted
};

class CpuMemoryPool {
 public:
  // `limit`, when given, caps reserved bytes: a request that would pass it first empties the
  // cache, then fails with ResourceExhausted.
  explicit CpuMemoryPool(std::optional<size_t> limit = std::nullopt);
  // Frees the cache. Buffers still alive stay valid and go straight back to the system when
  // released.
  ~CpuMemoryPool();
  CpuMemoryPool(const CpuMemoryPool&) = delete;
  CpuMemoryPool& operator=(const CpuMemoryPool&) = delete;

  // A 64-byte aligned buffer of at least `nbytes` (0 is allowed and still gives a distinct
  // pointer), whose release returns its block to this pool. ResourceExhausted when the limit or
  // the system refuses, with a message like
  //   CPU out of memory: tried to allocate 1.50 GiB; 512.00 MiB allocated, 768.00 MiB reserved,
  //   limit 2.00 GiB
  absl::StatusOr<base::BufferPtr> allocate(size_t nbytes);

  MemoryStats stats() const;
  // Restarts the peaks from the current allocated and reserved bytes.
  void reset_peak();
  // Gives every cached (unused) block back to the system.
  void empty_cache();

  std::optional<size_t> limit() const;
  // Takes effect at the next allocation; lowering it frees nothing already allocated.
  void set_limit(std::optional<size_t> limit);

  // The block size that a request of `nbytes` gets: its size class (at least 64).
  static size_t round_size(size_t nbytes);

 private:
  struct State;
  State* state_;  // shared with outstanding buffers, which may outlive the pool
};

// The process-wide CPU pool. Never destroyed, so buffers released during static destruction
// still find it.
CpuMemoryPool& cpu_pool();

// "512 bytes", "1.50 KiB", "2.00 GiB": the sizes that out-of-memory messages and stats print.
std::string format_bytes(size_t nbytes);

}  // namespace smelt::runtime
