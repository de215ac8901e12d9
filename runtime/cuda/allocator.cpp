#include "runtime/cuda/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/cuda/driver.h"
#include "runtime/memory_pool.h"

namespace smelt::runtime::cuda {

size_t CachingAllocator::round_size(size_t nbytes) {
  if (nbytes == 0) return kRound;
  return (nbytes + kRound - 1) / kRound * kRound;
}

size_t CachingAllocator::segment_size(size_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSegment;
  if (rounded < kMediumRequest) return kMediumSegment;
  return (rounded + kLargeRound - 1) / kLargeRound * kLargeRound;
}

CachingAllocator::CachingAllocator(SegmentSource* source, CachingAllocatorOptions options)
    : source_(source), options_(options) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard lock(mu_);
  source_->synchronize();
  for (auto [ptr, size] : segments_) source_->free(ptr, size);
  for (Pool* pool : {&small_pool_, &large_pool_}) {
    for (Block* b : *pool) delete b;
  }
  for (auto& [ptr, b] : live_) delete b;
}

absl::StatusOr<base::BufferPtr> CachingAllocator::allocate(size_t nbytes) {
  const size_t size = round_size(nbytes);
  if (size < nbytes) {  // wrapped around
    return absl::ResourceExhaustedError(
        absl::StrCat("CUDA out of memory: cannot allocate ", nbytes, " bytes"));
  }
  const bool small = options_.caching && size <= kSmallRequest;
  Block* block = nullptr;
  {
    std::lock_guard lock(mu_);
    if (options_.caching) block = take_free_block(small ? small_pool_ : large_pool_, size);
    if (block == nullptr) {
      absl::StatusOr<Block*> fresh = new_segment(size, small);
      if (!fresh.ok()) {
        ++stats_.failures;
        return fresh.status();
      }
      block = *fresh;
      if (options_.caching) split(block, size, small ? small_pool_ : large_pool_);
    }
    block->allocated = true;
    live_.emplace(block->ptr, block);
    stats_.allocated_bytes += block->size;
    ++stats_.allocations;
    note_peaks();
  }
  return std::make_shared<base::Buffer>(reinterpret_cast<void*>(block->ptr), nbytes,
                                        Device::cuda(options_.device),
                                        [this](void* data, size_t) { release(data); });
}

CachingAllocator::Block* CachingAllocator::take_free_block(Pool& pool, size_t size) {
  Block key;
  key.size = size;
  auto it = pool.lower_bound(&key);  // smallest block >= size, lowest address among equals
  if (it == pool.end()) return nullptr;
  Block* block = *it;
  pool.erase(it);
  split(block, size, pool);
  return block;
}

void CachingAllocator::split(Block* block, size_t size, Pool& pool) {
  const size_t remainder = block->size - size;
  const bool worth_it = block->small ? remainder >= kRound : remainder > kLargeMinRemainder;
  if (!worth_it) return;
  auto* rest = new Block;
  rest->ptr = block->ptr + size;
  rest->size = remainder;
  rest->small = block->small;
  rest->prev = block;
  rest->next = block->next;
  if (block->next != nullptr) block->next->prev = rest;
  block->next = rest;
  block->size = size;
  pool.insert(rest);
}

absl::Status CachingAllocator::reserve(size_t nbytes) {
  if (limit_ != 0 && stats_.reserved_bytes + nbytes > limit_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the memory limit of ", format_bytes(limit_), " would be passed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CachingAllocator::Block*> CachingAllocator::new_segment(size_t rounded, bool small) {
  const size_t seg = options_.caching ? segment_size(rounded) : rounded;
  if (seg < rounded) {  // rounding up to 2 MiB wrapped around: no device has that much
    return absl::ResourceExhaustedError(
        absl::StrCat("CUDA out of memory: cannot allocate ", rounded, " bytes"));
  }
  absl::StatusOr<uintptr_t> ptr = absl::ResourceExhaustedError("");
  absl::Status reserved = reserve(seg);
  if (reserved.ok()) ptr = source_->allocate(seg);
  if (!reserved.ok() || (!ptr.ok() && absl::IsResourceExhausted(ptr.status()))) {
    // The ladder: give the cache back, then try once more.
    ++stats_.oom_retries;
    free_cached_segments();
    reserved = reserve(seg);
    if (reserved.ok()) ptr = source_->allocate(seg);
  }
  if (!reserved.ok() || !ptr.ok()) {
    if (reserved.ok() && !absl::IsResourceExhausted(ptr.status())) return ptr.status();
    const std::string why =
        reserved.ok() ? std::string(ptr.status().message()) : std::string(reserved.message());
    const std::string device_memory = source_->describe_memory();
    return absl::ResourceExhaustedError(absl::StrCat(
        "CUDA out of memory on device ", options_.device, ": tried to allocate ",
        format_bytes(rounded), " (a segment of ", format_bytes(seg), "); ",
        format_bytes(stats_.allocated_bytes), " allocated, ", format_bytes(stats_.reserved_bytes),
        " reserved by smelt", limit_ != 0 ? absl::StrCat(", limit ", format_bytes(limit_)) : "",
        device_memory.empty() ? "" : "; ", device_memory, " (", why, ")"));
  }
  auto* block = new Block;
  block->ptr = *ptr;
  block->size = seg;
  block->small = small;
  segments_.emplace(block->ptr, seg);
  stats_.reserved_bytes += seg;
  ++stats_.device_allocations;
  return block;
}

void CachingAllocator::free_cached_segments() {
  bool synced = false;
  for (Pool* pool : {&small_pool_, &large_pool_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* b = *it;
      if (b->prev != nullptr || b->next != nullptr) {  // part of a segment still in use
        ++it;
        continue;
      }
      if (!synced) {
        // Queued kernels may still use blocks released to the cache (stream-ordered reuse).
        source_->synchronize();
        synced = true;
      }
      source_->free(b->ptr, b->size);
      segments_.erase(b->ptr);
      stats_.reserved_bytes -= b->size;
      ++stats_.device_frees;
      it = pool->erase(it);
      delete b;
    }
  }
}

void CachingAllocator::release(void* ptr) {
  std::lock_guard lock(mu_);
  auto it = live_.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == live_.end()) std::abort();  // a buffer released twice, or not ours: memory is corrupt
  Block* block = it->second;
  live_.erase(it);
  stats_.allocated_bytes -= block->size;
  block->allocated = false;
  if (!options_.caching) {
    // The next user must not get this memory while queued kernels still read it.
    source_->synchronize();
    source_->free(block->ptr, block->size);
    segments_.erase(block->ptr);
    stats_.reserved_bytes -= block->size;
    ++stats_.device_frees;
    delete block;
    return;
  }
  release_block(block);
}

void CachingAllocator::release_block(Block* block) {
  Pool& pool = block->small ? small_pool_ : large_pool_;
  // Merge with free neighbours: they are in the pool, keyed by their size, so take them out
  // before their sizes change.
  if (Block* prev = block->prev; prev != nullptr && !prev->allocated) {
    pool.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    delete block;
    block = prev;
  }
  if (Block* next = block->next; next != nullptr && !next->allocated) {
    pool.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    delete next;
  }
  pool.insert(block);
}

void CachingAllocator::note_peaks() {
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
}

DeviceMemoryStats CachingAllocator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak_stats() {
  std::lock_guard lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard lock(mu_);
  free_cached_segments();
}

void CachingAllocator::set_memory_limit(size_t bytes) {
  std::lock_guard lock(mu_);
  limit_ = bytes;
}

size_t CachingAllocator::segment_count() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

std::string CachingAllocator::check_invariants() const {
  std::lock_guard lock(mu_);
  size_t reserved = 0, allocated = 0, free_blocks = 0;
  for (auto [base, seg] : segments_) {
    reserved += seg;
    // Find the segment's first block: a live or free block at `base` with no predecessor.
    const Block* b = nullptr;
    if (auto it = live_.find(base); it != live_.end()) b = it->second;
    for (const Pool* pool : {&small_pool_, &large_pool_}) {
      for (const Block* f : *pool) {
        if (f->ptr == base) b = f;
      }
    }
    if (b == nullptr) return absl::StrCat("segment at ", base, " has no first block");
    if (b->prev != nullptr) return absl::StrCat("segment at ", base, ": first block has a prev");
    size_t covered = 0;
    for (; b != nullptr; b = b->next) {
      if (b->ptr != base + covered) return absl::StrCat("segment at ", base, " has a gap");
      if (b->next != nullptr && b->next->prev != b) return "broken prev/next links";
      if (!b->allocated && b->next != nullptr && !b->next->allocated) {
        return absl::StrCat("segment at ", base, " has unmerged free neighbours");
      }
      const Pool& pool = b->small ? small_pool_ : large_pool_;
      if (b->allocated) {
        allocated += b->size;
        if (!live_.contains(b->ptr)) return "an allocated block is not live";
        if (pool.contains(const_cast<Block*>(b))) return "an allocated block is in a pool";
      } else {
        ++free_blocks;
        if (!pool.contains(const_cast<Block*>(b))) return "a free block is in no pool";
      }
      covered += b->size;
    }
    if (covered != seg)
      return absl::StrCat("segment at ", base, " blocks cover ", covered, " of ", seg, " bytes");
  }
  if (free_blocks != small_pool_.size() + large_pool_.size()) return "pools hold stray blocks";
  if (reserved != stats_.reserved_bytes) {
    return absl::StrCat("reserved_bytes is ", stats_.reserved_bytes, ", segments sum to ",
                        reserved);
  }
  if (allocated != stats_.allocated_bytes) {
    return absl::StrCat("allocated_bytes is ", stats_.allocated_bytes, ", live blocks sum to ",
                        allocated);
  }
  return "";
}

// ---- the driver-backed allocator
// -----------------------------------------------------------------

namespace {

class DriverSegmentSource final : public SegmentSource {
 public:
  absl::StatusOr<uintptr_t> allocate(size_t nbytes) override {
    absl::StatusOr<const DriverApi*> api = ensure_context();
    if (!api.ok()) return api.status();
    CUdeviceptr ptr = 0;
    if (absl::Status s = check((*api)->cuMemAlloc(&ptr, nbytes),
                               absl::StrCat("cuMemAlloc of ", format_bytes(nbytes)));
        !s.ok()) {
      return s;
    }
    return static_cast<uintptr_t>(ptr);
  }
  void free(uintptr_t ptr, size_t nbytes) override {
    absl::StatusOr<const DriverApi*> api = ensure_context();
    // A failing cuMemFree means a sticky context error: the memory is lost with the context.
    if (api.ok()) (*api)->cuMemFree(static_cast<CUdeviceptr>(ptr));
  }
  void synchronize() override {
    absl::StatusOr<const DriverApi*> api = ensure_context();
    if (api.ok()) (*api)->cuStreamSynchronize(stream());
  }
  std::string describe_memory() override {
    absl::StatusOr<const DriverApi*> api = ensure_context();
    size_t free = 0, total = 0;
    if (!api.ok() || (*api)->cuMemGetInfo(&free, &total) != CUDA_SUCCESS) return "";
    return absl::StrCat("device: ", format_bytes(free), " free of ", format_bytes(total));
  }
};

bool no_cache_from_env() {
  const char* v = std::getenv("SMELT_CUDA_NO_CACHE");
  return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

}  // namespace

absl::StatusOr<CachingAllocator*> device_allocator(int device) {
  if (device != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("smelt uses CUDA device 0 only; device ", device, " was asked for"));
  }
  // Never destroyed, like cpu_pool(): buffers released during static destruction still find it.
  static CachingAllocator* allocator = [] {
    CachingAllocatorOptions options;
    options.caching = !no_cache_from_env();
    return new CachingAllocator(new DriverSegmentSource, options);
  }();
  return allocator;
}

absl::StatusOr<base::BufferPtr> allocate(size_t nbytes, int device) {
  if (absl::Status s = driver().status(); !s.ok()) return s;
  absl::StatusOr<CachingAllocator*> a = device_allocator(device);
  if (!a.ok()) return a.status();
  return (*a)->allocate(nbytes);
}

DeviceMemoryStats memory_stats(int device) {
  if (!available() || device != 0) return {};
  return (*device_allocator(device))->stats();
}

void reset_peak_stats(int device) {
  if (available() && device == 0) (*device_allocator(device))->reset_peak_stats();
}

void empty_cache(int device) {
  if (available() && device == 0) (*device_allocator(device))->empty_cache();
}

void set_memory_limit(size_t bytes, int device) {
  if (available() && device == 0) (*device_allocator(device))->set_memory_limit(bytes);
}

}  // namespace smelt::runtime::cuda
