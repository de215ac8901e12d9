// The CPU JIT: LLVM ORC (LLJIT) for the host CPU, with an on-disk object cache so a second
// process starts warm. A code generator builds an LLVM module in its own context and hands it
// over as a JitModule; the JIT optimizes it (the O3 pipeline, tuned to the host CPU so the loop
// vectorizer knows the vector width), compiles it and returns the addresses of the functions the
// caller asks for. No LLVM type appears here: JitModule is defined in runtime/cpu_jit_module.h,
// which only the code generator and the JIT include.
//
// The disk cache: one entry per module key, named by a digest of (key, target_id(), format and
// LLVM version), in `$SMELT_CACHE_DIR`, else `$XDG_CACHE_HOME/smelt`, else `~/.cache/smelt`.
// An entry is `<digest>.o` (a header — magic, format version, the key, payload size and checksum
// — then the object file) and `<digest>.ll` beside it (the module's LLVM IR as generated, for
// reading). Writes go to a temporary file renamed into place, so concurrent processes never see
// half an entry; a truncated or corrupted entry fails its header check and is compiled again.
// `SMELT_DISABLE_DISK_CACHE=1` turns the disk cache off.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace smelt::runtime {

// An LLVM module with its own LLVMContext (defined in runtime/cpu_jit_module.h).
struct JitModule;
struct JitModuleDeleter {
  void operator()(JitModule* m) const;
};
using JitModulePtr = std::unique_ptr<JitModule, JitModuleDeleter>;

struct CpuJitOptions {
  std::string cache_dir;  // the disk cache's folder; empty: no disk cache
  bool optimize = true;   // run the O3 pipeline (off: codegen of the IR as given)
};

// Counters since construction. Every compile() call that succeeds is exactly one of: a memory
// hit, a disk hit, or a compile (which follows a disk miss when the disk cache is on); the others
// count as failures.
struct CpuJitStats {
  int64_t memory_hits = 0;  // the key was compiled (or loaded) by this instance before
  int64_t disk_hits = 0;    // loaded from a valid disk cache entry
  int64_t disk_misses = 0;  // no valid entry (absent, truncated, corrupted, other key)
  int64_t disk_write_errors = 0;
  int64_t compiles = 0;        // modules built, optimized and compiled
  int64_t failures = 0;        // compile() calls that returned an error
  double compile_seconds = 0;  // wall time in compiles (build + optimize + codegen + link)
  double load_seconds = 0;     // wall time loading disk hits (read + check + link)
};

class CpuJit {
 public:
  explicit CpuJit(CpuJitOptions options);
  ~CpuJit();
  CpuJit(const CpuJit&) = delete;
  CpuJit& operator=(const CpuJit&) = delete;

  // Options from the environment: the disk cache folder described at the top, or none under
  // SMELT_DISABLE_DISK_CACHE=1.
  static CpuJitOptions options_from_env();

  // The addresses of `symbols`, functions of the module named `module_key`: from this instance's
  // memory when it has seen the key, else from the disk cache, else by compiling the module that
  // `build` makes (called only then). The key must name the module's content: equal keys must
  // mean equal modules, on this target (target_id() is added to the key for the disk). Safe to
  // call from many threads; one key is compiled once, other callers wait for it. Errors: what
  // `build` returns, InternalError for a module that fails the LLVM verifier (with its report),
  // NotFound for a symbol the module does not define.
  absl::StatusOr<std::vector<void*>> compile(
      const std::string& module_key, absl::Span<const std::string> symbols,
      absl::FunctionRef<absl::StatusOr<JitModulePtr>()> build);

  // Target triple, CPU name and CPU features: what the code is compiled for.
  const std::string& target_id() const;
  // The CPU name alone ("sapphirerapids").
  const std::string& cpu_name() const;
  // The folder of the disk cache, or "" when it is off.
  const std::string& cache_dir() const;
  CpuJitStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The process-wide JIT, created on first use with options_from_env(). Never destroyed, so code
// it returned stays valid until the process exits.
CpuJit& cpu_jit();

}  // namespace smelt::runtime
