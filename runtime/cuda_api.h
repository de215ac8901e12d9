// The CUDA runtime of smelt, as the rest of the library sees it: device discovery, the caching
// device allocator, copies, modules and launches, NVRTC, cuBLAS. No CUDA header appears here, so
// every layer can include it whether or not the toolkit was found at configure time.
//
// Built from runtime/cuda/*.cpp when the toolkit is found (NVRTC and cuBLAS linked, the driver
// libcuda.so.1 loaded with dlopen on first use), else from runtime/cuda_off/*.cpp, where every
// call fails with Unavailable and available() is false.
//
// One stream per process carries all of smelt's device work, in order; so a buffer freed on the
// host while kernels that read it are still queued can be handed to the next allocation at once
// (stream-ordered reuse, as in PyTorch's caching allocator). Copies to the host synchronize.
#pragma once

#include <smelt/dtype.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/buffer.h"

namespace smelt::runtime::cuda {

// The index of `dtype` in the tables of built-in kernels (conv, pooling, scans), which come in
// f32, f64, i32, i64 order; -1 for the others.
constexpr int builtin_dtype_index(DType d) {
  switch (d) {
    case DType::Float32:
      return 0;
    case DType::Float64:
      return 1;
    case DType::Int32:
      return 2;
    case DType::Int64:
      return 3;
    default:
      return -1;
  }
}

// ---- discovery ----------------------------------------------------------------------------------

// Whether the toolkit was built in (false in a build without CUDA).
bool built_with_cuda();
// Whether device work can run: built with CUDA, libcuda.so.1 loads, cuInit succeeds and a device
// exists. Cheap after the first call. Never throws; never aborts without a driver.
bool available();
// OK when available(); otherwise Unavailable saying why ("libcuda.so.1 not found: ...",
// "cuInit failed: CUDA_ERROR_NO_DEVICE ...", "smelt was built without CUDA").
absl::Status availability();
int device_count();

struct DeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int multiprocessors = 0;
  size_t total_memory = 0;
  int max_threads_per_block = 0;
  int shared_memory_per_block = 0;
};
absl::StatusOr<DeviceInfo> device_info(int device = 0);

// The architecture NVRTC compiles for: "sm_90" for the current device; without a device, the
// value of SMELT_CUDA_ARCH or "sm_90" (so kernels compile in CI without a GPU).
std::string target_arch();

// ---- memory: the caching device allocator ------------------------------------------------------

// A device buffer of at least `nbytes` on `device` (data() is the device pointer), returned to
// the cache when released. Requests round up to 512 bytes; small (<= 1 MiB) and large requests
// are served from separate pools, best fit, splitting big blocks and merging freed neighbours.
// When cuMemAlloc fails the cache is freed and the allocation retried; if that fails too,
// ResourceExhausted names the request, allocated/reserved bytes and the device's free/total.
// SMELT_CUDA_NO_CACHE=1 bypasses caching (every buffer is its own cuMemAlloc/cuMemFree), for
// compute-sanitizer.
absl::StatusOr<base::BufferPtr> allocate(size_t nbytes, int device = 0);

struct DeviceMemoryStats {
  size_t allocated_bytes = 0;       // blocks held by live buffers
  size_t reserved_bytes = 0;        // taken from the device with cuMemAlloc (allocated + cached)
  size_t peak_allocated_bytes = 0;  // since start or reset_peak_stats()
  size_t peak_reserved_bytes = 0;
  int64_t allocations = 0;         // successful allocate() calls
  int64_t device_allocations = 0;  // cuMemAlloc calls that succeeded
  int64_t device_frees = 0;        // cuMemFree calls
  int64_t oom_retries = 0;         // cache flushes forced by a failed cuMemAlloc
  int64_t failures = 0;            // allocate() calls that returned ResourceExhausted
};
DeviceMemoryStats memory_stats(int device = 0);
void reset_peak_stats(int device = 0);
// Frees every cached block not held by a live buffer (waits for the stream first).
void empty_cache(int device = 0);
// Test hook: a cap on reserved bytes (0: none), so out-of-memory paths can be exercised.
void set_memory_limit(size_t bytes, int device = 0);

// ---- copies and synchronization
// ------------------------------------------------------------------

// Host -> device and device -> host copies, complete when they return (they wait for the
// stream's earlier work). Large host copies are staged through pinned host memory.
absl::Status copy_to_device(void* device_dst, const void* host_src, size_t nbytes);
absl::Status copy_to_host(void* host_dst, const void* device_src, size_t nbytes);
// Device -> device, queued on the stream.
absl::Status copy_on_device(void* device_dst, const void* device_src, size_t nbytes);
// Sets `nbytes` bytes at `device_dst` to `value`, queued on the stream.
absl::Status memset_on_device(void* device_dst, uint8_t value, size_t nbytes);
// Waits for every queued operation; reports an error a kernel raised asynchronously.
absl::Status synchronize();

// ---- modules and launches -----------------------------------------------------------------------

// Compiles CUDA C++ `source` with NVRTC for target_arch() straight to a cubin (PTX when the
// device is newer than NVRTC knows, loaded through the driver's JIT). Cached in memory and on
// disk (`<cache dir>/cuda/<digest>.cubin` with `<digest>.cu` beside it; the cache dir is the CPU
// JIT's: SMELT_CACHE_DIR, XDG_CACHE_HOME/smelt or ~/.cache/smelt; SMELT_DISABLE_DISK_CACHE=1
// turns it off). Errors: InvalidArgument with NVRTC's log and the source's name.
struct CompiledImage {
  std::string image;  // cubin, or PTX text
  bool is_ptx = false;
  std::string arch;  // "sm_90"
};
absl::StatusOr<CompiledImage> nvrtc_compile(std::string_view source, std::string_view name);

// Counters since start. Every nvrtc_compile() call is exactly one of: a memory hit, a disk hit,
// a compile (that succeeded) or a failure.
struct NvrtcStats {
  int64_t memory_hits = 0;
  int64_t disk_hits = 0;
  int64_t compiles = 0;
  int64_t failures = 0;
  int64_t disk_write_errors = 0;  // entries that could not be written (the cache is optional)
  double compile_seconds = 0;     // time spent in nvrtcCompileProgram
};
NvrtcStats nvrtc_stats();
// Test hook: forgets the in-memory cache of images (the disk cache stays).
void nvrtc_clear_memory_cache();

// A kernel function, loaded from an image into the current context. Handles are opaque
// (CUfunction); modules stay loaded for the process's life.
using Function = void*;
// Loads `image` (once per image: cached by content) and returns the named functions, in order.
absl::StatusOr<std::vector<Function>> load_functions(const CompiledImage& image,
                                                     const std::vector<std::string>& names);

struct LaunchConfig {
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  uint32_t shared_bytes = 0;
};
// Queues `fn` on the stream; `params` point at each kernel argument (cuLaunchKernel's).
absl::Status launch(Function fn, const LaunchConfig& config, void** params);

// ---- cuBLAS -------------------------------------------------------------------------------------

// Row-major C[b] (m x n, contiguous, batch stride m*n) = A[b] (m x k) @ B[b] (k x n), for
// `batch` products; each operand is described by its strides in elements: element (r, c) of
// batch b is at offset + b*batch_stride + r*row_stride + c*col_stride. One of row/col stride of
// A and of B must be 1 (the other >= the matching extent); callers copy other layouts first.
// float32 (`is_double` false) or float64. Queued on the stream (cublas{S,D}gemmStridedBatched).
struct GemmOperand {
  const void* data = nullptr;
  int64_t offset = 0, batch_stride = 0, row_stride = 0, col_stride = 0;
};
absl::Status gemm(bool is_double, int64_t batch, int64_t m, int64_t n, int64_t k,
                  const GemmOperand& a, const GemmOperand& b, void* c);

}  // namespace smelt::runtime::cuda
