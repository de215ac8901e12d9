#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

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

// Which addmm calls accumulate in their addend's buffer (execute's `donated`): the addend is a
// donated input read for the last time by that call, and neither factor lies in its memory.
// Empty when none does, or when a call that may fail while running would follow one: once a
// donated buffer is overwritten, nothing may fail.
std::vector<bool> plan_in_place(const Program& program, absl::Span<const base::BufferPtr> inputs,
                                absl::Span<const bool> donated) {
  if (donated.empty()) return {};
  absl::InlinedVector<const base::Buffer*, 32> input_of(program.value_bytes.size(), nullptr);
  absl::InlinedVector<bool, 32> given(program.value_bytes.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    input_of[program.inputs[i]] = inputs[i].get();
    given[program.inputs[i]] = donated[i];
  }
  std::vector<bool> in_place(program.calls.size(), false);
  bool any = false;
  for (size_t c = 0; c < program.calls.size(); ++c) {
    if (may_fail_while_running(program.calls[c])) {
      if (any) return {};
      continue;
    }
    const auto* m = std::get_if<MatmulCall>(&program.calls[c]);
    if (m == nullptr || m->addend < 0 || !given[m->addend] ||
        program.last_use[m->addend] != static_cast<int32_t>(c)) {
      continue;
    }
    const base::Buffer& addend = *input_of[m->addend];
    bool separate = true;
    for (int32_t factor : {m->a.value, m->b.value}) {
      if (input_of[factor] != nullptr && overlap(*input_of[factor], addend)) separate = false;
    }
    in_place[c] = separate;
    any = any || separate;
  }
  if (!any) return {};
  return in_place;
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
      if (in_place[c]) {
        const auto& m = std::get<MatmulCall>(program.calls[c]);
        values[m.out] = values[m.addend];
      }
    }
    for (size_t c = first_in_place; c < program.calls.size(); ++c) {
      absl::Status status = absl::OkStatus();
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
        Overloaded{
            [&](const KernelCall& k) -> absl::Status {
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
              threads.parallel_for(k.parallel_extent, k.grain,
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
