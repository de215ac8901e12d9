// conv2d and max_pool2d on a CUDA device: the CPU's algorithm (runtime/conv.cpp) with built-in
// NVRTC kernels for the index work and cuBLAS for the GEMMs. Every kernel gathers (one thread
// per element it writes), so col2im and the pooling gradient need no atomics and are
// deterministic.
#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/conv.h"
#include "runtime/cuda_api.h"

namespace smelt::runtime {
namespace {

constexpr const char* kConvKernels = R"CUDA(
struct Geom {  // runtime::WindowCall's geometry
  long long n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw;
};
#define SMELT_FOR_EACH(i, total)                                             \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
       i += (long long)gridDim.x * blockDim.x)

template <typename T> __device__ bool smelt_isnan(T v) { return v != v; }

// col [C*KH*KW, N*OH*OW]
template <typename T>
__device__ void im2col(const T* __restrict__ x, T* __restrict__ col, Geom g) {
  const long long p = g.oh * g.ow, np = g.n * p, kk = g.kh * g.kw;
  SMELT_FOR_EACH(e, g.c * kk * np) {
    const long long r = e / np, q = e % np;
    const long long n = q / p, oh = q % p / g.ow, ow = q % g.ow;
    const long long c = r / kk, i = r % kk / g.kw, j = r % g.kw;
    const long long h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
    col[e] = (h >= 0 && h < g.h && w >= 0 && w < g.w) ? x[((n * g.c + c) * g.h + h) * g.w + w]
                                                       : T(0);
  }
}

// x [N, C, H, W]: each element sums the column entries read from it.
template <typename T>
__device__ void col2im(const T* __restrict__ col, T* __restrict__ x, Geom g) {
  const long long p = g.oh * g.ow, np = g.n * p;
  SMELT_FOR_EACH(e, g.n * g.c * g.h * g.w) {
    const long long w = e % g.w, h = e / g.w % g.h, c = e / (g.w * g.h) % g.c;
    const long long n = e / (g.w * g.h * g.c);
    T sum = T(0);
    for (long long i = 0; i < g.kh; ++i) {
      const long long th = h + g.ph - i * g.dh;
      if (th < 0 || th % g.sh != 0 || th / g.sh >= g.oh) continue;
      for (long long j = 0; j < g.kw; ++j) {
        const long long tw = w + g.pw - j * g.dw;
        if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.ow) continue;
        sum += col[((c * g.kh + i) * g.kw + j) * np + n * p + th / g.sh * g.ow + tw / g.sw];
      }
    }
    x[e] = sum;
  }
}

// [N, O, P] <-> [O, N*P]
template <typename T>
__device__ void to_columns(const T* __restrict__ src, T* __restrict__ dst, Geom g, bool back) {
  const long long p = g.oh * g.ow;
  SMELT_FOR_EACH(e, g.n * g.o * p) {
    const long long q = e % p, o = e / p % g.o, n = e / (p * g.o);
    const long long at = (o * g.n + n) * p + q;
    if (back) {
      dst[e] = src[at];
    } else {
      dst[at] = src[e];
    }
  }
}

// PyTorch's rule (runtime/conv.cpp): the first in-bounds element starts the maximum; a later one
// replaces it when greater or NaN. Returns the argmax's offset in the plane.
template <typename T>
__device__ long long window_argmax(const T* __restrict__ plane, Geom g, long long oh,
                                   long long ow) {
  long long best_at = -1;
  T best = T(0);
  for (long long i = 0; i < g.kh; ++i) {
    const long long h = oh * g.sh - g.ph + i * g.dh;
    if (h < 0 || h >= g.h) continue;
    for (long long j = 0; j < g.kw; ++j) {
      const long long w = ow * g.sw - g.pw + j * g.dw;
      if (w < 0 || w >= g.w) continue;
      const T v = plane[h * g.w + w];
      if (best_at < 0 || v > best || smelt_isnan(v)) {
        best = v;
        best_at = h * g.w + w;
      }
    }
  }
  return best_at;
}

template <typename T>
__device__ void pool(const T* __restrict__ x, T* __restrict__ y, Geom g) {
  const long long p = g.oh * g.ow;
  SMELT_FOR_EACH(e, g.n * g.c * p) {
    const T* plane = x + e / p * g.h * g.w;
    y[e] = plane[window_argmax(plane, g, e % p / g.ow, e % g.ow)];
  }
}

// dx: each input element sums the gradients of the windows whose argmax it is.
template <typename T>
__device__ void pool_backward(const T* __restrict__ x, const T* __restrict__ gy,
                              T* __restrict__ dx, Geom g) {
  const long long hw = g.h * g.w, p = g.oh * g.ow;
  SMELT_FOR_EACH(e, g.n * g.c * hw) {
    const long long plane = e / hw, at = e % hw, h = at / g.w, w = at % g.w;
    T sum = T(0);
    for (long long i = 0; i < g.kh; ++i) {
      const long long th = h + g.ph - i * g.dh;
      if (th < 0 || th % g.sh != 0 || th / g.sh >= g.oh) continue;
      for (long long j = 0; j < g.kw; ++j) {
        const long long tw = w + g.pw - j * g.dw;
        if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.ow) continue;
        const long long oh = th / g.sh, ow = tw / g.sw;
        if (window_argmax(x + plane * hw, g, oh, ow) == at) sum += gy[plane * p + oh * g.ow + ow];
      }
    }
    dx[e] = sum;
  }
}

#define SMELT_CONV_KERNELS(T, S)                                                                 \
  extern "C" __global__ void smelt_im2col_##S(const T* x, T* col, Geom g) { im2col(x, col, g); } \
  extern "C" __global__ void smelt_col2im_##S(const T* col, T* x, Geom g) { col2im(col, x, g); } \
  extern "C" __global__ void smelt_to_columns_##S(const T* src, T* dst, int back, Geom g) {      \
    to_columns(src, dst, g, back != 0);                                                          \
  }                                                                                              \
  extern "C" __global__ void smelt_pool_backward_##S(const T* x, const T* gy, T* dx, Geom g) {   \
    pool_backward(x, gy, dx, g);                                                                 \
  }
#define SMELT_POOL_KERNEL(T, S) \
  extern "C" __global__ void smelt_pool_##S(const T* x, T* y, Geom g) { pool(x, y, g); }
SMELT_CONV_KERNELS(float, f32)
SMELT_CONV_KERNELS(double, f64)
SMELT_POOL_KERNEL(float, f32)
SMELT_POOL_KERNEL(double, f64)
SMELT_POOL_KERNEL(int, i32)
SMELT_POOL_KERNEL(long long, i64)
)CUDA";

struct Geom {  // the kernels' Geom, field for field
  long long n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw;
};

Geom geom_of(const WindowCall& w) {
  return {w.batch,    w.channels, w.in_h,  w.in_w,       w.out_channels,
          w.kernel_h, w.kernel_w, w.out_h, w.out_w,      w.stride_h,
          w.stride_w, w.pad_h,    w.pad_w, w.dilation_h, w.dilation_w};
}

// Kernels by [dtype index][kind]; dtype index: f32, f64, i32, i64.
enum Kind { kIm2col, kCol2im, kToColumns, kPoolBackward, kPool, kNumKinds };

struct ConvKernels {
  cuda::Function fn[4][kNumKinds] = {};
};

const char* suffix(int t) { return t == 0 ? "f32" : t == 1 ? "f64" : t == 2 ? "i32" : "i64"; }

std::vector<std::string> names_in_order() {
  std::vector<std::string> names;
  for (int t = 0; t < 2; ++t) {
    for (const char* k : {"im2col", "col2im", "to_columns", "pool_backward"}) {
      names.push_back(absl::StrCat("smelt_", k, "_", suffix(t)));
    }
  }
  for (int t = 0; t < 4; ++t) names.push_back(absl::StrCat("smelt_pool_", suffix(t)));
  return names;
}

absl::StatusOr<const ConvKernels*> conv_kernels() {
  static std::mutex mu;
  static ConvKernels* loaded = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded != nullptr) return loaded;
  absl::StatusOr<cuda::CompiledImage> image = cuda::nvrtc_compile(kConvKernels, "smelt_conv");
  if (!image.ok()) return image.status();
  absl::StatusOr<std::vector<cuda::Function>> fns = cuda::load_functions(*image, names_in_order());
  if (!fns.ok()) return fns.status();
  auto* k = new ConvKernels;
  for (int t = 0; t < 2; ++t) {
    for (int kind = 0; kind < 4; ++kind) k->fn[t][kind] = (*fns)[t * 4 + kind];
  }
  for (int t = 0; t < 4; ++t) k->fn[t][kPool] = (*fns)[8 + t];
  loaded = k;
  return loaded;
}

cuda::LaunchConfig grid_for(int64_t total) {
  cuda::LaunchConfig c;
  c.grid[0] = static_cast<uint32_t>(std::clamp<int64_t>((total + 255) / 256, 1, 132 * 32));
  c.block[0] = 256;
  return c;
}

class ConvRun {
 public:
  ConvRun(const WindowCall& w, const ConvKernels& k, int device)
      : w_(w), g_(geom_of(w)), t_(cuda::builtin_dtype_index(w.dtype)), k_(k), device_(device) {}

  absl::Status run(const void* a, const void* b, void* out) {
    const int64_t p = w_.out_h * w_.out_w, np = w_.batch * p;
    const int64_t rows = w_.channels * w_.kernel_h * w_.kernel_w;
    const bool dbl = w_.dtype == DType::Float64;
    using Op = WindowCall::Op;
    switch (w_.op) {
      case Op::kPool:
        return launch(kPool, w_.batch * w_.channels * p, {&a, &out});
      case Op::kPoolBackward:
        return launch(kPoolBackward, w_.batch * w_.channels * w_.in_h * w_.in_w, {&a, &b, &out});
      case Op::kConv: {
        absl::StatusOr<base::BufferPtr> col = temp(rows * np);
        if (!col.ok()) return col.status();
        absl::StatusOr<base::BufferPtr> y = temp(w_.out_channels * np);
        if (!y.ok()) return y.status();
        void* cols = (*col)->data();
        void* ys = (*y)->data();
        if (absl::Status s = launch(kIm2col, rows * np, {&a, &cols}); !s.ok()) return s;
        if (absl::Status s = cuda::gemm(dbl, 1, w_.out_channels, np, rows, {b, 0, 0, rows, 1},
                                        {cols, 0, 0, np, 1}, ys);
            !s.ok()) {
          return s;
        }
        int back = 1;
        return launch(kToColumns, w_.out_channels * np, {&ys, &out, &back});
      }
      case Op::kConvBackwardInput: {
        absl::StatusOr<GradientColumns> c = gradient_columns(a);
        if (!c.ok()) return c.status();
        // weight^T [rows, O]: element (r, o) at o * rows + r.
        if (absl::Status s = cuda::gemm(dbl, 1, rows, np, w_.out_channels, {b, 0, 0, 1, rows},
                                        {c->gs, 0, 0, np, 1}, c->cols);
            !s.ok()) {
          return s;
        }
        return launch(kCol2im, w_.batch * w_.channels * w_.in_h * w_.in_w, {&c->cols, &out});
      }
      case Op::kConvBackwardWeight: {
        absl::StatusOr<GradientColumns> c = gradient_columns(b);
        if (!c.ok()) return c.status();
        if (absl::Status s = launch(kIm2col, rows * np, {&a, &c->cols}); !s.ok()) return s;
        // col^T [N*P, rows]: element (q, r) at r * np + q.
        return cuda::gemm(dbl, 1, w_.out_channels, rows, np, {c->gs, 0, 0, np, 1},
                          {c->cols, 0, 0, 1, np}, out);
      }
    }
    return absl::InternalError("conv on CUDA: unknown window op");
  }

 private:
  // A conv gradient's scratch: the output gradient [N, O, P] moved to [O, N*P] (`gs`), and a
  // column matrix [C*KH*KW, N*P] (`cols`) for the caller to fill. Both live until it is
  // destroyed; the allocator orders their reuse after the kernels queued on the stream.
  struct GradientColumns {
    base::BufferPtr g, col;
    void* gs = nullptr;
    void* cols = nullptr;
  };
  absl::StatusOr<GradientColumns> gradient_columns(const void* grad) {
    const int64_t np = w_.batch * w_.out_h * w_.out_w;
    absl::StatusOr<base::BufferPtr> g = temp(w_.out_channels * np);
    if (!g.ok()) return g.status();
    absl::StatusOr<base::BufferPtr> col = temp(w_.channels * w_.kernel_h * w_.kernel_w * np);
    if (!col.ok()) return col.status();
    GradientColumns c{*std::move(g), *std::move(col)};
    c.gs = c.g->data();
    c.cols = c.col->data();
    int back = 0;
    if (absl::Status s = launch(kToColumns, w_.out_channels * np, {&grad, &c.gs, &back}); !s.ok()) {
      return s;
    }
    return c;
  }

  absl::StatusOr<base::BufferPtr> temp(int64_t count) {
    return cuda::allocate(static_cast<size_t>(count) * dtype_size(w_.dtype), device_);
  }

  // Launches kernel `kind` over `total` elements with `args` (pointers to the pointer and flag
  // arguments) followed by the geometry: every kernel takes its Geom last.
  absl::Status launch(Kind kind, int64_t total, std::vector<const void*> args) {
    cuda::Function fn = k_.fn[t_][kind];
    if (fn == nullptr) {
      return absl::UnimplementedError(
          absl::StrCat("conv on CUDA: no kernel for ", dtype_name(w_.dtype)));
    }
    std::vector<void*> params;
    for (const void* a : args) params.push_back(const_cast<void*>(a));
    params.push_back(&g_);
    return cuda::launch(fn, grid_for(total), params.data());
  }

  const WindowCall& w_;
  Geom g_;
  int t_;
  const ConvKernels& k_;
  int device_;
};

}  // namespace

const char* conv_cuda_source() { return kConvKernels; }
std::vector<std::string> conv_cuda_kernel_names() { return names_in_order(); }

absl::Status run_window_cuda(const WindowCall& w, const void* a, const void* b, void* out,
                             int device) {
  if (w.batch * w.out_channels * w.out_h * w.out_w == 0 || w.channels == 0) {
    // An empty batch: every sum is empty.
    return cuda::memset_on_device(
        out, 0, static_cast<size_t>(window_out_elements(w)) * dtype_size(w.dtype));
  }
  if (cuda::builtin_dtype_index(w.dtype) < 0) {
    return absl::UnimplementedError(
        absl::StrCat("conv on CUDA: unsupported dtype ", dtype_name(w.dtype)));
  }
  absl::StatusOr<const ConvKernels*> k = conv_kernels();
  if (!k.ok()) return k.status();
  return ConvRun(w, **k, device).run(a, b, out);
}

}  // namespace smelt::runtime
