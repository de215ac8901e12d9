// The LLVM side of runtime/cpu_jit.h: what a JitModule holds, and the host optimization pipeline.
// Private to the code generator (compiler/codegen/llvm/) and the JIT; the only runtime header
// that includes LLVM.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "runtime/cpu_jit.h"

namespace llvm {
class TargetMachine;
}

namespace smelt::runtime {

// A module and the context it lives in. Members are destroyed in reverse order: the module
// before its context.
struct JitModule {
  std::unique_ptr<llvm::LLVMContext> context;
  std::unique_ptr<llvm::Module> module;
};

// A fresh, empty module named `name`, in a new context.
JitModulePtr make_jit_module(const std::string& name);

// A TargetMachine for the host CPU (its name and features), owned by the calling thread: a
// TargetMachine is not safe to share between threads that compile.
absl::StatusOr<llvm::TargetMachine*> host_target_machine();

// What compile() does to a module before codegen: sets the host's triple and data layout, then
// runs the O3 pipeline with the host TargetMachine (so the vectorizers see its vector width).
void optimize_module(llvm::Module& m, llvm::TargetMachine& tm);

}  // namespace smelt::runtime
