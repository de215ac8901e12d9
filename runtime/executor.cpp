#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/overloaded.h"
#include "runtime/blas.h"
#include "runtime/conv.h"
#include "runtime/memory_pool.h"
#include "runtime/program.h"
#include "runtime/scan.h"
#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

std::atomic<uint64_t> g_kernels{0};
std::atomic<uint64_t> g_library{0};

// A kernel right after a BLAS call takes chunks this many times its grain when OpenBLAS runs its
// own pthreads: they spin on the other cores for a while after each GEMM, so a pool worker woken
// there competes with one (on the 2-vCPU VM the MLP step's 200K-point weight update after its
// gradient's GEMM took 89-111 us on two threads and 69-72 us on one; bench/RESULTS.md, "In-place
// parameter updates"). With OpenBLAS's OpenMP build the spinning threads are the pool's own, so
// no factor (the same update: 35 us; "One thread team").
constexpr int64_t kGrainFactorAfterBlas = 4;
int64_t grain_factor_after_blas() {
  static const int64_t factor = blas_shares_thread_pool() ? 1 : kGrainFactorAfterBlas;
  return factor;
}

bool overlap(const base::Buffer& x, const base::Buffer& y) {
  const auto* a = static_cast<const char*>(x.data());
  const auto* b = static_cast<const char*>(y.data());
  return a < b + y.nbytes() && b < a + x.nbytes();
}

// Whether a call can fail for a reason other than allocating its output, which execute() does
// ahead for the calls after an in-place one: a gather checks its indices, a window op (conv,
// pooling) allocates its own workspace.
bool may_fail_while_running(const Call& call) {
  return std::holds_alternative<GatherCall>(call) || std::holds_alternative<WindowCall>(call);
}

// Which calls compute in a donated input's memory (execute's `donated`): an addmm accumulating
// in its addend, a kernel with in-place outputs (KernelCall::in_place). Each such input is
// donated and read for the last time by that call, and no other input in its memory (a view
// of it) is read by that call or a later one. Empty when none does, or when a call that may
// fail while running would follow one: once a donated buffer is overwritten, nothing may fail.
std::vector<bool> plan_in_place(const Program& program, absl::Span<const base::BufferPtr> inputs,
                                absl::Span<const bool> donated) {
  if (donated.empty()) return {};
  absl::InlinedVector<const base::Buffer*, 32> input_of(program.value_bytes.size(), nullptr);
  absl::InlinedVector<bool, 32> given(program.value_bytes.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    input_of[program.inputs[i]] = inputs[i].get();
    given[program.inputs[i]] = donated[i];
  }
  // Whether call c may overwrite donated input v.
  auto may_take = [&](int32_t v, size_t c) {
    if (!given[v] || program.last_use[v] != static_cast<int32_t>(c)) return false;
    for (int32_t u : program.inputs) {
      if (u != v && program.last_use[u] >= static_cast<int32_t>(c) &&
          overlap(*input_of[u], *input_of[v])) {
        return false;
      }
    }
    return true;
  };
  std::vector<bool> in_place(program.calls.size(), false);
  bool any = false;
  for (size_t c = 0; c < program.calls.size(); ++c) {
    if (may_fail_while_running(program.calls[c])) {
      if (any) return {};
      continue;
    }
    if (const auto* m = std::get_if<MatmulCall>(&program.calls[c])) {
      in_place[c] = m->addend >= 0 && may_take(m->addend, c);
    } else if (const auto* k = std::get_if<KernelCall>(&program.calls[c])) {
      in_place[c] = !k->in_place.empty();
      for (const auto& [in, out] : k->in_place) in_place[c] = in_place[c] && may_take(in, c);
    }
    any = any || in_place[c];
  }
  if (!any) return {};
  return in_place;
}

// Gives each output of call c that is computed in an input's memory that memory, when
// `in_place` (plan_in_place), else its own block holding a copy of the input.
absl::Status bind_in_place(const Call& call, bool in_place, absl::Span<base::BufferPtr> values,
                           const Program& program, CpuMemoryPool& pool) {
  if (const auto* m = std::get_if<MatmulCall>(&call)) {
    if (in_place) values[m->out] = values[m->addend];
    return absl::OkStatus();  // otherwise run_matmul copies the addend itself
  }
  const auto* k = std::get_if<KernelCall>(&call);
  if (k == nullptr) return absl::OkStatus();
  for (const auto& [in, out] : k->in_place) {
    if (values[out] != nullptr) continue;
    if (in_place) {
      values[out] = values[in];
      continue;
    }
    absl::StatusOr<base::BufferPtr> buf = pool.allocate(program.value_bytes[out]);
    if (!buf.ok()) return buf.status();
    std::memcpy((*buf)->data(), values[in]->data(), program.value_bytes[out]);
    values[out] = *std::move(buf);
  }
  return absl::OkStatus();
}

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
                                                     absl::Span<const base::BufferPtr> inputs,
                                                     absl::Span<const bool> donated) {
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
  // In-place accumulation into donated buffers: from the first such call on, every value and
  // scratch block is allocated up front, so no call can fail after a donated buffer changed.
  const std::vector<bool> in_place = plan_in_place(program, inputs, donated);
  const size_t first_in_place =
      in_place.empty() ? program.calls.size()
                       : std::find(in_place.begin(), in_place.end(), true) - in_place.begin();
  std::vector<base::BufferPtr> scratch_of;  // by call, for the calls from first_in_place on
  auto allocate_tail = [&]() -> absl::Status {
    scratch_of.resize(program.calls.size());
    for (size_t c = first_in_place; c < program.calls.size(); ++c) {
      absl::Status status =
          bind_in_place(program.calls[c], in_place[c], absl::MakeSpan(values), program, pool);
      for_each_operand(program.calls[c], [&](int32_t v) {
        if (status.ok()) status = ensure(v);
      });
      if (!status.ok()) return status;
      const auto* k = std::get_if<KernelCall>(&program.calls[c]);
      if (k != nullptr && k->scratch_bytes > 0) {
        absl::StatusOr<base::BufferPtr> buf = pool.allocate(static_cast<size_t>(k->scratch_bytes));
        if (!buf.ok()) return buf.status();
        scratch_of[c] = *std::move(buf);
      }
    }
    return absl::OkStatus();
  };
  absl::InlinedVector<void*, 16> ptrs;
  for (size_t c = 0; c < program.calls.size(); ++c) {
    if (c == first_in_place) {
      if (absl::Status s = allocate_tail(); !s.ok()) return s;
    }
    absl::Status status = std::visit(
        base::Overloaded{
            [&](const KernelCall& k) -> absl::Status {
              if (!k.in_place.empty()) {
                const bool own = !in_place.empty() && in_place[c];
                absl::Status s =
                    bind_in_place(program.calls[c], own, absl::MakeSpan(values), program, pool);
                if (!s.ok()) return s;
              }
              ptrs.clear();
              for (int32_t v : k.args) {
                if (absl::Status s = ensure(v); !s.ok()) return s;
                ptrs.push_back(values[v]->data());
              }
              // A split reduction's partials and completion counter; zeroed, as the
              // kernel ABI asks (compiler/codegen/llvm/emit_kernel.h).
              base::BufferPtr scratch = scratch_of.empty() ? nullptr : std::move(scratch_of[c]);
              if (k.scratch_bytes > 0 && scratch == nullptr) {
                absl::StatusOr<base::BufferPtr> buf =
                    pool.allocate(static_cast<size_t>(k.scratch_bytes));
                if (!buf.ok()) return buf.status();
                scratch = *std::move(buf);
              }
              if (scratch != nullptr) {
                std::memset(scratch->data(), 0, static_cast<size_t>(k.scratch_bytes));
                ptrs.push_back(scratch->data());
              }
              void* const* args = ptrs.data();
              KernelFn fn = k.fn;
              const bool after_blas =
                  c > 0 && std::holds_alternative<MatmulCall>(program.calls[c - 1]);
              threads.parallel_for(k.parallel_extent,
                                   after_blas ? k.grain * grain_factor_after_blas() : k.grain,
                                   [fn, args](int64_t b, int64_t e) { fn(args, b, e); });
              g_kernels.fetch_add(1, std::memory_order_relaxed);
              return absl::OkStatus();
            },
            [&](const MatmulCall& m) -> absl::Status {
              if (absl::Status s = ensure(m.out); !s.ok()) return s;
              g_library.fetch_add(1, std::memory_order_relaxed);
              return run_matmul(m, values[m.a.value]->data(), values[m.b.value]->data(),
                                values[m.out]->data(),
                                m.addend >= 0 ? values[m.addend]->data() : nullptr);
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
              return run_window(w, values[w.a]->data(), w.b >= 0 ? values[w.b]->data() : nullptr,
                                values[w.out]->data());
            },
            [&](const ScanCall& s) -> absl::Status {
              if (absl::Status st = ensure(s.out); !st.ok()) return st;
              g_library.fetch_add(1, std::memory_order_relaxed);
              return run_scan(s, values[s.src]->data(), values[s.out]->data());
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
