// nvrtc_compile(): CUDA C++ to a cubin with NVRTC, cached in memory and on disk.
//
// A disk entry is `<cache dir>/cuda/<digest>.cubin` (or `.ptx`): a header (magic, format
// version, key size, payload size, checksum), the full key, then the image; `<digest>.cu`
// beside it holds the source, for reading. The key is the source plus everything else that
// changes the output (NVRTC version, target, options), and the digest names it. Entries are
// written to a temporary file renamed into place, so concurrent processes see all of an entry
// or none; one that fails its header check is compiled again and overwritten.
#include <nvrtc.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/BLAKE3.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"
#include "runtime/cuda_api.h"
#include "runtime/disk_cache.h"

namespace smelt::runtime::cuda {
namespace {

// Bump when the entry layout changes.
constexpr EntryKind kImageEntry = {{'S', 'M', 'E', 'L', 'T', 'C', 'U', 'B'}, 1};

absl::Status nvrtc_check(nvrtcResult r, absl::string_view what, absl::string_view name) {
  if (r == NVRTC_SUCCESS) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, " failed for kernel source '", name, "': ", nvrtcGetErrorString(r)));
}

// What NVRTC is asked to produce for target_arch().
struct Target {
  std::string arch;       // "sm_90", as reported in CompiledImage
  std::string arch_flag;  // "--gpu-architecture=sm_90", or compute_XX for PTX
  bool is_ptx = false;
  std::string nvrtc_version;
};

absl::StatusOr<Target> choose_target() {
  Target t;
  t.arch = target_arch();
  int major = 0, minor = 0;
  if (absl::Status s = nvrtc_check(nvrtcVersion(&major, &minor), "nvrtcVersion", ""); !s.ok()) {
    return s;
  }
  t.nvrtc_version = absl::StrCat(major, ".", minor);
  int wanted = 0;
  if (t.arch.rfind("sm_", 0) != 0 || !absl::SimpleAtoi(t.arch.substr(3), &wanted)) {
    return absl::InvalidArgumentError(
        absl::StrCat("nvrtc: the target architecture '", t.arch,
                     "' is not of the form sm_XY (check SMELT_CUDA_ARCH)"));
  }
  int count = 0;
  std::vector<int> archs;
  if (nvrtcGetNumSupportedArchs(&count) == NVRTC_SUCCESS && count > 0) {
    archs.resize(count);
    if (nvrtcGetSupportedArchs(archs.data()) != NVRTC_SUCCESS) archs.clear();
  }
  const int newest = archs.empty() ? wanted : *std::max_element(archs.begin(), archs.end());
  if (wanted > newest) {
    // The device is newer than this NVRTC: PTX for the newest architecture it knows, which the
    // driver JIT-compiles for the device when the module is loaded.
    t.is_ptx = true;
    t.arch_flag = absl::StrCat("--gpu-architecture=compute_", newest);
  } else {
    t.arch_flag = absl::StrCat("--gpu-architecture=", t.arch);
  }
  return t;
}

// One compile: the image, or InvalidArgument with the log.
absl::StatusOr<CompiledImage> compile(absl::string_view source, absl::string_view name,
                                      const Target& t, const std::vector<std::string>& options) {
  const std::string file_name = absl::StrCat(name, ".cu");
  const std::string src(source);
  nvrtcProgram prog = nullptr;
  if (absl::Status s = nvrtc_check(
          nvrtcCreateProgram(&prog, src.c_str(), file_name.c_str(), 0, nullptr, nullptr),
          "nvrtcCreateProgram", name);
      !s.ok()) {
    return s;
  }
  struct Destroy {
    nvrtcProgram* p;
    ~Destroy() { nvrtcDestroyProgram(p); }
  } destroy{&prog};
  std::vector<const char*> argv;
  for (const std::string& o : options) argv.push_back(o.c_str());
  const nvrtcResult compiled =
      nvrtcCompileProgram(prog, static_cast<int>(argv.size()), argv.data());
  if (compiled != NVRTC_SUCCESS) {
    size_t log_size = 0;
    std::string log;
    if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
      log.resize(log_size);
      if (nvrtcGetProgramLog(prog, log.data()) != NVRTC_SUCCESS) log.clear();
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    return absl::InvalidArgumentError(absl::StrCat("nvrtc: compiling kernel source '", name,
                                                   "' for ", t.arch, " failed (",
                                                   nvrtcGetErrorString(compiled), "):\n", log));
  }
  CompiledImage image;
  image.arch = t.arch;
  image.is_ptx = t.is_ptx;
  size_t size = 0;
  if (t.is_ptx) {
    if (absl::Status s = nvrtc_check(nvrtcGetPTXSize(prog, &size), "nvrtcGetPTXSize", name);
        !s.ok()) {
      return s;
    }
    image.image.resize(size);
    if (absl::Status s = nvrtc_check(nvrtcGetPTX(prog, image.image.data()), "nvrtcGetPTX", name);
        !s.ok()) {
      return s;
    }
    // The size counts the terminating NUL; the string keeps its own.
    while (!image.image.empty() && image.image.back() == '\0') image.image.pop_back();
  } else {
    if (absl::Status s = nvrtc_check(nvrtcGetCUBINSize(prog, &size), "nvrtcGetCUBINSize", name);
        !s.ok()) {
      return s;
    }
    image.image.resize(size);
    if (absl::Status s =
            nvrtc_check(nvrtcGetCUBIN(prog, image.image.data()), "nvrtcGetCUBIN", name);
        !s.ok()) {
      return s;
    }
  }
  return image;
}

// ---- the disk cache ---------------------------------------------------------------------------

// Writes `parts` to a fresh temporary file beside `path`, then renames it into place.
bool store_entry(const std::string& entry_path, const std::string& stem, const std::string& key,
                 std::string_view source, std::string_view payload) {
  const bool wrote_source = write_file_atomically(absl::StrCat(stem, ".cu"), {source});
  return write_cache_entry(entry_path, kImageEntry, key, payload) && wrote_source;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<std::string, CompiledImage> images;  // by digest
  NvrtcStats stats;
};

Cache& cache() {
  static auto* c = new Cache;  // never destroyed: compiles may run during static destruction
  return *c;
}

}  // namespace

absl::StatusOr<CompiledImage> nvrtc_compile(std::string_view source_view,
                                            std::string_view name_view) {
  // Debian's Abseil has its own string_view, which StrCat takes.
  const absl::string_view source(source_view.data(), source_view.size());
  const absl::string_view name(name_view.data(), name_view.size());
  Cache& c = cache();
  absl::StatusOr<Target> target = choose_target();
  if (!target.ok()) {
    std::lock_guard lock(c.mu);
    ++c.stats.failures;
    return target.status();
  }
  const std::vector<std::string> options = {target->arch_flag, "-std=c++17", "-default-device"};
  // Everything that changes the image.
  const std::string key = absl::StrCat(
      target->is_ptx ? "ptx" : "cubin", " nvrtc=", target->nvrtc_version, " arch=", target->arch,
      " format=", kImageEntry.version, " options=", absl::StrJoin(options, " "), "\n", source);
  const std::string digest =
      llvm::toHex(llvm::BLAKE3::hash<16>(llvm::arrayRefFromStringRef(key)), /*LowerCase=*/true);
  {
    std::lock_guard lock(c.mu);
    if (auto it = c.images.find(digest); it != c.images.end()) {
      ++c.stats.memory_hits;
      return it->second;
    }
  }
  // Two threads missing at once both compile; the result is the same, and compiling outside
  // the lock keeps one slow compile from blocking cache hits.
  const std::string dir = cache_dir_from_env();
  const std::string cuda_dir = dir.empty() ? "" : absl::StrCat(dir, "/cuda");
  const std::string stem = absl::StrCat(cuda_dir, "/", digest);
  const std::string entry_path = absl::StrCat(stem, target->is_ptx ? ".ptx" : ".cubin");
  if (!cuda_dir.empty()) {
    if (std::optional<std::string> payload = read_cache_entry(entry_path, kImageEntry, key)) {
      CompiledImage image{std::move(*payload), target->is_ptx, target->arch};
      std::lock_guard lock(c.mu);
      ++c.stats.disk_hits;
      c.images.emplace(digest, image);
      return image;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<CompiledImage> image = compile(source, name, *target, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool write_error = false;
  if (image.ok() && !cuda_dir.empty()) {
    write_error = !store_entry(entry_path, stem, key, source_view, image->image);
  }
  std::lock_guard lock(c.mu);
  c.stats.compile_seconds += seconds;
  if (write_error) ++c.stats.disk_write_errors;
  if (!image.ok()) {
    ++c.stats.failures;
    return image.status();
  }
  ++c.stats.compiles;
  c.images.emplace(digest, *image);
  return image;
}

NvrtcStats nvrtc_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  return c.stats;
}

void nvrtc_clear_memory_cache() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  c.images.clear();
}

}  // namespace smelt::runtime::cuda
