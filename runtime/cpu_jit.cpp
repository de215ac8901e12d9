#include "runtime/cpu_jit.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/ExecutionEngine/ObjectCache.h"
#include "llvm/ExecutionEngine/Orc/CompileUtils.h"
#include "llvm/ExecutionEngine/Orc/IRCompileLayer.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/ExecutionEngine/Orc/ThreadSafeModule.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/BLAKE3.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"
#include "llvm/Target/TargetMachine.h"
#include "runtime/cpu_jit_module.h"
#include "runtime/disk_cache.h"

namespace smelt::runtime {
namespace {

// Bump when the entry layout changes. The LLVM version is part of every key as well, so a new
// LLVM never reads objects an old one wrote.
constexpr uint32_t kCacheFormatVersion = 1;
constexpr EntryKind kObjectEntry = {{'S', 'M', 'E', 'L', 'T', 'O', 'B', 'J'}, kCacheFormatVersion};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string to_string(llvm::Error err) { return llvm::toString(std::move(err)); }

void initialize_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

// The host's target description, detected once per process.
const absl::StatusOr<llvm::orc::JITTargetMachineBuilder>& host_jtmb() {
  static const auto* jtmb = [] {
    initialize_llvm();
    auto detected = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!detected) {
      return new absl::StatusOr<llvm::orc::JITTargetMachineBuilder>(
          absl::UnavailableError(absl::StrCat("CPU JIT: cannot detect the host target: ",
                                              to_string(detected.takeError()))));
    }
    detected->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
    return new absl::StatusOr<llvm::orc::JITTargetMachineBuilder>(std::move(*detected));
  }();
  return *jtmb;
}

// ---- the disk cache ---------------------------------------------------------------------------

// One object per module key in a folder (see cpu_jit.h). Also an llvm::ObjectCache, so the
// compile layer stores what it compiles; loading is done by CpuJit before a module is even built.
class DiskObjectCache final : public llvm::ObjectCache {
 public:
  DiskObjectCache(std::string dir, std::string salt)
      : dir_(std::move(dir)), salt_(std::move(salt)) {}

  // The payload of a valid entry for `key`, or null (absent, truncated, corrupted, another key).
  std::unique_ptr<llvm::MemoryBuffer> load(const std::string& key) const {
    std::optional<std::string> object =
        read_cache_entry(path(key, ".o"), kObjectEntry, salted(key));
    if (!object) return nullptr;
    return llvm::MemoryBuffer::getMemBufferCopy(*object, key);
  }

  // Writes the entry for `key` (and its IR text, when given). Failures are counted, not fatal:
  // the cache is an optimization.
  void store(const std::string& key, llvm::StringRef object, const std::string& ir_text) {
    if (!ir_text.empty() && !write_file_atomically(path(key, ".ll"), {ir_text})) ++write_errors_;
    if (!write_cache_entry(path(key, ".o"), kObjectEntry, salted(key),
                           std::string_view(object.data(), object.size()))) {
      ++write_errors_;
    }
  }

  // The IR text to write beside the object of `key`, once the compile layer reports it.
  void set_pending_ir(const std::string& key, std::string text) {
    absl::MutexLock lock(&mu_);
    pending_ir_[key] = std::move(text);
  }
  // Forgets the IR text of `key` if the compile layer never reported its object (it failed, or
  // found the entry written meanwhile by another process).
  void drop_pending_ir(const std::string& key) {
    absl::MutexLock lock(&mu_);
    pending_ir_.erase(key);
  }

  void notifyObjectCompiled(const llvm::Module* m, llvm::MemoryBufferRef obj) override {
    const std::string& key = m->getModuleIdentifier();
    std::string ir;
    {
      absl::MutexLock lock(&mu_);
      auto it = pending_ir_.find(key);
      if (it != pending_ir_.end()) {
        ir = std::move(it->second);
        pending_ir_.erase(it);
      }
    }
    store(key, obj.getBuffer(), ir);
  }

  std::unique_ptr<llvm::MemoryBuffer> getObject(const llvm::Module* m) override {
    return load(m->getModuleIdentifier());
  }

  std::string path(const std::string& key, const char* ext) const {
    const std::string full_key = salted(key);
    auto digest = llvm::BLAKE3::hash<16>(llvm::arrayRefFromStringRef(full_key));
    return absl::StrCat(dir_, "/", llvm::toHex(digest, /*LowerCase=*/true), ext);
  }

  const std::string& dir() const { return dir_; }
  int64_t write_errors() const { return write_errors_.load(); }

 private:
  std::string salted(const std::string& key) const { return absl::StrCat(salt_, "\n", key); }

  const std::string dir_;
  const std::string salt_;  // target, LLVM version, format version: part of every entry's key
  std::atomic<int64_t> write_errors_{0};
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> pending_ir_ ABSL_GUARDED_BY(mu_);
};

// The compile step of the JIT: codegen with this thread's TargetMachine, through the disk cache.
class HostCompiler final : public llvm::orc::IRCompileLayer::IRCompiler {
 public:
  HostCompiler(llvm::TargetMachine& any_tm, llvm::ObjectCache* cache)
      : IRCompiler(llvm::orc::irManglingOptionsFromTargetOptions(any_tm.Options)), cache_(cache) {}

  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> operator()(llvm::Module& m) override {
    absl::StatusOr<llvm::TargetMachine*> tm = host_target_machine();
    if (!tm.ok()) {
      return llvm::createStringError(llvm::inconvertibleErrorCode(), tm.status().ToString());
    }
    llvm::orc::SimpleCompiler compile(**tm, cache_);
    return compile(m);
  }

 private:
  llvm::ObjectCache* cache_;
};

std::string sorted_features(const llvm::SubtargetFeatures& features) {
  std::vector<std::string> f = features.getFeatures();
  std::sort(f.begin(), f.end());
  return absl::StrJoin(f, ",");
}

}  // namespace

// ---- module helpers (cpu_jit_module.h) --------------------------------------------------------

void JitModuleDeleter::operator()(JitModule* m) const { delete m; }

JitModulePtr make_jit_module(const std::string& name) {
  JitModulePtr m(new JitModule);
  m->context = std::make_unique<llvm::LLVMContext>();
  m->module = std::make_unique<llvm::Module>(name, *m->context);
  return m;
}

absl::StatusOr<llvm::TargetMachine*> host_target_machine() {
  thread_local std::unique_ptr<llvm::TargetMachine> tm;
  if (tm) return tm.get();
  const auto& jtmb = host_jtmb();
  if (!jtmb.ok()) return jtmb.status();
  llvm::orc::JITTargetMachineBuilder builder = *jtmb;  // createTargetMachine is not const
  auto created = builder.createTargetMachine();
  if (!created) {
    return absl::UnavailableError(
        absl::StrCat("CPU JIT: cannot create a target machine: ", to_string(created.takeError())));
  }
  tm = std::move(*created);
  return tm.get();
}

void optimize_module(llvm::Module& m, llvm::TargetMachine& tm) {
  m.setTargetTriple(tm.getTargetTriple().str());
  m.setDataLayout(tm.createDataLayout());
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions pto;
  pto.LoopVectorization = true;
  pto.SLPVectorization = true;
  llvm::PassBuilder pb(&tm, pto);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(m, mam);
}

// ---- CpuJit -----------------------------------------------------------------------------------

struct CpuJit::Impl {
  // One module key: compiled (or loaded) once, while later callers wait on `done`.
  struct Entry {
    absl::Notification done;
    absl::Status status;
    llvm::orc::JITDylib* dylib = nullptr;
  };

  CpuJitOptions options;
  absl::Status init_status;
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::unique_ptr<DiskObjectCache> disk;  // null: no disk cache
  std::string target_id;
  std::string cpu_name;
  std::atomic<int64_t> next_dylib{0};

  mutable absl::Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<Entry>> entries ABSL_GUARDED_BY(mu);
  CpuJitStats stats ABSL_GUARDED_BY(mu);

  absl::Status init();
  // Loads `key` from disk or compiles it into a new JITDylib; sets entry.dylib on success.
  absl::Status load_or_compile(const std::string& key, absl::Span<const std::string> symbols,
                               absl::FunctionRef<absl::StatusOr<JitModulePtr>()> build,
                               Entry& entry);
  absl::StatusOr<std::vector<void*>> lookup(llvm::orc::JITDylib& dylib,
                                            absl::Span<const std::string> symbols);
  absl::StatusOr<llvm::orc::JITDylib*> new_dylib();
};

absl::Status CpuJit::Impl::init() {
  const auto& jtmb = host_jtmb();
  if (!jtmb.ok()) return jtmb.status();
  cpu_name = jtmb->getCPU();
  target_id = absl::StrCat(jtmb->getTargetTriple().str(), "/", cpu_name, "/",
                           sorted_features(jtmb->getFeatures()));
  if (!options.cache_dir.empty()) {
    disk = std::make_unique<DiskObjectCache>(
        options.cache_dir,
        absl::StrCat("smelt-cpu-object format=", kCacheFormatVersion, " llvm=", LLVM_VERSION_STRING,
                     " opt=", options.optimize ? "O3" : "none", " target=", target_id));
  }
  absl::StatusOr<llvm::TargetMachine*> tm = host_target_machine();
  if (!tm.ok()) return tm.status();
  llvm::TargetMachine& any_tm = **tm;
  llvm::ObjectCache* cache = disk.get();
  auto created =
      llvm::orc::LLJITBuilder()
          .setJITTargetMachineBuilder(*jtmb)
          .setCompileFunctionCreator(
              [&any_tm, cache](llvm::orc::JITTargetMachineBuilder)
                  -> llvm::Expected<std::unique_ptr<llvm::orc::IRCompileLayer::IRCompiler>> {
                return std::make_unique<HostCompiler>(any_tm, cache);
              })
          .create();
  if (!created) {
    return absl::UnavailableError(
        absl::StrCat("CPU JIT: cannot create LLJIT: ", to_string(created.takeError())));
  }
  jit = std::move(*created);
  if (options.optimize) {
    jit->getIRTransformLayer().setTransform(
        [](llvm::orc::ThreadSafeModule tsm, llvm::orc::MaterializationResponsibility&)
            -> llvm::Expected<llvm::orc::ThreadSafeModule> {
          absl::StatusOr<llvm::TargetMachine*> tm = host_target_machine();
          if (!tm.ok()) {
            return llvm::createStringError(llvm::inconvertibleErrorCode(), tm.status().ToString());
          }
          tsm.withModuleDo([&](llvm::Module& m) { optimize_module(m, **tm); });
          return tsm;
        });
  }
  return absl::OkStatus();
}

absl::StatusOr<llvm::orc::JITDylib*> CpuJit::Impl::new_dylib() {
  // Each module gets its own JITDylib, so equal symbol names in different modules never clash.
  // Its default link order reaches the process's symbols (memset and memcpy, which LLVM may
  // introduce).
  auto jd = jit->createJITDylib(absl::StrCat("smelt", next_dylib.fetch_add(1)));
  if (!jd) {
    return absl::InternalError(
        absl::StrCat("CPU JIT: cannot create a JITDylib: ", to_string(jd.takeError())));
  }
  return &*jd;
}

absl::StatusOr<std::vector<void*>> CpuJit::Impl::lookup(llvm::orc::JITDylib& dylib,
                                                        absl::Span<const std::string> symbols) {
  std::vector<void*> out;
  out.reserve(symbols.size());
  for (const std::string& name : symbols) {
    auto addr = jit->lookup(dylib, name);
    if (!addr) {
      return absl::NotFoundError(absl::StrCat("CPU JIT: cannot find or compile symbol '", name,
                                              "': ", to_string(addr.takeError())));
    }
    out.push_back(addr->toPtr<void*>());
  }
  return out;
}

absl::Status CpuJit::Impl::load_or_compile(const std::string& key,
                                           absl::Span<const std::string> symbols,
                                           absl::FunctionRef<absl::StatusOr<JitModulePtr>()> build,
                                           Entry& entry) {
  if (disk) {
    const auto t0 = std::chrono::steady_clock::now();
    if (std::unique_ptr<llvm::MemoryBuffer> obj = disk->load(key)) {
      absl::StatusOr<llvm::orc::JITDylib*> jd = new_dylib();
      if (!jd.ok()) return jd.status();
      // An object that passed its checksum but does not link (or lacks a symbol) is compiled
      // again, in a fresh JITDylib.
      if (!jit->addObjectFile(**jd, std::move(obj))) {
        if (lookup(**jd, symbols).ok()) {
          entry.dylib = *jd;
          absl::MutexLock lock(&mu);
          ++stats.disk_hits;
          stats.load_seconds += seconds_since(t0);
          return absl::OkStatus();
        }
      }
    }
    absl::MutexLock lock(&mu);
    ++stats.disk_misses;
  }

  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<JitModulePtr> built = build();
  if (!built.ok()) return built.status();
  JitModule& jm = **built;
  if (!jm.module || !jm.context)
    return absl::InternalError("CPU JIT: the module builder gave none");
  llvm::Module& m = *jm.module;
  {
    std::string report;
    llvm::raw_string_ostream os(report);
    if (llvm::verifyModule(m, &os)) {
      return absl::InternalError(
          absl::StrCat("CPU JIT: module '", key, "' fails the LLVM verifier:\n", os.str()));
    }
  }
  for (const std::string& name : symbols) {
    llvm::Function* f = m.getFunction(name);
    if (f == nullptr || f->isDeclaration()) {
      return absl::NotFoundError(
          absl::StrCat("CPU JIT: module '", key, "' defines no function '", name, "'"));
    }
  }
  m.setModuleIdentifier(key);  // the ObjectCache's key
  if (disk) {
    std::string text;
    llvm::raw_string_ostream os(text);
    m.print(os, nullptr);
    disk->set_pending_ir(key, std::move(os.str()));
  }
  absl::StatusOr<llvm::orc::JITDylib*> jd = new_dylib();
  if (!jd.ok()) return jd.status();
  llvm::orc::ThreadSafeModule tsm(std::move(jm.module), std::move(jm.context));
  if (llvm::Error err = jit->addIRModule(**jd, std::move(tsm))) {
    return absl::InternalError(
        absl::StrCat("CPU JIT: cannot add module '", key, "': ", to_string(std::move(err))));
  }
  // The first lookup optimizes, compiles and links the whole module.
  absl::StatusOr<std::vector<void*>> found = lookup(**jd, symbols);
  if (disk) disk->drop_pending_ir(key);
  if (!found.ok()) return absl::InternalError(found.status().message());
  entry.dylib = *jd;
  absl::MutexLock lock(&mu);
  ++stats.compiles;
  stats.compile_seconds += seconds_since(t0);
  return absl::OkStatus();
}

CpuJit::CpuJit(CpuJitOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->init_status = impl_->init();
}

CpuJit::~CpuJit() = default;

CpuJitOptions CpuJit::options_from_env() {
  CpuJitOptions o;
  o.cache_dir = cache_dir_from_env();
  return o;
}

absl::StatusOr<std::vector<void*>> CpuJit::compile(
    const std::string& module_key, absl::Span<const std::string> symbols,
    absl::FunctionRef<absl::StatusOr<JitModulePtr>()> build) {
  Impl& im = *impl_;
  if (!im.init_status.ok()) return im.init_status;
  std::shared_ptr<Impl::Entry> entry;
  bool owner = false;
  {
    absl::MutexLock lock(&im.mu);
    auto [it, inserted] = im.entries.try_emplace(module_key);
    if (inserted) {
      it->second = std::make_shared<Impl::Entry>();
      owner = true;
    }
    entry = it->second;
  }
  if (!owner) {
    entry->done.WaitForNotification();
    if (!entry->status.ok()) return entry->status;
    {
      absl::MutexLock lock(&im.mu);
      ++im.stats.memory_hits;
    }
    return im.lookup(*entry->dylib, symbols);
  }
  absl::Status s = im.load_or_compile(module_key, symbols, build, *entry);
  if (!s.ok()) {
    // Forget the failure, so a later call (say, after the cause is fixed) tries again; callers
    // already waiting see this error.
    absl::MutexLock lock(&im.mu);
    im.entries.erase(module_key);
    ++im.stats.failures;
  }
  entry->status = s;
  entry->done.Notify();
  if (!s.ok()) return s;
  return im.lookup(*entry->dylib, symbols);
}

const std::string& CpuJit::target_id() const { return impl_->target_id; }
const std::string& CpuJit::cpu_name() const { return impl_->cpu_name; }

const std::string& CpuJit::cache_dir() const {
  static const std::string kNone;
  return impl_->disk ? impl_->disk->dir() : kNone;
}

CpuJitStats CpuJit::stats() const {
  absl::MutexLock lock(&impl_->mu);
  CpuJitStats s = impl_->stats;
  if (impl_->disk) s.disk_write_errors = impl_->disk->write_errors();
  return s;
}

CpuJit& cpu_jit() {
  static CpuJit* jit = new CpuJit(CpuJit::options_from_env());
  return *jit;
}

}  // namespace smelt::runtime
