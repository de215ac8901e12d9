// Copies between host and device, device-side copies and memsets, and synchronize(): all on
// smelt's stream, so they are ordered after the kernels queued before them.
//
// Host copies of at least kStagedCopy bytes go through one pinned host buffer in chunks: DMA from
// pinned memory runs at full bus speed and cannot be paged out under the copy, whereas the
// driver stages pageable memory itself through small bounce buffers. Smaller copies use the
// pageable pointer directly (cheaper than an extra memcpy through the staging buffer).
#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "runtime/cuda/driver.h"
#include "runtime/cuda_api.h"
#include "runtime/memory_pool.h"

namespace smelt::runtime::cuda {
namespace {

constexpr size_t kStagingBytes = size_t{8} << 20;
constexpr size_t kStagedCopy = size_t{256} << 10;

// The pinned staging buffer, allocated on first use and kept for the process's life. Its mutex
// serializes staged copies (they share the buffer); null when cuMemHostAlloc failed (then
// copies go direct, which is slower but correct).
struct Staging {
  std::mutex mu;
  void* buffer = nullptr;
  bool tried = false;
};

Staging& staging() {
  static auto* s = new Staging;  // never destroyed: copies may run during static destruction
  return *s;
}

// The staging buffer, with `s.mu` held by the caller.
void* staging_buffer(const DriverApi& cu, Staging& s) {
  if (!s.tried) {
    s.tried = true;
    if (cu.cuMemHostAlloc(&s.buffer, kStagingBytes, 0) != CUDA_SUCCESS) s.buffer = nullptr;
  }
  return s.buffer;
}

absl::Status sync_stream(const DriverApi& cu, const char* after) {
  return check(cu.cuStreamSynchronize(stream()),
               absl::StrCat("cuStreamSynchronize (after ", after, ")"));
}

}  // namespace

absl::Status copy_to_device(void* device_dst, const void* host_src, size_t nbytes) {
  if (nbytes == 0) return absl::OkStatus();
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  const DriverApi& cu = **api;
  const auto dst = reinterpret_cast<CUdeviceptr>(device_dst);
  if (nbytes >= kStagedCopy) {
    Staging& s = staging();
    std::lock_guard lock(s.mu);
    if (void* pinned = staging_buffer(cu, s); pinned != nullptr) {
      for (size_t done = 0; done < nbytes; done += kStagingBytes) {
        const size_t chunk = std::min(kStagingBytes, nbytes - done);
        std::memcpy(pinned, static_cast<const char*>(host_src) + done, chunk);
        if (absl::Status st = check(cu.cuMemcpyHtoDAsync(dst + done, pinned, chunk, stream()),
                                    absl::StrCat("cuMemcpyHtoDAsync of ", format_bytes(chunk)));
            !st.ok()) {
          return st;
        }
        // The next chunk overwrites the staging buffer.
        if (absl::Status st = sync_stream(cu, "a host-to-device copy"); !st.ok()) return st;
      }
      return absl::OkStatus();
    }
  }
  if (absl::Status st = check(cu.cuMemcpyHtoDAsync(dst, host_src, nbytes, stream()),
                              absl::StrCat("cuMemcpyHtoDAsync of ", format_bytes(nbytes)));
      !st.ok()) {
    return st;
  }
  // From pageable memory the call may return before the data reached the device.
  return sync_stream(cu, "a host-to-device copy");
}

absl::Status copy_to_host(void* host_dst, const void* device_src, size_t nbytes) {
  if (nbytes == 0) return absl::OkStatus();
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  const DriverApi& cu = **api;
  const auto src = reinterpret_cast<CUdeviceptr>(device_src);
  if (nbytes >= kStagedCopy) {
    Staging& s = staging();
    std::lock_guard lock(s.mu);
    if (void* pinned = staging_buffer(cu, s); pinned != nullptr) {
      for (size_t done = 0; done < nbytes; done += kStagingBytes) {
        const size_t chunk = std::min(kStagingBytes, nbytes - done);
        if (absl::Status st = check(cu.cuMemcpyDtoHAsync(pinned, src + done, chunk, stream()),
                                    absl::StrCat("cuMemcpyDtoHAsync of ", format_bytes(chunk)));
            !st.ok()) {
          return st;
        }
        if (absl::Status st = sync_stream(cu, "a device-to-host copy"); !st.ok()) return st;
        std::memcpy(static_cast<char*>(host_dst) + done, pinned, chunk);
      }
      return absl::OkStatus();
    }
  }
  if (absl::Status st = check(cu.cuMemcpyDtoHAsync(host_dst, src, nbytes, stream()),
                              absl::StrCat("cuMemcpyDtoHAsync of ", format_bytes(nbytes)));
      !st.ok()) {
    return st;
  }
  return sync_stream(cu, "a device-to-host copy");
}

absl::Status copy_on_device(void* device_dst, const void* device_src, size_t nbytes) {
  if (nbytes == 0) return absl::OkStatus();
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  return check(
      (*api)->cuMemcpyDtoDAsync(reinterpret_cast<CUdeviceptr>(device_dst),
                                reinterpret_cast<CUdeviceptr>(device_src), nbytes, stream()),
      absl::StrCat("cuMemcpyDtoDAsync of ", format_bytes(nbytes)));
}

absl::Status memset_on_device(void* device_dst, uint8_t value, size_t nbytes) {
  if (nbytes == 0) return absl::OkStatus();
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  return check(
      (*api)->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(device_dst), value, nbytes, stream()),
      absl::StrCat("cuMemsetD8Async of ", format_bytes(nbytes)));
}

absl::Status synchronize() {
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  return sync_stream(**api, "the queued device work");
}

}  // namespace smelt::runtime::cuda
