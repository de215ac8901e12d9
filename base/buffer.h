// A block of device memory that a realized value lives in. Below every layer: runtime's pools
// make Buffers, the IR's realized nodes hold them, neither knows the other.
#pragma once

#include <smelt/device.h>

#include <cstddef>
#include <functional>
#include <memory>

namespace smelt::base {

class Buffer {
 public:
  using Release = std::function<void(void* data, size_t nbytes)>;

  // Takes ownership of `data`; `release` gives it back (to a pool, or free()) when the last
  // holder lets go.
  Buffer(void* data, size_t nbytes, Device device, Release release)
      : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)) {}
  ~Buffer() {
    if (release_) release_(data_, nbytes_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Host memory from the system allocator, 64-byte aligned. Used until runtime's pools exist and
  // for small host-side staging.
  static std::shared_ptr<Buffer> allocate_host(size_t nbytes);

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Release release_;
};

using BufferPtr = std::shared_ptr<Buffer>;

}  // namespace smelt::base
