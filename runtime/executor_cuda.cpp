// The CUDA executor: runs a Program whose values live on a CUDA device. Fused kernels were
// compiled by compiler/codegen/cuda; matmuls go to cuBLAS; index_select and the layouts cuBLAS
// cannot read run as built-in kernels (below), compiled with NVRTC on first use.
//
// Everything is queued on smelt's one stream, so temporaries go back to the caching allocator
// right after their last reader is queued (stream-ordered reuse). The host waits only where an
// answer is needed: a program with a gather reads back whether an index was out of range.
#include <algorithm>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/conv.h"
#include "runtime/cuda_api.h"
#include "runtime/program.h"
#include "runtime/scan.h"

namespace smelt::runtime {
namespace {

// Built-in kernels. index_select copies rows of `element` bytes (moved as 1/2/4/8-byte words);
// a bad index is not written but recorded: the smallest offending position goes to `bad` with
// atomicMin, so the error names the same index the CPU executor would (the first).
// strided_copy makes a contiguous copy of a strided view (for matmul operands cuBLAS cannot
// read as they are).
constexpr const char* kBuiltins = R"CUDA(
// Calls f(i, at) for each element i of an [outer, count, inner] result whose index j is in range,
// `at` being the matching element of the [outer, dim_size, inner] side; the smallest bad j goes
// to `bad` (atomicMin), so the error names the same index the CPU executor would (the first).
template <typename I, typename F>
__device__ void over_indexed(const I* __restrict__ index, long long outer, long long dim_size,
                             long long inner, long long count, unsigned long long* bad, F f) {
  const long long total = outer * count * inner;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long c = i % inner;
    const long long t = i / inner;
    const long long j = t % count;
    const long long o = t / count;
    const long long ix = (long long)index[j];
    if (ix < 0 || ix >= dim_size) {
      atomicMin(bad, (unsigned long long)j);
      continue;
    }
    f(i, (o * dim_size + ix) * inner + c);
  }
}
template <typename T, typename I>
__device__ void gather(const T* __restrict__ src, const I* __restrict__ index, T* __restrict__ out,
                       long long outer, long long dim_size, long long inner, long long count,
                       unsigned long long* bad) {
  over_indexed(index, outer, dim_size, inner, count, bad,
               [&](long long i, long long at) { out[i] = src[at]; });
}
#define SMELT_GATHER(T, I, NAME)                                                          \
  extern "C" __global__ void NAME(const T* src, const I* index, T* out, long long outer,  \
                                  long long dim_size, long long inner, long long count,   \
                                  unsigned long long* bad) {                              \
    gather<T, I>(src, index, out, outer, dim_size, inner, count, bad);                    \
  }
SMELT_GATHER(unsigned char, int, smelt_gather_1_i32)
SMELT_GATHER(unsigned char, long long, smelt_gather_1_i64)
SMELT_GATHER(unsigned short, int, smelt_gather_2_i32)
SMELT_GATHER(unsigned short, long long, smelt_gather_2_i64)
SMELT_GATHER(unsigned int, int, smelt_gather_4_i32)
SMELT_GATHER(unsigned int, long long, smelt_gather_4_i64)
SMELT_GATHER(unsigned long long, int, smelt_gather_8_i32)
SMELT_GATHER(unsigned long long, long long, smelt_gather_8_i64)

// index_add: one thread per source element adds it at its index (atomics: repeated indices meet
// in one place). `out` is zeroed first. Float sums are not ordered, as PyTorch's on a GPU.
__device__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ void atomic_add(int* p, int v) { atomicAdd(p, v); }
__device__ void atomic_add(long long* p, long long v) {
  atomicAdd((unsigned long long*)p, (unsigned long long)v);
}
template <typename T, typename I>
__device__ void index_add(const T* __restrict__ src, const I* __restrict__ index, T* out,
                          long long outer, long long size, long long inner, long long count,
                          unsigned long long* bad) {
  over_indexed(index, outer, size, inner, count, bad,
               [&](long long i, long long at) { atomic_add(out + at, src[i]); });
}
#define SMELT_INDEX_ADD(T, I, NAME)                                                       \
  extern "C" __global__ void NAME(const T* src, const I* index, T* out, long long outer,  \
                                  long long size, long long inner, long long count,       \
                                  unsigned long long* bad) {                              \
    index_add<T, I>(src, index, out, outer, size, inner, count, bad);                     \
  }
SMELT_INDEX_ADD(float, int, smelt_index_add_f32_i32)
SMELT_INDEX_ADD(float, long long, smelt_index_add_f32_i64)
SMELT_INDEX_ADD(double, int, smelt_index_add_f64_i32)
SMELT_INDEX_ADD(double, long long, smelt_index_add_f64_i64)
SMELT_INDEX_ADD(int, int, smelt_index_add_i32_i32)
SMELT_INDEX_ADD(int, long long, smelt_index_add_i32_i64)
SMELT_INDEX_ADD(long long, int, smelt_index_add_i64_i32)
SMELT_INDEX_ADD(long long, long long, smelt_index_add_i64_i64)

struct View {
  long long offset;
  int rank;
  long long shape[12];
  long long strides[12];
};
template <typename T>
__device__ void strided_copy(const T* __restrict__ src, T* __restrict__ out, View v,
                             long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long t = i, at = v.offset;
    for (int d = v.rank - 1; d >= 0; --d) {
      at += (t % v.shape[d]) * v.strides[d];
      t /= v.shape[d];
    }
    out[i] = src[at];
  }
}
extern "C" __global__ void smelt_strided_copy_4(const unsigned int* src, unsigned int* out, View v,
                                                long long total) {
  strided_copy(src, out, v, total);
}
extern "C" __global__ void smelt_strided_copy_8(const unsigned long long* src,
                                                unsigned long long* out, View v, long long total) {
  strided_copy(src, out, v, total);
}
)CUDA";

constexpr int kMaxViewRank = 12;
struct View {  // the kernel's View, byte for byte
  long long offset = 0;
  int rank = 0;
  long long shape[kMaxViewRank] = {};
  long long strides[kMaxViewRank] = {};
};

struct Builtins {
  cuda::Function gather[4][2] = {};     // [log2(element size)][index is Int64]
  cuda::Function index_add[4][2] = {};  // [builtin_dtype_index][index is Int64]
  cuda::Function copy4 = nullptr, copy8 = nullptr;
};

absl::StatusOr<const Builtins*> builtins() {
  static std::mutex mu;
  static Builtins* loaded = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded != nullptr) return loaded;
  absl::StatusOr<cuda::CompiledImage> image = cuda::nvrtc_compile(kBuiltins, "smelt_builtins");
  if (!image.ok()) return image.status();
  std::vector<std::string> names;
  for (int size : {1, 2, 4, 8}) {
    for (const char* idx : {"i32", "i64"})
      names.push_back(absl::StrCat("smelt_gather_", size, "_", idx));
  }
  names.push_back("smelt_strided_copy_4");
  names.push_back("smelt_strided_copy_8");
  for (const char* t : {"f32", "f64", "i32", "i64"}) {
    for (const char* idx : {"i32", "i64"})
      names.push_back(absl::StrCat("smelt_index_add_", t, "_", idx));
  }
  absl::StatusOr<std::vector<cuda::Function>> fns = cuda::load_functions(*image, names);
  if (!fns.ok()) return fns.status();
  auto* b = new Builtins;
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < 2; ++i) b->gather[s][i] = (*fns)[s * 2 + i];
  }
  b->copy4 = (*fns)[8];
  b->copy8 = (*fns)[9];
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 2; ++i) b->index_add[t][i] = (*fns)[10 + t * 2 + i];
  }
  loaded = b;
  return loaded;
}

cuda::LaunchConfig grid_for(int64_t total) {
  cuda::LaunchConfig c;
  const int64_t blocks = std::clamp<int64_t>((total + 255) / 256, 1, 132 * 32);
  c.grid[0] = static_cast<uint32_t>(blocks);
  c.block[0] = 256;
  return c;
}

// Whether cuBLAS reads the operand (rows x cols, given strides) as it is: one stride must be 1
// and the other a leading dimension of at least the matching extent.
bool blas_readable(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if (col_stride == 1 && row_stride >= std::max<int64_t>(cols, 1)) return true;
  if (row_stride == 1 && col_stride >= std::max<int64_t>(rows, 1)) return true;
  // A single row or column: the other stride never moves.
  if (rows == 1 && col_stride == 1) return true;
  if (cols == 1 && row_stride == 1) return true;
  return false;
}

class CudaRun {
 public:
  CudaRun(const Program& p, absl::Span<const base::BufferPtr> inputs)
      : p_(p), values_(p.value_bytes.size()), keep_(p.value_bytes.size(), false) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      values_[p.inputs[i]] = inputs[i];
      keep_[p.inputs[i]] = true;
    }
    for (int32_t out : p.outputs) keep_[out] = true;
  }

  absl::StatusOr<std::vector<base::BufferPtr>> run() {
    for (size_t c = 0; c < p_.calls.size(); ++c) {
      absl::Status s = std::visit([&](const auto& call) { return this->call(call); }, p_.calls[c]);
      if (!s.ok()) return s;
      for_each_operand(p_.calls[c], [&](int32_t v) {
        if (!keep_[v] && p_.last_use[v] == static_cast<int32_t>(c)) values_[v].reset();
      });
    }
    if (absl::Status s = check_gathers(); !s.ok()) return s;
    std::vector<base::BufferPtr> outputs;
    outputs.reserve(p_.outputs.size());
    for (int32_t out : p_.outputs) outputs.push_back(values_[out]);
    return outputs;
  }

 private:
  absl::Status ensure(int32_t v) {
    if (values_[v] != nullptr) return absl::OkStatus();
    absl::StatusOr<base::BufferPtr> buf = cuda::allocate(p_.value_bytes[v], p_.device.index());
    if (!buf.ok()) return buf.status();
    values_[v] = *std::move(buf);
    return absl::OkStatus();
  }
  void* ptr(int32_t v) const { return values_[v]->data(); }

  absl::StatusOr<base::BufferPtr> temp(size_t nbytes) {
    return cuda::allocate(nbytes, p_.device.index());
  }

  absl::Status call(const KernelCall& k) {
    return absl::InternalError(
        absl::StrCat("execute_cuda: CPU kernel ", k.name, " in a CUDA program"));
  }

  absl::Status call(const CudaKernelCall& k) {
    std::vector<void*> ptrs;
    ptrs.reserve(k.args.size() + 2);
    for (int32_t v : k.args) {
      if (absl::Status s = ensure(v); !s.ok()) return s;
      ptrs.push_back(ptr(v));
    }
    if (k.empty) return absl::OkStatus();
    base::BufferPtr scratch, tickets;
    if (k.ticket_bytes > 0) {
      absl::StatusOr<base::BufferPtr> s = temp(k.scratch_bytes);
      if (!s.ok()) return s.status();
      absl::StatusOr<base::BufferPtr> t = temp(k.ticket_bytes);
      if (!t.ok()) return t.status();
      scratch = *std::move(s);
      tickets = *std::move(t);
      if (absl::Status st = cuda::memset_on_device(tickets->data(), 0, k.ticket_bytes); !st.ok())
        return st;
      ptrs.push_back(scratch->data());
      ptrs.push_back(tickets->data());
    }
    std::vector<void*> params(ptrs.size());
    for (size_t i = 0; i < ptrs.size(); ++i) params[i] = &ptrs[i];
    cuda::LaunchConfig config;
    std::copy(k.grid, k.grid + 3, config.grid);
    std::copy(k.block, k.block + 3, config.block);
    count_kernel_launch();
    // scratch and tickets return to the allocator now; the stream orders their reuse.
    return cuda::launch(k.fn, config, params.data());
  }

  // A contiguous copy of a strided matrix operand, for cuBLAS.
  absl::StatusOr<base::BufferPtr> contiguous(const MatrixOperand& op, DType dtype,
                                             const std::vector<int64_t>& batch_shape, int64_t rows,
                                             int64_t cols) {
    View view;
    view.offset = op.offset;
    view.rank = static_cast<int>(batch_shape.size()) + 2;
    if (view.rank > kMaxViewRank) {
      return absl::UnimplementedError(absl::StrCat("matmul on CUDA: ", batch_shape.size(),
                                                   " batch dims (at most ", kMaxViewRank - 2, ")"));
    }
    int64_t total = rows * cols;
    for (size_t d = 0; d < batch_shape.size(); ++d) {
      view.shape[d] = batch_shape[d];
      view.strides[d] = op.batch_strides[d];
      total *= batch_shape[d];
    }
    view.shape[view.rank - 2] = rows;
    view.strides[view.rank - 2] = op.row_stride;
    view.shape[view.rank - 1] = cols;
    view.strides[view.rank - 1] = op.col_stride;
    const size_t esize = dtype_size(dtype);
    absl::StatusOr<base::BufferPtr> buf = temp(static_cast<size_t>(total) * esize);
    if (!buf.ok() || total == 0) return buf;
    absl::StatusOr<const Builtins*> b = builtins();
    if (!b.ok()) return b.status();
    const void* src = ptr(op.value);
    void* dst = (*buf)->data();
    long long n = total;
    void* params[] = {&src, &dst, &view, &n};
    absl::Status s = cuda::launch(esize == 8 ? (*b)->copy8 : (*b)->copy4, grid_for(total), params);
    if (!s.ok()) return s;
    return buf;
  }

  absl::Status call(const MatmulCall& m) {
    // compiler/passes/accumulate_matmul.h builds addmm for CPU graphs only.
    if (m.addend >= 0) return absl::InternalError("addmm on CUDA: not supported by this executor");
    if (absl::Status s = ensure(m.out); !s.ok()) return s;
    count_library_call();
    if (m.dtype != DType::Float32 && m.dtype != DType::Float64) {
      return absl::UnimplementedError(absl::StrCat("matmul on CUDA: ", dtype_name(m.dtype),
                                                   " operands (cuBLAS takes f32 and f64)"));
    }
    if (m.m == 0 || m.n == 0) return absl::OkStatus();
    const size_t esize = dtype_size(m.dtype);
    int64_t batch = 1;
    for (int64_t d : m.batch_shape) batch *= d;
    if (batch == 0) return absl::OkStatus();
    if (m.k == 0) return cuda::memset_on_device(ptr(m.out), 0, batch * m.m * m.n * esize);

    // Operands cuBLAS cannot read, or whose batch dims do not collapse to one stride, are
    // copied to contiguous temporaries first.
    struct Operand {
      cuda::GemmOperand g;
      base::BufferPtr copy;
    };
    auto prepare = [&](const MatrixOperand& op, int64_t rows,
                       int64_t cols) -> absl::StatusOr<Operand> {
      bool flat = true;  // batch dims collapse: stride[d] == stride[d+1] * shape[d+1]
      for (size_t d = 0; d + 1 < m.batch_shape.size(); ++d) {
        if (m.batch_shape[d] > 1 &&
            op.batch_strides[d] != op.batch_strides[d + 1] * m.batch_shape[d + 1]) {
          flat = false;
        }
      }
      Operand out;
      if (flat && blas_readable(rows, cols, op.row_stride, op.col_stride)) {
        out.g.data = ptr(op.value);
        out.g.offset = op.offset;
        out.g.batch_stride = op.batch_strides.empty() ? 0 : op.batch_strides.back();
        out.g.row_stride = op.row_stride;
        out.g.col_stride = op.col_stride;
        return out;
      }
      absl::StatusOr<base::BufferPtr> c = contiguous(op, m.dtype, m.batch_shape, rows, cols);
      if (!c.ok()) return c.status();
      out.copy = *std::move(c);
      out.g.data = out.copy->data();
      out.g.batch_stride = rows * cols;
      out.g.row_stride = cols;
      out.g.col_stride = 1;
      return out;
    };
    absl::StatusOr<Operand> a = prepare(m.a, m.m, m.k);
    if (!a.ok()) return a.status();
    absl::StatusOr<Operand> b = prepare(m.b, m.k, m.n);
    if (!b.ok()) return b.status();
    return cuda::gemm(m.dtype == DType::Float64, batch, m.m, m.n, m.k, a->g, b->g, ptr(m.out));
  }

  absl::Status call(const GatherCall& g) {
    if (absl::Status s = ensure(g.out); !s.ok()) return s;
    count_library_call();
    const int64_t total = g.outer * g.num_indices * g.inner;
    if (total == 0) {
      // No indices: an add's output is all zeros.
      const size_t bytes =
          static_cast<size_t>(g.outer * g.dim_size * g.inner) * dtype_size(g.dtype);
      return g.add && bytes > 0 ? cuda::memset_on_device(ptr(g.out), 0, bytes) : absl::OkStatus();
    }
    if (bad_ == nullptr) {
      absl::StatusOr<base::BufferPtr> b = temp(sizeof(uint64_t));
      if (!b.ok()) return b.status();
      bad_ = *std::move(b);
      // All bytes 0xff: no bad position yet (the largest unsigned value).
      if (absl::Status s = cuda::memset_on_device(bad_->data(), 0xff, sizeof(uint64_t)); !s.ok())
        return s;
    }
    absl::StatusOr<const Builtins*> b = builtins();
    if (!b.ok()) return b.status();
    if (g.add) return index_add(g, **b);
    // Rows move as words of the widest size that divides the row (bytes of `inner` elements).
    const size_t row = static_cast<size_t>(g.inner) * g.element_size;
    int log2 = 3;
    while (log2 > 0 && row % (size_t{1} << log2) != 0) --log2;
    const long long words = static_cast<long long>(row >> log2);
    const void* src = ptr(g.src);
    const void* index = ptr(g.index);
    void* out = ptr(g.out);
    long long outer = g.outer, dim_size = g.dim_size, count = g.num_indices;
    long long inner = words;
    void* bad = bad_->data();
    void* params[] = {&src, &index, &out, &outer, &dim_size, &inner, &count, &bad};
    gathers_.push_back(g);
    return cuda::launch((*b)->gather[log2][g.index_dtype == DType::Int64 ? 1 : 0],
                        grid_for(outer * count * inner), params);
  }

  absl::Status index_add(const GatherCall& g, const Builtins& b) {
    const int t = cuda::builtin_dtype_index(g.dtype);
    if (t < 0) {
      return absl::InternalError(absl::StrCat("index_add: no kernel for ", dtype_name(g.dtype)));
    }
    void* out = ptr(g.out);
    const size_t bytes = static_cast<size_t>(g.outer * g.dim_size * g.inner) * dtype_size(g.dtype);
    if (absl::Status s = cuda::memset_on_device(out, 0, bytes); !s.ok()) return s;
    const void* src = ptr(g.src);
    const void* index = ptr(g.index);
    long long outer = g.outer, size = g.dim_size, inner = g.inner, count = g.num_indices;
    void* bad = bad_->data();
    void* params[] = {&src, &index, &out, &outer, &size, &inner, &count, &bad};
    gathers_.push_back(g);
    return cuda::launch(b.index_add[t][g.index_dtype == DType::Int64 ? 1 : 0],
                        grid_for(outer * count * inner), params);
  }

  absl::Status call(const ScanCall& s) {
    if (absl::Status st = ensure(s.out); !st.ok()) return st;
    count_library_call();
    return run_scan_cuda(s, ptr(s.src), ptr(s.out));
  }

  absl::Status call(const WindowCall& w) {
    if (absl::Status s = ensure(w.out); !s.ok()) return s;
    count_library_call();
    return run_window_cuda(w, ptr(w.a), w.b >= 0 ? ptr(w.b) : nullptr, ptr(w.out),
                           p_.device.index());
  }

  // After the program: if any gather met an index out of range, the error the CPU gives.
  absl::Status check_gathers() {
    if (bad_ == nullptr) return absl::OkStatus();
    uint64_t position = 0;
    if (absl::Status s = cuda::copy_to_host(&position, bad_->data(), sizeof(position)); !s.ok())
      return s;
    if (position == std::numeric_limits<uint64_t>::max()) return absl::OkStatus();
    // The position is within the first gather whose indices reach that far; report its value.
    for (const GatherCall& g : gathers_) {
      if (static_cast<int64_t>(position) >= g.num_indices || values_[g.index] == nullptr) continue;
      const char* op = g.add ? "index_add" : "index_select";
      int64_t value = 0;
      const size_t isize = dtype_size(g.index_dtype);
      const char* at = static_cast<const char*>(values_[g.index]->data()) + position * isize;
      if (g.index_dtype == DType::Int32) {
        int32_t v32 = 0;
        if (absl::Status s = cuda::copy_to_host(&v32, at, 4); !s.ok()) return s;
        value = v32;
      } else if (absl::Status s = cuda::copy_to_host(&value, at, 8); !s.ok()) {
        return s;
      }
      if (value >= 0 && value < g.dim_size) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          op, ": index ", value, " is out of range for dim ", g.dim, " of size ", g.dim_size));
    }
    return absl::InvalidArgumentError("index_select: an index is out of range");
  }

  const Program& p_;
  std::vector<base::BufferPtr> values_;
  std::vector<bool> keep_;
  base::BufferPtr bad_;
  std::vector<GatherCall> gathers_;
};

}  // namespace

const char* cuda_builtins_source() { return kBuiltins; }

absl::StatusOr<std::vector<base::BufferPtr>> execute_cuda(
    const Program& program, absl::Span<const base::BufferPtr> inputs) {
  if (inputs.size() != program.inputs.size()) {
    return absl::InternalError(absl::StrCat("execute: program takes ", program.inputs.size(),
                                            " inputs, got ", inputs.size()));
  }
  if (absl::Status s = cuda::availability(); !s.ok()) return s;
  return CudaRun(program, inputs).run();
}

}  // namespace smelt::runtime
