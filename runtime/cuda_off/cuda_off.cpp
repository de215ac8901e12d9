// runtime/cuda_api.h in a build without the CUDA toolkit: nothing is available, every operation
// fails with Unavailable, and the CUDA code generator still has an architecture to name.
#include <cstdlib>

#include "runtime/cuda_api.h"

namespace smelt::runtime::cuda {
namespace {

absl::Status off() {
  return absl::UnavailableError("smelt was built without CUDA (no CUDA toolkit at configure time)");
}

}  // namespace

bool built_with_cuda() { return false; }
bool available() { return false; }
absl::Status availability() { return off(); }
int device_count() { return 0; }
absl::StatusOr<DeviceInfo> device_info(int) { return off(); }

std::string target_arch() {
  if (const char* arch = std::getenv("SMELT_CUDA_ARCH"); arch != nullptr && *arch != '\0') {
    return arch;
  }
  return "sm_90";
}

absl::StatusOr<base::BufferPtr> allocate(size_t, int) { return off(); }
DeviceMemoryStats memory_stats(int) { return {}; }
void reset_peak_stats(int) {}
void empty_cache(int) {}
void set_memory_limit(size_t, int) {}

absl::Status copy_to_device(void*, const void*, size_t) { return off(); }
absl::Status copy_to_host(void*, const void*, size_t) { return off(); }
absl::Status copy_on_device(void*, const void*, size_t) { return off(); }
absl::Status memset_on_device(void*, uint8_t, size_t) { return off(); }
absl::Status synchronize() { return off(); }

absl::StatusOr<CompiledImage> nvrtc_compile(std::string_view, std::string_view) { return off(); }
NvrtcStats nvrtc_stats() { return {}; }
void nvrtc_clear_memory_cache() {}

absl::StatusOr<std::vector<Function>> load_functions(const CompiledImage&,
                                                     const std::vector<std::string>&) {
  return off();
}
absl::Status launch(Function, const LaunchConfig&, void**) { return off(); }

absl::Status gemm(bool, int64_t, int64_t, int64_t, int64_t, const GemmOperand&, const GemmOperand&,
                  void*) {
  return off();
}

}  // namespace smelt::runtime::cuda
