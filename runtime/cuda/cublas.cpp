// gemm() through cuBLAS. cuBLAS is column-major and smelt row-major: a row-major matrix is the
// column-major matrix of its transpose, so C = A B is computed as C^T = B^T A^T, which cuBLAS
// sees as (its) B times (its) A with the output written row-major for us.
//
// cuBLAS is dlopen'ed at the first GPU matrix product, like the driver, not linked: loading it
// costs ~0.18 s and ~217 MB of resident memory per process (measured on the 2-core CI machine),
// which every CPU-only program and every test process paid at start-up for nothing.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <limits>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "runtime/cuda/driver.h"
#include "runtime/cuda_api.h"

namespace smelt::runtime::cuda {
namespace {

// The few cuBLAS entry points smelt calls; the types come from the header, the addresses from
// the library (cublas_v2.h maps cublasCreate to cublasCreate_v2 and so on: those are the names).
struct Cublas {
  absl::Status status;  // OK when every pointer below is set
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm = nullptr;
  decltype(&cublasDgemmStridedBatched) dgemm = nullptr;
};

const Cublas& cublas() {
  static const Cublas* loaded = [] {
    auto* c = new Cublas;
    void* lib = nullptr;
    // The soname of the toolkit smelt was built with (found through the loader's usual paths
    // and libsmelt's runpath), then the library CMake found.
    const std::string soname = absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR);
    for (const char* name : {soname.c_str(), SMELT_CUBLAS_LIBRARY}) {
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    }
    if (lib == nullptr) {
      c->status = absl::UnavailableError(absl::StrCat(
          "cuBLAS not found (", soname, ", needed for matmul on the GPU): ", dlerror()));
      return c;
    }
    auto resolve = [&](const char* name, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (fn == nullptr && c->status.ok()) {
        c->status = absl::UnavailableError(absl::StrCat(soname, " lacks ", name));
      }
    };
    resolve("cublasCreate_v2", c->create);
    resolve("cublasSetStream_v2", c->set_stream);
    resolve("cublasGetStatusName", c->status_name);
    resolve("cublasGetStatusString", c->status_string);
    resolve("cublasSgemmStridedBatched", c->sgemm);
    resolve("cublasDgemmStridedBatched", c->dgemm);
    return c;
  }();
  return *loaded;
}

absl::Status cublas_check(const Cublas& api, cublasStatus_t s, absl::string_view what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  std::string message =
      absl::StrCat(what, " failed: ", api.status_name(s), " (", api.status_string(s), ")");
  switch (s) {
    case CUBLAS_STATUS_ALLOC_FAILED:
      return absl::ResourceExhaustedError(message);
    case CUBLAS_STATUS_INVALID_VALUE:
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return absl::InvalidArgumentError(message);
    case CUBLAS_STATUS_NOT_INITIALIZED:
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

// The handle, created once in smelt's context and bound to smelt's stream.
absl::StatusOr<cublasHandle_t> handle(const Cublas& api) {
  static absl::StatusOr<cublasHandle_t>* h = [&] {
    cublasHandle_t handle = nullptr;
    absl::Status s = cublas_check(api, api.create(&handle), "cublasCreate");
    if (s.ok()) {
      // CUstream and cudaStream_t are the same type (CUstream_st*).
      s = cublas_check(api, api.set_stream(handle, stream()), "cublasSetStream");
    }
    return new absl::StatusOr<cublasHandle_t>(s.ok() ? absl::StatusOr<cublasHandle_t>(handle)
                                                     : absl::StatusOr<cublasHandle_t>(s));
  }();
  return *h;
}

// An operand as cuBLAS takes it: the op to apply and the leading dimension.
struct Layout {
  cublasOperation_t op;
  int64_t ld;
};

// The layout of the cuBLAS operand that is the transpose of the row-major `rows` x `cols`
// operand `x`: with unit column stride, x's rows are cuBLAS's columns (op N, ld = row stride);
// with unit row stride, x is a transposed view (op T, ld = column stride). A stride of an
// extent-1 dimension is never used, so it does not count.
absl::StatusOr<Layout> layout_of(const GemmOperand& x, int64_t rows, int64_t cols, char which) {
  const int64_t min_n = std::max<int64_t>(1, cols);  // ld of op N must be >= the cuBLAS rows
  if (x.col_stride == 1 || cols <= 1) {
    const int64_t ld = rows <= 1 ? min_n : x.row_stride;
    if (ld >= min_n) return Layout{CUBLAS_OP_N, ld};
  }
  const int64_t min_t = std::max<int64_t>(1, rows);
  if (x.row_stride == 1 || rows <= 1) {
    const int64_t ld = cols <= 1 ? min_t : x.col_stride;
    if (ld >= min_t) return Layout{CUBLAS_OP_T, ld};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "gemm: operand ", std::string(1, which), " (", rows, " x ", cols, ") has strides (",
      x.row_stride, ", ", x.col_stride,
      "); cuBLAS needs one unit stride and the other at least the matching extent (copy it to a "
      "contiguous buffer first)"));
}

bool fits_int(int64_t v) { return v >= 0 && v <= std::numeric_limits<int>::max(); }

}  // namespace

absl::Status gemm(bool is_double, int64_t batch, int64_t m, int64_t n, int64_t k,
                  const GemmOperand& a, const GemmOperand& b, void* c) {
  if (batch < 0 || m < 0 || n < 0 || k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: negative extent (batch ", batch, ", m ", m, ", n ", n, ", k ", k, ")"));
  }
  if (batch == 0 || m == 0 || n == 0) return absl::OkStatus();
  absl::StatusOr<const DriverApi*> api = ensure_context();
  if (!api.ok()) return api.status();
  if (k == 0) {  // an empty sum; cuBLAS would reject the leading dimensions of 0-wide operands
    const size_t elem = is_double ? 8 : 4;
    return memset_on_device(c, 0, static_cast<size_t>(batch * m * n) * elem);
  }
  absl::StatusOr<Layout> la = layout_of(a, m, k, 'A');
  if (!la.ok()) return la.status();
  absl::StatusOr<Layout> lb = layout_of(b, k, n, 'B');
  if (!lb.ok()) return lb.status();
  if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(batch) || !fits_int(la->ld) ||
      !fits_int(lb->ld)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: extents or leading dimensions over 2^31 (batch ", batch, ", m ", m,
                     ", n ", n, ", k ", k, ", lda ", la->ld, ", ldb ", lb->ld, ")"));
  }
  const Cublas& blas = cublas();
  if (!blas.status.ok()) return blas.status;
  absl::StatusOr<cublasHandle_t> h = handle(blas);
  if (!h.ok()) return h.status();
  const size_t elem = is_double ? 8 : 4;
  const char* pa = static_cast<const char*>(a.data) + a.offset * static_cast<int64_t>(elem);
  const char* pb = static_cast<const char*>(b.data) + b.offset * static_cast<int64_t>(elem);
  const std::string what =
      absl::StrCat(is_double ? "cublasDgemmStridedBatched" : "cublasSgemmStridedBatched",
                   " (batch ", batch, ", m ", m, ", n ", n, ", k ", k, ")");
  // Column-major: C^T (n x m, ld n) = op(B^T) (n x k) * op(A^T) (k x m).
  if (is_double) {
    const double alpha = 1, beta = 0;
    return cublas_check(
        blas,
        blas.dgemm(*h, lb->op, la->op, static_cast<int>(n), static_cast<int>(m),
                   static_cast<int>(k), &alpha, reinterpret_cast<const double*>(pb),
                   static_cast<int>(lb->ld), b.batch_stride, reinterpret_cast<const double*>(pa),
                   static_cast<int>(la->ld), a.batch_stride, &beta, static_cast<double*>(c),
                   static_cast<int>(n), m * n, static_cast<int>(batch)),
        what);
  }
  const float alpha = 1, beta = 0;
  return cublas_check(
      blas,
      blas.sgemm(*h, lb->op, la->op, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                 &alpha, reinterpret_cast<const float*>(pb), static_cast<int>(lb->ld),
                 b.batch_stride, reinterpret_cast<const float*>(pa), static_cast<int>(la->ld),
                 a.batch_stride, &beta, static_cast<float*>(c), static_cast<int>(n), m * n,
                 static_cast<int>(batch)),
      what);
}

}  // namespace smelt::runtime::cuda
