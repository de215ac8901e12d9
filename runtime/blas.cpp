#include "runtime/blas.h"

#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/dtype_visit.h"
#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

// ---- OpenBLAS, loaded on first use --------------------------------------------------------------
//
// OpenBLAS picks its kernels when it loads, from the CPU it detects; Debian's 0.3.21 does not
// know recent Intel CPUs (Sapphire Rapids) and falls back to its Prescott (SSE3) kernels, 5x
// slower at sgemm than its SkylakeX ones on the same machine. The choice can only be steered
// through OPENBLAS_CORETYPE before the library initializes, so smelt does not link OpenBLAS:
// it sets OPENBLAS_CORETYPE from the CPU's features (unless the user set it) and then dlopens
// the library. AVX-512 (F, BW, VL, DQ) -> SkylakeX, AVX2 + FMA -> Haswell, else OpenBLAS's own
// choice.
//
// Which build: the OpenMP one (Debian's libopenblas0-openmp) when it is there, because smelt's
// thread pool is an OpenMP team too, so GEMMs and fused kernels share one set of threads instead
// of two pools taking turns on the same cores (bench/RESULTS.md, "One thread team"). Else the
// system's default libopenblas.so.0 (the pthreads build), else the one CMake found.
// SMELT_OPENBLAS names a library to load instead (for comparisons).
struct Cblas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  decltype(&cblas_dgemm) dgemm = nullptr;
  bool openmp = false;  // the library is OpenBLAS's OpenMP build
  std::string error;    // why loading failed
  // True when smelt cuts each large GEMM into panels of C, one OpenBLAS call per team thread
  // (see gemm below); false when OpenBLAS threads each call itself.
  bool panels = false;
};

const char* core_for_this_cpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

const Cblas& cblas() {
  static const Cblas* loaded = [] {
    auto* c = new Cblas;
    const char* core = core_for_this_cpu();
    if (core != nullptr) setenv("OPENBLAS_CORETYPE", core, /*overwrite=*/0);
    void* lib = nullptr;
    if (const char* chosen = std::getenv("SMELT_OPENBLAS"); chosen != nullptr && *chosen) {
      lib = dlopen(chosen, RTLD_NOW | RTLD_LOCAL);
    } else {
      for (const char* name :
           {SMELT_OPENBLAS_OPENMP_LIBRARY, "libopenblas.so.0", SMELT_OPENBLAS_LIBRARY}) {
        if (*name && (lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
      }
    }
    if (lib == nullptr) {
      c->error = absl::StrCat("OpenBLAS not found: ", dlerror());
      return c;
    }
    c->sgemm = reinterpret_cast<decltype(&cblas_sgemm)>(dlsym(lib, "cblas_sgemm"));
    c->dgemm = reinterpret_cast<decltype(&cblas_dgemm)>(dlsym(lib, "cblas_dgemm"));
    if (c->sgemm == nullptr || c->dgemm == nullptr) c->error = "OpenBLAS lacks cblas_sgemm/dgemm";
    // openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP.
    using GetParallel = int (*)();
    auto get_parallel = reinterpret_cast<GetParallel>(dlsym(lib, "openblas_get_parallel"));
    c->openmp = get_parallel != nullptr && get_parallel() == 2;
    // SMELT_BLAS_THREADS: "openblas" leaves every call's threading to OpenBLAS, "pool" asks for
    // panels on any build. The OpenMP build gets panels by default: its calls from inside a team
    // region run on their own thread, so nothing else needs setting. The pthreads build must be
    // told to run one thread per call, which its openblas_set_num_threads does globally (on the
    // OpenMP build that call would also shrink the OpenMP team, and with it smelt's pool).
    const char* threading = std::getenv("SMELT_BLAS_THREADS");
    const std::string_view mode = threading != nullptr ? threading : "";
    c->panels = mode == "pool" || (c->openmp && mode != "openblas");
    if (c->panels && !c->openmp) {
      using SetThreads = void (*)(int);
      auto set_threads = reinterpret_cast<SetThreads>(dlsym(lib, "openblas_set_num_threads"));
      if (set_threads == nullptr) {
        c->panels = false;  // another BLAS: leave its threading alone
      } else {
        set_threads(1);
      }
    }
    return c;
  }();
  return *loaded;
}

// How BLAS can read an m x n strided matrix: row-major with leading dim `ld` (NoTrans), or
// column-major (Trans), or not at all (needs packing).
struct BlasView {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};

BlasView blas_view(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if ((col_stride == 1 || cols == 1) && row_stride >= std::max<int64_t>(cols, 1)) {
    return {true, false, row_stride};
  }
  if ((row_stride == 1 || rows == 1) && col_stride >= std::max<int64_t>(rows, 1)) {
    return {true, true, col_stride};
  }
  if (rows == 1 && cols == 1) return {true, false, 1};
  return {};
}

template <typename T>
void pack(const T* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, T* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = src[r * rs + c * cs];
  }
}

template <typename T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
               const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const auto tra = ta ? CblasTrans : CblasNoTrans;
  const auto trb = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas().sgemm(CblasRowMajor, tra, trb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    cblas().dgemm(CblasRowMajor, tra, trb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

// C = alpha op(A) op(B) + beta C, row-major. With `panels` (the OpenMP build's default), a
// large product is cut into one panel of C per team thread, each panel one single-threaded
// OpenBLAS call, and panel t goes to thread t (ThreadPool's chunk affinity). OpenBLAS's own
// threading of these shapes forks for products too small to gain from it and splits some large
// ones badly; and the kernels after a GEMM split their elements the same way, so a row panel
// is read back by the thread whose cache holds it. Panels are rows when C is at least as tall
// as wide, or when k is short (the output, not the packed shared operand, is then most of the
// traffic, and the rows are what the next kernel reads), else columns. Measured on the 2-core
// VM, interleaved in one process (bench/RESULTS.md, "GEMM panels"): in the MLP step, x W1^T
// 305 -> 274 us, the weight gradient 304 -> 260 us, the update after it 30 -> 19 us, the
// step -11 %; alone, 32x9x50176 1480 -> 683 us and 64x288x12544 2518 -> 2312 us, and no shape
// measured got slower. Products OpenBLAS runs on one thread anyway (m n k < 2^18) are left
// whole, and so are ones whose panels would be narrower than 64, where OpenBLAS's
// two-dimensional split of many threads should do better. Splitting along m or n leaves each
// element's sum over k to the same kernel, in the same order.
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  constexpr double kMinPanelWork = 1 << 18;  // m n k: OpenBLAS's own one-thread threshold
  constexpr int64_t kMinPanelWidth = 64;
  constexpr int64_t kShortK = 256;
  ThreadPool& pool = default_thread_pool();
  const int64_t threads = pool.num_threads();
  const bool by_rows = m >= n || (k <= kShortK && m >= threads * kMinPanelWidth);
  const int64_t extent = by_rows ? m : n;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (!cblas().panels || threads == 1 || in_parallel_region() || work < kMinPanelWork ||
      extent < threads * kMinPanelWidth) {
    blas_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Panels a multiple of 16 wide keep OpenBLAS's micro-kernels on full tiles; the last one takes
  // what is left.
  const int64_t width = ((extent + threads - 1) / threads + 15) / 16 * 16;
  const int64_t num_panels = (extent + width - 1) / width;
  pool.parallel_for(num_panels, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      const int64_t begin = p * width, size = std::min(width, extent - begin);
      if (by_rows) {
        const T* a_panel = ta ? a + begin : a + begin * lda;
        blas_gemm<T>(ta, tb, size, n, k, alpha, a_panel, lda, b, ldb, beta, c + begin * ldc, ldc);
      } else {
        const T* b_panel = tb ? b + begin * ldb : b + begin;
        blas_gemm<T>(ta, tb, m, size, k, alpha, a, lda, b_panel, ldb, beta, c + begin, ldc);
      }
    }
  });
}

// The largest transposed narrow B (elements) that matmul_float packs; see there.
constexpr int64_t kPackNarrowElements = 64 * 1024;

// Calls fn(batch, a_offset, b_offset) for every batch index of `call`, in row-major order.
template <typename F>
void for_each_batch(const MatmulCall& call, F&& fn) {
  int64_t batches = 1;
  for (int64_t d : call.batch_shape) batches *= d;
  std::vector<int64_t> idx(call.batch_shape.size(), 0);
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t oa = call.a.offset, ob = call.b.offset;
    for (size_t d = 0; d < idx.size(); ++d) {
      oa += idx[d] * call.a.batch_strides[d];
      ob += idx[d] * call.b.batch_strides[d];
    }
    fn(bi, oa, ob);
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < call.batch_shape[d]) break;
      idx[d] = 0;
    }
  }
}

// With an addend (addmm), `addend` holds beta's operand: it is copied into `out` first unless it
// is `out` itself (the executor may hand the addend's dying buffer over as the output).
template <typename T>
void matmul_float(const MatmulCall& call, const T* a, const T* b, T* out, const T* addend) {
  const int64_t m = call.m, n = call.n, k = call.k;
  const T alpha = static_cast<T>(call.alpha);
  const T beta = addend != nullptr ? static_cast<T>(call.beta) : T(0);
  if (addend != nullptr && addend != out) {
    int64_t batches = 1;
    for (int64_t d : call.batch_shape) batches *= d;
    std::memcpy(out, addend, sizeof(T) * static_cast<size_t>(batches * m * n));
  }
  const BlasView va = blas_view(m, k, call.a.row_stride, call.a.col_stride);
  BlasView vb = blas_view(k, n, call.b.row_stride, call.b.col_stride);
  // OpenBLAS 0.3.21 multiplies by a transposed B of fewer than 16 columns at half the speed of
  // the plain layout (a 128x256 by 256x10 product: 18-30 us against 12-14 us, either thread
  // count): a small one is packed into rows first, which costs a microsecond. It is a
  // classifier's last layer, x W^T with W [10, 256].
  if (vb.ok && vb.trans && n < 16 && k * n <= kPackNarrowElements) vb.ok = false;
  std::vector<T> pa, pb;
  if (!va.ok) pa.resize(m * k);
  if (!vb.ok) pb.resize(k * n);
  for_each_batch(call, [&](int64_t bi, int64_t oa, int64_t ob) {
    T* c = out + bi * m * n;
    if (k == 0) {
      // No products: beta times the addend (or zeros).
      if (addend == nullptr) {
        std::memset(c, 0, sizeof(T) * m * n);
      } else {
        for (int64_t e = 0; e < m * n; ++e) c[e] *= beta;
      }
    } else if (m > 0 && n > 0) {
      const T* pa_ptr = a + oa;
      const T* pb_ptr = b + ob;
      BlasView ua = va, ub = vb;
      if (!va.ok) {
        pack(a + oa, m, k, call.a.row_stride, call.a.col_stride, pa.data());
        pa_ptr = pa.data();
        ua = {true, false, k};
      }
      if (!vb.ok) {
        pack(b + ob, k, n, call.b.row_stride, call.b.col_stride, pb.data());
        pb_ptr = pb.data();
        ub = {true, false, n};
      }
      gemm<T>(ua.trans, ub.trans, m, n, k, alpha, pa_ptr, ua.ld, pb_ptr, ub.ld, beta, c, n);
    }
  });
}

template <typename T>
void matmul_int(const MatmulCall& call, const T* a, const T* b, T* out) {
  for_each_batch(call, [&](int64_t bi, int64_t oa, int64_t ob) {
    for (int64_t r = 0; r < call.m; ++r) {
      for (int64_t c = 0; c < call.n; ++c) {
        // Wrapping arithmetic, as the reference evaluator defines integer matmul.
        uint64_t acc = 0;
        for (int64_t j = 0; j < call.k; ++j) {
          acc += static_cast<uint64_t>(
                     static_cast<int64_t>(a[oa + r * call.a.row_stride + j * call.a.col_stride])) *
                 static_cast<uint64_t>(
                     static_cast<int64_t>(b[ob + j * call.b.row_stride + c * call.b.col_stride]));
        }
        out[bi * call.m * call.n + r * call.n + c] = static_cast<T>(static_cast<int64_t>(acc));
      }
    }
  });
}

}  // namespace

absl::Status run_matmul(const MatmulCall& call, const void* a, const void* b, void* out,
                        const void* addend) {
  if (is_floating(call.dtype) && !cblas().error.empty()) {
    return absl::UnavailableError(absl::StrCat("matmul: ", cblas().error));
  }
  if ((addend != nullptr) != (call.addend >= 0) ||
      (addend != nullptr && !is_floating(call.dtype))) {
    return absl::InternalError("addmm: the addend's buffer does not match the call");
  }
  switch (call.dtype) {
    case DType::Float32:
      matmul_float(call, static_cast<const float*>(a), static_cast<const float*>(b),
                   static_cast<float*>(out), static_cast<const float*>(addend));
      return absl::OkStatus();
    case DType::Float64:
      matmul_float(call, static_cast<const double*>(a), static_cast<const double*>(b),
                   static_cast<double*>(out), static_cast<const double*>(addend));
      return absl::OkStatus();
    case DType::Int32:
      matmul_int(call, static_cast<const int32_t*>(a), static_cast<const int32_t*>(b),
                 static_cast<int32_t*>(out));
      return absl::OkStatus();
    case DType::Int64:
      matmul_int(call, static_cast<const int64_t*>(a), static_cast<const int64_t*>(b),
                 static_cast<int64_t*>(out));
      return absl::OkStatus();
    case DType::Bool:
      break;
  }
  return absl::InternalError("matmul: unsupported dtype");
}

bool blas_shares_thread_pool() { return cblas().openmp; }

namespace {

template <bool kPanels>
absl::Status typed_gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                        const void* a, int64_t lda, const void* b, int64_t ldb, double beta,
                        void* c, int64_t ldc) {
  if (!cblas().error.empty()) return absl::UnavailableError(cblas().error);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const T* ta = static_cast<const T*>(a);
    const T* tb = static_cast<const T*>(b);
    T* tc = static_cast<T*>(c);
    if constexpr (kPanels) {
      gemm<T>(trans_a, trans_b, m, n, k, T(1), ta, lda, tb, ldb, static_cast<T>(beta), tc, ldc);
    } else {
      blas_gemm<T>(trans_a, trans_b, m, n, k, T(1), ta, lda, tb, ldb, static_cast<T>(beta), tc,
                   ldc);
    }
  };
  if (dtype == DType::Float32) {
    run(float{});
  } else if (dtype == DType::Float64) {
    run(double{});
  } else {
    return absl::InternalError(absl::StrCat("gemm: unsupported dtype ", dtype_name(dtype)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                  const void* a, int64_t lda, const void* b, int64_t ldb, double beta, void* c,
                  int64_t ldc) {
  return typed_gemm<true>(dtype, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

absl::Status openblas_gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           const void* a, int64_t lda, const void* b, int64_t ldb, double beta,
                           void* c, int64_t ldc) {
  return typed_gemm<false>(dtype, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

namespace {

// index_add: each unit owns a range of output positions of one outer slice (so no two units write
// one element, and a long table is split among threads even with few columns): it zeroes its
// rows, then adds every source slice whose index falls in its range. Floating sums accumulate in
// the output's own type, as PyTorch's do; integers wrap (through the unsigned type).
template <typename T>
void index_add(const GatherCall& c, const std::vector<int64_t>& idx, const void* src, void* out) {
  const auto* s = static_cast<const T*>(src);
  auto* o = static_cast<T*>(out);
  constexpr int64_t kRows = 64;  // output positions per unit
  const int64_t chunks = (c.dim_size + kRows - 1) / kRows;
  const int64_t per_unit = std::max<int64_t>(1, (kRows + c.num_indices / chunks) * c.inner);
  // The source slices grouped by the range their index falls in, in their order (a counting
  // sort), so every unit visits only its own and sums them in source order.
  std::vector<int64_t> first(static_cast<size_t>(chunks) + 1, 0), by_range(idx.size());
  for (int64_t p : idx) ++first[p / kRows + 1];
  for (int64_t r = 0; r < chunks; ++r) first[r + 1] += first[r];
  {
    std::vector<int64_t> next(first.begin(), first.end() - 1);
    for (int64_t j = 0; j < c.num_indices; ++j) by_range[next[idx[j] / kRows]++] = j;
  }
  default_thread_pool().parallel_for(
      c.outer * chunks, std::max<int64_t>(1, (int64_t{1} << 15) / per_unit),
      [&](int64_t begin, int64_t end) {
        for (int64_t u = begin; u < end; ++u) {
          const int64_t b = u / chunks, p0 = (u % chunks) * kRows;
          const int64_t p1 = std::min(c.dim_size, p0 + kRows);  // [p0, p1): this unit's rows
          T* rows = o + (b * c.dim_size + p0) * c.inner;
          std::fill(rows, rows + (p1 - p0) * c.inner, T{0});
          for (int64_t q = first[p0 / kRows]; q < first[p0 / kRows + 1]; ++q) {
            const int64_t j = by_range[q];
            const T* from = s + (b * c.num_indices + j) * c.inner;
            T* to = o + (b * c.dim_size + idx[j]) * c.inner;
            for (int64_t e = 0; e < c.inner; ++e) {
              if constexpr (std::is_floating_point_v<T>) {
                to[e] += from[e];
              } else {
                using U = std::make_unsigned_t<T>;
                to[e] = static_cast<T>(static_cast<U>(to[e]) + static_cast<U>(from[e]));
              }
            }
          }
        }
      });
}

}  // namespace

absl::Status run_gather(const GatherCall& call, const void* src, const void* index, void* out) {
  std::vector<int64_t> idx(call.num_indices);
  for (int64_t i = 0; i < call.num_indices; ++i) {
    idx[i] = call.index_dtype == DType::Int32 ? static_cast<const int32_t*>(index)[i]
                                              : static_cast<const int64_t*>(index)[i];
    if (idx[i] < 0 || idx[i] >= call.dim_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(call.add ? "index_add" : "index_select", ": index ", idx[i],
                       " is out of range for dim ", call.dim, " of size ", call.dim_size));
    }
  }
  if (call.add) {
    if (call.outer * call.dim_size * call.inner == 0) return absl::OkStatus();
    const bool known = visit_numeric(
        call.dtype, [&](auto zero) { index_add<decltype(zero)>(call, idx, src, out); });
    if (!known) {
      return absl::InternalError(absl::StrCat("index_add: no kernel for ", dtype_name(call.dtype)));
    }
    return absl::OkStatus();
  }
  const size_t row = call.inner * call.element_size;
  const char* s = static_cast<const char*>(src);
  char* o = static_cast<char*>(out);
  for (int64_t outer = 0; outer < call.outer; ++outer) {
    for (int64_t i = 0; i < call.num_indices; ++i) {
      std::memcpy(o + (outer * call.num_indices + i) * row,
                  s + (outer * call.dim_size + idx[i]) * row, row);
    }
  }
  return absl::OkStatus();
}

}  // namespace smelt::runtime
