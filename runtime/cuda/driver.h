// The CUDA driver API, loaded from libcuda.so.1 with dlopen on first use, so that a binary built
// with the toolkit still runs (and its tests pass) on a machine without a GPU or driver. Only
// this runtime's files include it. smelt uses device 0's primary context and one non-blocking
// stream in it for all of its device work.
#pragma once

#include <cuda.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace smelt::runtime::cuda {

// The driver entry points smelt calls. Each member has the type of the function that cuda.h
// declares under that name (cuMemAlloc is cuMemAlloc_v2 there), so the signatures are checked.
struct DriverApi {
#define SMELT_CUDA_DRIVER_FUNCTIONS(X) \
  X(cuGetErrorName)                    \
  X(cuGetErrorString)                  \
  X(cuInit)                            \
  X(cuDriverGetVersion)                \
  X(cuDeviceGetCount)                  \
  X(cuDeviceGet)                       \
  X(cuDeviceGetName)                   \
  X(cuDeviceGetAttribute)              \
  X(cuDeviceTotalMem)                  \
  X(cuDevicePrimaryCtxRetain)          \
  X(cuCtxSetCurrent)                   \
  X(cuStreamCreate)                    \
  X(cuStreamSynchronize)               \
  X(cuMemGetInfo)                      \
  X(cuMemAlloc)                        \
  X(cuMemFree)                         \
  X(cuMemHostAlloc)                    \
  X(cuMemcpyHtoDAsync)                 \
  X(cuMemcpyDtoHAsync)                 \
  X(cuMemcpyDtoDAsync)                 \
  X(cuMemsetD8Async)                   \
  X(cuModuleLoadData)                  \
  X(cuModuleGetFunction)               \
  X(cuLaunchKernel)
#define SMELT_CUDA_DECLARE_MEMBER(fn) decltype(&::fn) fn = nullptr;
  SMELT_CUDA_DRIVER_FUNCTIONS(SMELT_CUDA_DECLARE_MEMBER)
#undef SMELT_CUDA_DECLARE_MEMBER
};

// The loaded driver with device 0 initialized, its primary context retained and smelt's stream
// created; or Unavailable saying why not (no libcuda.so.1, cuInit failed, no device). Loaded
// once, thread-safely; later calls are a load of a pointer.
absl::StatusOr<const DriverApi*> driver();

// Makes smelt's context current on the calling thread (a thread_local check after the first
// time) and returns the driver. Every function that calls the driver on a thread calls it first.
absl::StatusOr<const DriverApi*> ensure_context();

// The stream all of smelt's device work is queued on (valid once driver() succeeded).
CUstream stream();

// OK for CUDA_SUCCESS; else a Status naming the operation and the error, like
//   cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)
// with code ResourceExhausted for out-of-memory, Unavailable for a missing or broken driver or
// device, InvalidArgument for invalid values, and Internal otherwise. `what` may add context
// ("cuMemAlloc of 2.00 MiB").
absl::Status check(CUresult result, absl::string_view what);

}  // namespace smelt::runtime::cuda
