// The caching device allocator behind cuda::allocate(), in the style of PyTorch's
// CUDACachingAllocator. Device memory comes in segments (cuMemAlloc); a request takes a block of a
// segment, and a released block goes back to its pool rather than to the driver, because
// cuMemAlloc/cuMemFree are slow and cuMemFree synchronizes the device.
//
// - Requests round up to 512 bytes. Small ones (<= 1 MiB) are carved from 2 MiB segments; large
//   ones from segments of their own size rounded up to 2 MiB, except that requests under 10 MiB
//   get a 20 MiB segment so that several of them share one.
// - A request takes the best fit: the smallest free block of its pool that is big enough (ties:
//   lowest address), split when the remainder is worth keeping (small pool: >= 512 bytes; large
//   pool: > 1 MiB, so large blocks do not fragment into slivers).
// - A released block merges with its free neighbours in the same segment.
// - Out of memory (the source fails, or the limit would be passed): wait for the stream, give
//   every fully free segment back, and retry once; then fail with ResourceExhausted naming the
//   request, allocated and reserved bytes, and the device's free/total memory.
//
// Reuse is stream-ordered: all device work is on one stream, so a block released while kernels
// reading it are queued can be handed out at once; its next user's work queues after theirs.
//
// The block logic talks to the device only through a SegmentSource, so tests can run it on the
// CPU with a fake source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/buffer.h"
#include "runtime/cuda_api.h"

namespace smelt::runtime::cuda {

// Where segments come from: cuMemAlloc/cuMemFree on the device, or a fake in tests.
class SegmentSource {
 public:
  virtual ~SegmentSource() = default;
  // A new segment of `nbytes` (never 0). ResourceExhausted when the device is out of memory
  // (the allocator then frees its cache and retries); any other error is returned as is.
  virtual absl::StatusOr<uintptr_t> allocate(size_t nbytes) = 0;
  virtual void free(uintptr_t ptr, size_t nbytes) = 0;
  // Waits until no queued device work can still use memory about to be freed.
  virtual void synchronize() = 0;
  // "device: 1.00 GiB free of 80.00 GiB" (for out-of-memory messages), or "".
  virtual std::string describe_memory() = 0;
};

struct CachingAllocatorOptions {
  // False: every request is its own segment, freed when released (SMELT_CUDA_NO_CACHE=1, so
  // compute-sanitizer sees each buffer's bounds).
  bool caching = true;
  int device = 0;  // the Device of the buffers made
};

class CachingAllocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallRequest = size_t{1} << 20;       // at most this: small pool
  static constexpr size_t kSmallSegment = size_t{2} << 20;       // the small pool's segments
  static constexpr size_t kLargeRound = size_t{2} << 20;         // large segments are multiples
  static constexpr size_t kMediumRequest = size_t{10} << 20;     // under this: a shared segment
  static constexpr size_t kMediumSegment = size_t{20} << 20;     // ... of this size
  static constexpr size_t kLargeMinRemainder = size_t{1} << 20;  // split only above this

  // `source` must outlive the allocator. Buffers hold a pointer to the allocator: it must
  // outlive every buffer it made (the process-wide ones are never destroyed).
  CachingAllocator(SegmentSource* source, CachingAllocatorOptions options);
  // Frees every segment. Buffers still alive must not be released afterwards.
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A buffer of at least `nbytes` (0 allowed: a 512-byte block), released back to this cache.
  absl::StatusOr<base::BufferPtr> allocate(size_t nbytes);

  DeviceMemoryStats stats() const;
  void reset_peak_stats();
  // Gives every segment with no live block back to the source (after synchronize()).
  void empty_cache();
  // A cap on reserved bytes; 0 means none. Lowering it frees nothing by itself.
  void set_memory_limit(size_t bytes);

  // Consistency check for tests: every segment is tiled by its blocks, free neighbours are
  // merged, pools hold exactly the free blocks, and the byte counters match. "" when sound.
  std::string check_invariants() const;
  // Number of segments held (tests).
  size_t segment_count() const;

  static size_t round_size(size_t nbytes);
  // The size of the segment made for a (rounded) request.
  static size_t segment_size(size_t rounded);

 private:
  struct Block {
    uintptr_t ptr = 0;
    size_t size = 0;
    bool small = false;  // which pool
    bool allocated = false;
    Block* prev = nullptr;  // neighbours in the same segment, by address
    Block* next = nullptr;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  using Pool = std::set<Block*, BySizeThenAddress>;

  // All of these run with mu_ held.
  Block* take_free_block(Pool& pool, size_t size);
  absl::StatusOr<Block*> new_segment(size_t rounded, bool small);
  absl::Status reserve(size_t nbytes);  // source allocation within the limit
  void free_cached_segments();
  void release_block(Block* block);
  void split(Block* block, size_t size, Pool& pool);
  void note_peaks();

  void release(void* ptr);  // the Buffer's release

  SegmentSource* const source_;
  const CachingAllocatorOptions options_;
  mutable std::mutex mu_;
  Pool small_pool_;
  Pool large_pool_;
  std::unordered_map<uintptr_t, Block*> live_;      // allocated blocks by address
  std::unordered_map<uintptr_t, size_t> segments_;  // base address -> size, of each segment
  size_t limit_ = 0;
  DeviceMemoryStats stats_;
};

// The process-wide allocator of `device` (backed by the driver), created on first use and never
// destroyed; InvalidArgument for a device other than 0 (smelt drives device 0 only).
absl::StatusOr<CachingAllocator*> device_allocator(int device);

}  // namespace smelt::runtime::cuda
