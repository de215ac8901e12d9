#include "runtime/cuda/driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/cuda_api.h"

namespace smelt::runtime::cuda {
namespace {

// The name the macros of cuda.h give a function (cuMemAlloc -> "cuMemAlloc_v2"): the versioned
// symbol whose signature the header declares, which is the one to dlsym.
#define SMELT_CUDA_STRINGIFY_EXPANDED(x) SMELT_CUDA_STRINGIFY(x)
#define SMELT_CUDA_STRINGIFY(x) #x

std::string error_text(const DriverApi& api, CUresult r) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName == nullptr || api.cuGetErrorName(r, &name) != CUDA_SUCCESS) name = nullptr;
  if (api.cuGetErrorString == nullptr || api.cuGetErrorString(r, &text) != CUDA_SUCCESS) {
    text = nullptr;
  }
  return absl::StrCat(name ? name : absl::StrCat("CUresult ", static_cast<int>(r)), " (",
                      text ? text : "unknown error", ")");
}

// Not check(): load() uses it before the driver is published (the_driver() would recurse).
absl::Status status_from(const DriverApi& api, CUresult result, absl::string_view what) {
  if (result == CUDA_SUCCESS) return absl::OkStatus();
  std::string message = absl::StrCat(what, " failed: ", error_text(api, result));
  switch (result) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(message);
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_HANDLE:
    case CUDA_ERROR_NOT_FOUND:
      return absl::InvalidArgumentError(message);
    case CUDA_ERROR_NOT_INITIALIZED:
    case CUDA_ERROR_DEINITIALIZED:
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_INVALID_DEVICE:
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
    case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

struct Driver {
  absl::Status status;  // OK when everything below is usable
  DriverApi api;
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
};

// Points `fn` at the driver's `name`; false, with `status` saying why, when the driver lacks it.
template <typename Fn>
bool resolve(void* lib, const char* name, Fn& fn, absl::Status& status) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (fn != nullptr) return true;
  status = absl::UnavailableError(absl::StrCat(
      "libcuda.so.1 lacks ", name, ": the driver is older than the CUDA ", CUDA_VERSION / 1000, ".",
      CUDA_VERSION % 1000 / 10, " headers smelt was built with"));
  return false;
}

// Never freed: buffers released during static destruction still reach the driver.
Driver* load() {
  auto* d = new Driver;
  // RTLD_LOCAL: the driver's symbols must not satisfy anyone else's undefined references.
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    d->status = absl::UnavailableError(
        absl::StrCat("libcuda.so.1 not found (no CUDA driver installed): ", err ? err : "?"));
    return d;
  }
#define SMELT_CUDA_RESOLVE(fn) \
  if (!resolve(lib, SMELT_CUDA_STRINGIFY_EXPANDED(fn), d->api.fn, d->status)) return d;
  SMELT_CUDA_DRIVER_FUNCTIONS(SMELT_CUDA_RESOLVE)
#undef SMELT_CUDA_RESOLVE
  const DriverApi& api = d->api;
  auto fail = [&](CUresult r, absl::string_view what) {
    d->status = status_from(d->api, r, what);
    // Whatever the driver said, without a usable device smelt's CUDA backend is unavailable.
    if (!d->status.ok()) d->status = absl::UnavailableError(d->status.message());
    return d;
  };
  if (CUresult r = api.cuInit(0); r != CUDA_SUCCESS) return fail(r, "cuInit");
  int count = 0;
  if (CUresult r = api.cuDeviceGetCount(&count); r != CUDA_SUCCESS) {
    return fail(r, "cuDeviceGetCount");
  }
  if (count == 0) {
    d->status = absl::UnavailableError("no CUDA device (cuDeviceGetCount returned 0)");
    return d;
  }
  if (CUresult r = api.cuDeviceGet(&d->device, 0); r != CUDA_SUCCESS) {
    return fail(r, "cuDeviceGet(0)");
  }
  // The primary context is the one the CUDA runtime (and so cuBLAS) uses too, so smelt's
  // pointers and cuBLAS's calls live in the same context.
  if (CUresult r = api.cuDevicePrimaryCtxRetain(&d->context, d->device); r != CUDA_SUCCESS) {
    return fail(r, "cuDevicePrimaryCtxRetain");
  }
  if (CUresult r = api.cuCtxSetCurrent(d->context); r != CUDA_SUCCESS) {
    return fail(r, "cuCtxSetCurrent");
  }
  // Non-blocking: smelt's work does not serialize with the legacy default stream that other
  // libraries in the process may use.
  if (CUresult r = api.cuStreamCreate(&d->stream, CU_STREAM_NON_BLOCKING); r != CUDA_SUCCESS) {
    return fail(r, "cuStreamCreate");
  }
  return d;
}

const Driver& the_driver() {
  static const Driver* d = load();  // thread-safe once (magic statics)
  return *d;
}

}  // namespace

absl::StatusOr<const DriverApi*> driver() {
  const Driver& d = the_driver();
  if (!d.status.ok()) return d.status;
  return &d.api;
}

absl::StatusOr<const DriverApi*> ensure_context() {
  const Driver& d = the_driver();
  if (!d.status.ok()) return d.status;
  // A thread's current context only changes if someone sets another; smelt's work always runs
  // in the primary context, so setting it once per thread is enough.
  thread_local bool current = false;
  if (!current) {
    if (absl::Status s = check(d.api.cuCtxSetCurrent(d.context), "cuCtxSetCurrent"); !s.ok()) {
      return s;
    }
    current = true;
  }
  return &d.api;
}

CUstream stream() { return the_driver().stream; }

absl::Status check(CUresult result, absl::string_view what) {
  if (result == CUDA_SUCCESS) return absl::OkStatus();
  return status_from(the_driver().api, result, what);
}

// ---- discovery (cuda_api.h) ---------------------------------------------------------------------

bool built_with_cuda() { return true; }

bool available() { return the_driver().status.ok(); }

absl::Status availability() { return the_driver().status; }

int device_count() {
  const Driver& d = the_driver();
  int count = 0;
  if (!d.status.ok() || d.api.cuDeviceGetCount(&count) != CUDA_SUCCESS) return 0;
  return count;
}

absl::StatusOr<DeviceInfo> device_info(int device) {
  absl::StatusOr<const DriverApi*> api = driver();
  if (!api.ok()) return api.status();
  const DriverApi& cu = **api;
  CUdevice dev = 0;
  if (absl::Status s =
          check(cu.cuDeviceGet(&dev, device), absl::StrCat("cuDeviceGet(", device, ")"));
      !s.ok()) {
    return s;
  }
  DeviceInfo info;
  char name[256] = {};
  if (absl::Status s = check(cu.cuDeviceGetName(name, sizeof name - 1, dev), "cuDeviceGetName");
      !s.ok()) {
    return s;
  }
  info.name = name;
  struct {
    CUdevice_attribute attribute;
    int* out;
  } const attributes[] = {
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &info.cc_major},
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &info.cc_minor},
      {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &info.multiprocessors},
      {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, &info.max_threads_per_block},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, &info.shared_memory_per_block},
  };
  for (const auto& a : attributes) {
    if (absl::Status s = check(cu.cuDeviceGetAttribute(a.out, a.attribute, dev),
                               absl::StrCat("cuDeviceGetAttribute(", a.attribute, ")"));
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = check(cu.cuDeviceTotalMem(&info.total_memory, dev), "cuDeviceTotalMem");
      !s.ok()) {
    return s;
  }
  return info;
}

std::string target_arch() {
  // Device 0's architecture when there is one: that is where the kernels run.
  static const std::string device_arch = [] {
    absl::StatusOr<DeviceInfo> info = available() ? device_info(0) : absl::UnavailableError("");
    return info.ok() ? absl::StrCat("sm_", info->cc_major, info->cc_minor) : std::string();
  }();
  if (!device_arch.empty()) return device_arch;
  // No device: kernels are still compiled (code generation tests, CI), for this or sm_90.
  if (const char* arch = std::getenv("SMELT_CUDA_ARCH"); arch != nullptr && *arch != '\0') {
    return arch;
  }
  return "sm_90";
}

}  // namespace smelt::runtime::cuda
