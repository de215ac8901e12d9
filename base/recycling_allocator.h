// An allocator for small objects that a step builds and frees by the hundred (graph nodes, tensor
// handles): freed blocks go to a per-thread free list and are handed out again. A realization
// frees its whole consumed graph at once and the next step builds one just like it: with malloc,
// most of those frees overflow the per-size cache and take its slow path (measured: malloc/free
// were ~26% of a small graph's build + realize). For std::allocate_shared, which puts the object
// and its reference counts in one block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "base/tls.h"

namespace smelt::base {
namespace recycling_internal {

struct FreeList {
  void* head = nullptr;
  uint32_t size = 0;
  bool registered = false;  // the thread's drainer exists
  bool closed = false;      // the thread is ending: no more caching
};
// The cap on each list, so a burst of frees does not pin memory for the thread's life.
inline constexpr uint32_t kMaxCachedBlocks = 4096;

// Empties its list when the thread ends, and closes it: a block freed after that (an object
// outliving its thread's locals) goes back to operator delete.
struct Drainer {
  FreeList* list;
  ~Drainer() {
    list->closed = true;
    while (list->head != nullptr) {
      void* next = *static_cast<void**>(list->head);
      ::operator delete(list->head);
      list->head = next;
    }
    list->size = 0;
  }
};

// One list per thread and block size. Trivially destructible, so it stays usable while other
// thread locals are destroyed, and reached with one TLS lookup; the drainer is created on the
// thread's first use only.
template <size_t kSize>
FreeList& free_list() {
  thread_local FreeList list SMELT_FAST_TLS;
  if (!list.registered) [[unlikely]] {
    list.registered = true;
    thread_local Drainer drainer{&list};
    (void)drainer;
  }
  return list;
}

}  // namespace recycling_internal

template <typename T>
struct RecyclingAllocator {
  using value_type = T;
  RecyclingAllocator() = default;
  template <typename U>
  RecyclingAllocator(const RecyclingAllocator<U>&) {}  // NOLINT: rebinding, as allocators do
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  static_assert(sizeof(T) >= sizeof(void*));

  T* allocate(size_t n) {
    if (n == 1) {
      recycling_internal::FreeList& l = recycling_internal::free_list<sizeof(T)>();
      if (l.head != nullptr) {
        void* p = l.head;
        l.head = *static_cast<void**>(p);
        --l.size;
        return static_cast<T*>(p);
      }
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) {
    if (n == 1) {
      recycling_internal::FreeList& l = recycling_internal::free_list<sizeof(T)>();
      if (!l.closed && l.size < recycling_internal::kMaxCachedBlocks) {
        *reinterpret_cast<void**>(p) = l.head;
        l.head = p;
        ++l.size;
        return;
      }
    }
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const RecyclingAllocator<U>&) const {
    return true;
  }
};

}  // namespace smelt::base
