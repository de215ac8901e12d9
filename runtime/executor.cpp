#include <atomic>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/blas.h"
#include "runtime/conv.h"
#include "runtime/memory_pool.h"
#include "runtime/program.h"
#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

std::atomic<uint64_t> g_kernels{0};
std::atomic<uint64_t> g_library{0};

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

void Program::plan_lifetimes() {
  last_use.assign(value_bytes.size(), -1);
  for (size_t c = 0; c < calls.size(); ++c) {
    for_each_operand(calls[c], [&](int32_t v) { last_use[v] = static_cast<int32_t>(c); });
  }
}

void count_kernel_launch() { g_kernels.fetch_add(1, std::memory_order_relaxed); }
void count_library_call() { g_library.fetch_add(1, std::memory_order_relaxed); }

ExecStats exec_stats() { return ExecStats{g_kernels.load(), g_library.load()}; }

absl::StatusOr<std::vector<base::BufferPtr>> execute(const Program& program,
                                                     absl::Span<const base::BufferPtr> inputs) {
  if (program.device.is_cuda()) return execute_cuda(program, inputs);
  if (inputs.size() != program.inputs.size()) {
    return absl::InternalError(absl::StrCat("execute: program takes ", program.inputs.size(),
                                            " inputs, got ", inputs.size()));
  }
  // On the stack for a small program (a step of a few kernels): no allocation per run.
  absl::InlinedVector<base::BufferPtr, 16> values(program.value_bytes.size());
  absl::InlinedVector<bool, 16> keep(values.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    values[program.inputs[i]] = inputs[i];
    keep[program.inputs[i]] = true;
  }
  for (int32_t out : program.outputs) keep[out] = true;

  CpuMemoryPool& pool = cpu_pool();
  ThreadPool& threads = default_thread_pool();
  // Values are allocated by the call that writes them, and temporaries freed after their last
  // reader, so the pool recycles their blocks within one program run.
  auto ensure = [&](int32_t v) -> absl::Status {
    if (values[v] != nullptr) return absl::OkStatus();
    absl::StatusOr<base::BufferPtr> buf = pool.allocate(program.value_bytes[v]);
    if (!buf.ok()) return buf.status();
    values[v] = *std::move(buf);
    return absl::OkStatus();
  };
  absl::InlinedVector<void*, 16> ptrs;
  for (size_t c = 0; c < program.calls.size(); ++c) {
    absl::Status status = std::visit(
        Overloaded{[&](const KernelCall& k) -> absl::Status {
                     ptrs.clear();
                     for (int32_t v : k.args) {
                       if (absl::Status s = ensure(v); !s.ok()) return s;
                       ptrs.push_back(values[v]->data());
                     }
                     // A split reduction's partials and completion counter; zeroed, as the
                     // kernel ABI asks (compiler/codegen/llvm/emit_kernel.h).
                     base::BufferPtr scratch;
                     if (k.scratch_bytes > 0) {
                       absl::StatusOr<base::BufferPtr> buf =
                           pool.allocate(static_cast<size_t>(k.scratch_bytes));
                       if (!buf.ok()) return buf.status();
                       scratch = *std::move(buf);
                       std::memset(scratch->data(), 0, static_cast<size_t>(k.scratch_bytes));
                       ptrs.push_back(scratch->data());
                     }
                     void* const* args = ptrs.data();
                     KernelFn fn = k.fn;
                     threads.parallel_for(k.parallel_extent, k.grain,
                                          [fn, args](int64_t b, int64_t e) { fn(args, b, e); });
                     g_kernels.fetch_add(1, std::memory_order_relaxed);
                     return absl::OkStatus();
                   },
                   [&](const MatmulCall& m) -> absl::Status {
                     if (absl::Status s = ensure(m.out); !s.ok()) return s;
                     g_library.fetch_add(1, std::memory_order_relaxed);
                     return run_matmul(m, values[m.a.value]->data(), values[m.b.value]->data(),
                                       values[m.out]->data());
                   },
                   [&](const GatherCall& g) -> absl::Status {
                     if (absl::Status s = ensure(g.out); !s.ok()) return s;
                     g_library.fetch_add(1, std::memory_order_relaxed);
                     return run_gather(g, values[g.src]->data(), values[g.index]->data(),
                                       values[g.out]->data());
                   },
                   [&](const WindowCall& w) -> absl::Status {
                     if (absl::Status s = ensure(w.out); !s.ok()) return s;
                     g_library.fetch_add(1, std::memory_order_relaxed);
                     return run_window(w, values[w.a]->data(),
                                       w.b >= 0 ? values[w.b]->data() : nullptr,
                                       values[w.out]->data());
                   },
                   [&](const CudaKernelCall& k) -> absl::Status {
                     return absl::InternalError(
                         absl::StrCat("execute: CUDA kernel ", k.name, " in a CPU program"));
                   }},
        program.calls[c]);
    if (!status.ok()) return status;  // `values` releases every buffer back to the pool
    // A value whose last use is call c is one of call c's operands, so only those are checked
    // (not every value after every call).
    for_each_operand(program.calls[c], [&](int32_t v) {
      if (!keep[v] && program.last_use[v] == static_cast<int32_t>(c)) values[v].reset();
    });
  }
  std::vector<base::BufferPtr> outputs;
  outputs.reserve(program.outputs.size());
  for (int32_t out : program.outputs) outputs.push_back(values[out]);
  return outputs;
}

}  // namespace smelt::runtime
