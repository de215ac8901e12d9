// Modules and launches. A module is loaded once per image (by content) and stays loaded for the
// process's life, so the CUfunction handles callers keep (in compiled programs) stay valid.
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "runtime/cuda/driver.h"
#include "runtime/cuda_api.h"

namespace smelt::runtime::cuda {
namespace {

struct Modules {
  std::mutex mu;
  // Keyed by the image itself: no digest collision can hand out the wrong code, and images are
  // small next to the device memory they drive.
  std::unordered_map<std::string, CUmodule> by_image;
};

Modules& modules() {
  static auto* m = new Modules;  // never destroyed: the modules live as long as the context
  return *m;
}

}  // namespace

absl::StatusOr<std::vector<Function>> load_functions(const CompiledImage& image,
                                                     const std::vector<std::string>& names) {
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  const DriverApi& cu = **api;
  Modules& m = modules();
  CUmodule module = nullptr;
  {
    std::lock_guard lock(m.mu);
    const std::string key = absl::StrCat(image.is_ptx ? "ptx:" : "cubin:", image.image);
    auto it = m.by_image.find(key);
    if (it == m.by_image.end()) {
      // PTX must be NUL-terminated: std::string's data() is.
      if (absl::Status s =
              check(cu.cuModuleLoadData(&module, image.image.c_str()),
                    absl::StrCat("cuModuleLoadData of a ", image.image.size(), "-byte ",
                                 image.is_ptx ? "PTX" : "cubin", " image for ", image.arch));
          !s.ok()) {
        return s;
      }
      it = m.by_image.emplace(key, module).first;
    }
    module = it->second;
  }
  std::vector<Function> functions;
  functions.reserve(names.size());
  for (const std::string& name : names) {
    CUfunction fn = nullptr;
    if (absl::Status s = check(cu.cuModuleGetFunction(&fn, module, name.c_str()),
                               absl::StrCat("cuModuleGetFunction('", name, "')"));
        !s.ok()) {
      return s;
    }
    functions.push_back(fn);
  }
  return functions;
}

absl::Status launch(Function fn, const LaunchConfig& config, void** params) {
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  return check(
      (*api)->cuLaunchKernel(static_cast<CUfunction>(fn), config.grid[0], config.grid[1],
                             config.grid[2], config.block[0], config.block[1], config.block[2],
                             config.shared_bytes, stream(), params, nullptr),
      absl::StrCat("cuLaunchKernel (grid ", config.grid[0], "x", config.grid[1], "x",
                   config.grid[2], ", block ", config.block[0], "x", config.block[1], "x",
                   config.block[2], ", ", config.shared_bytes, " bytes of shared memory)"));
}

}  // namespace smelt::runtime::cuda
