#include "base/buffer.h"

#include <cstdlib>
#include <new>

namespace smelt::base {

std::shared_ptr<Buffer> Buffer::allocate_host(size_t nbytes) {
  // aligned_alloc wants a size that is a multiple of the alignment, and never 0.
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) throw std::bad_alloc();
  return std::make_shared<Buffer>(p, nbytes, Device::cpu(), [](void* d, size_t) { std::free(d); });
}

}  // namespace smelt::base
