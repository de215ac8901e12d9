#include "runtime/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/blas.h"
#include "runtime/memory_pool.h"
#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

// The layout shared by the three convolutions: the columns matrix `col` is [C*KH*KW, N*P] (P =
// OH*OW), row (c, i, j) holding input channel c seen through kernel tap (i, j) at every output
// position of every image. With the batch inside the columns, each convolution is ONE GEMM
// large enough for OpenBLAS to use every core well (per-image GEMMs of a small CNN are a few
// MFLOP each), at the price of moving [N, O, P] tensors to [O, N*P] and back, which is cheap
// next to the GEMM.
struct Dims {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int64_t kk, rows, p, np;  // KH*KW, C*KK, OH*OW, N*P
};

Dims dims_of(const WindowCall& w) {
  Dims d;
  d.n = w.batch, d.c = w.channels, d.h = w.in_h, d.w = w.in_w, d.o = w.out_channels;
  d.kh = w.kernel_h, d.kw = w.kernel_w, d.oh = w.out_h, d.ow = w.out_w;
  d.kk = d.kh * d.kw;
  d.rows = d.c * d.kk;
  d.p = d.oh * d.ow;
  d.np = d.n * d.p;
  return d;
}

// Chunks of about this many elements keep the thread pool's handoff cost small.
constexpr int64_t kChunkElements = 16384;

int64_t grain_for(int64_t elements_per_task) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, elements_per_task));
}

// The outputs [lo, hi) of one axis whose tap at `offset` (= tap * dilation - pad) falls inside
// an input of `in` elements: 0 <= o * stride + offset < in.
std::pair<int64_t, int64_t> valid_range(int64_t out, int64_t in, int64_t stride, int64_t offset) {
  const int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t hi = in - 1 - offset < 0 ? 0 : (in - 1 - offset) / stride + 1;
  const int64_t a = std::min(lo, out);
  return {a, std::clamp(hi, a, out)};
}

template <typename T>
void im2col(const WindowCall& w, const Dims& d, const T* x, T* col) {
  default_thread_pool().parallel_for(d.rows * d.n, grain_for(d.p), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t r = t / d.n, n = t % d.n;
      const int64_t c = r / d.kk, i = r % d.kk / d.kw, j = r % d.kw;
      const T* plane = x + (n * d.c + c) * d.h * d.w;
      T* dst = col + r * d.np + n * d.p;
      const int64_t off_w = j * w.dilation_w - w.pad_w;
      const auto [lo, hi] = valid_range(d.ow, d.w, w.stride_w, off_w);
      for (int64_t oh = 0; oh < d.oh; ++oh, dst += d.ow) {
        const int64_t h = oh * w.stride_h - w.pad_h + i * w.dilation_h;
        if (h < 0 || h >= d.h) {
          std::fill(dst, dst + d.ow, T(0));
          continue;
        }
        const T* src = plane + h * d.w;
        std::fill(dst, dst + lo, T(0));
        if (w.stride_w == 1) {
          std::copy(src + lo + off_w, src + hi + off_w, dst + lo);
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * w.stride_w + off_w];
        }
        std::fill(dst + hi, dst + d.ow, T(0));
      }
    }
  });
}

// The adjoint of im2col: every column entry is added back to the input element it was read
// from. One task per (image, channel) plane, so no two tasks write the same element.
template <typename T>
void col2im(const WindowCall& w, const Dims& d, const T* col, T* x) {
  default_thread_pool().parallel_for(d.n * d.c, grain_for(d.kk * d.p), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / d.c, c = t % d.c;
      T* plane = x + t * d.h * d.w;
      std::fill(plane, plane + d.h * d.w, T(0));
      for (int64_t i = 0; i < d.kh; ++i) {
        for (int64_t j = 0; j < d.kw; ++j) {
          const T* src = col + ((c * d.kh + i) * d.kw + j) * d.np + n * d.p;
          const int64_t off_w = j * w.dilation_w - w.pad_w;
          const auto [lo, hi] = valid_range(d.ow, d.w, w.stride_w, off_w);
          for (int64_t oh = 0; oh < d.oh; ++oh, src += d.ow) {
            const int64_t h = oh * w.stride_h - w.pad_h + i * w.dilation_h;
            if (h < 0 || h >= d.h) continue;
            T* dst = plane + h * d.w;
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow * w.stride_w + off_w] += src[ow];
          }
        }
      }
    }
  });
}

// [N, O, P] <-> [O, N*P]: whole rows of P elements move, one task per (n, o).
template <typename T>
void batch_to_columns(const Dims& d, const T* src, T* dst) {
  default_thread_pool().parallel_for(d.n * d.o, grain_for(d.p), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / d.o, o = t % d.o;
      std::memcpy(dst + o * d.np + n * d.p, src + t * d.p, sizeof(T) * d.p);
    }
  });
}

template <typename T>
void columns_to_batch(const Dims& d, const T* src, T* dst) {
  default_thread_pool().parallel_for(d.n * d.o, grain_for(d.p), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / d.o, o = t % d.o;
      std::memcpy(dst + t * d.p, src + o * d.np + n * d.p, sizeof(T) * d.p);
    }
  });
}

// A scratch block of `count` T from the CPU pool.
template <typename T>
absl::StatusOr<base::BufferPtr> scratch(int64_t count) {
  return cpu_pool().allocate(static_cast<size_t>(count) * sizeof(T));
}

template <typename T>
absl::Status conv_forward(const WindowCall& w, const T* x, const T* weight, T* out) {
  const Dims d = dims_of(w);
  absl::StatusOr<base::BufferPtr> col = scratch<T>(d.rows * d.np);
  if (!col.ok()) return col.status();
  absl::StatusOr<base::BufferPtr> y = scratch<T>(d.o * d.np);
  if (!y.ok()) return y.status();
  T* cols = static_cast<T*>((*col)->data());
  T* ys = static_cast<T*>((*y)->data());
  im2col(w, d, x, cols);
  // y [O, N*P] = weight [O, C*KK] @ col [C*KK, N*P]
  if (absl::Status s =
          gemm(w.dtype, false, false, d.o, d.np, d.rows, weight, d.rows, cols, d.np, 0.0, ys, d.np);
      !s.ok()) {
    return s;
  }
  columns_to_batch(d, ys, out);
  return absl::OkStatus();
}

// The two backward convolutions' scratch: the output gradient moved to [O, N*P] (gs) and a
// columns matrix [C*KK, N*P] (cols). The buffers return to the pool when this goes away.
template <typename T>
struct GradScratch {
  base::BufferPtr g_buffer, col_buffer;
  T* gs = nullptr;
  T* cols = nullptr;
};

template <typename T>
absl::StatusOr<GradScratch<T>> grad_scratch(const Dims& d, const T* g) {
  GradScratch<T> s;
  absl::StatusOr<base::BufferPtr> gbuf = scratch<T>(d.o * d.np);
  if (!gbuf.ok()) return gbuf.status();
  absl::StatusOr<base::BufferPtr> col = scratch<T>(d.rows * d.np);
  if (!col.ok()) return col.status();
  s.g_buffer = *std::move(gbuf);
  s.col_buffer = *std::move(col);
  s.gs = static_cast<T*>(s.g_buffer->data());
  s.cols = static_cast<T*>(s.col_buffer->data());
  batch_to_columns(d, g, s.gs);
  return s;
}

template <typename T>
absl::Status conv_backward_input(const WindowCall& w, const T* g, const T* weight, T* out) {
  const Dims d = dims_of(w);
  absl::StatusOr<GradScratch<T>> scratch = grad_scratch<T>(d, g);
  if (!scratch.ok()) return scratch.status();
  T* gs = scratch->gs;
  T* cols = scratch->cols;
  // col [C*KK, N*P] = weight^T [C*KK, O] @ g [O, N*P]
  if (absl::Status s =
          gemm(w.dtype, true, false, d.rows, d.np, d.o, weight, d.rows, gs, d.np, 0.0, cols, d.np);
      !s.ok()) {
    return s;
  }
  col2im(w, d, cols, out);
  return absl::OkStatus();
}

template <typename T>
absl::Status conv_backward_weight(const WindowCall& w, const T* x, const T* g, T* out) {
  const Dims d = dims_of(w);
  absl::StatusOr<GradScratch<T>> scratch = grad_scratch<T>(d, g);
  if (!scratch.ok()) return scratch.status();
  T* gs = scratch->gs;
  T* cols = scratch->cols;
  im2col(w, d, x, cols);
  // out [O, C*KK] = g [O, N*P] @ col^T [N*P, C*KK]: the batch is summed inside the GEMM.
  return gemm(w.dtype, false, true, d.o, d.rows, d.np, gs, d.np, cols, d.np, 0.0, out, d.rows);
}

// PyTorch's CPU rule: a window's maximum starts at -inf (the lowest value for integers) pointing
// at its first in-bounds element, and moves to a later element when that is greater or NaN; so
// ties keep the first, and a NaN wins. Computed one output row at a time, tap by tap across the
// row, so the inner loop is branch-free over contiguous outputs (and vectorizes), instead of
// one window at a time.
template <typename T>
inline bool takes(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    return (v > best) | (v != v);  // no short circuit: one flag, no branch
  } else {
    return v > best;
  }
}

template <typename T>
T lowest() {
  if constexpr (std::is_floating_point_v<T>) {
    return -std::numeric_limits<T>::infinity();
  } else {
    return std::numeric_limits<T>::lowest();
  }
}

// Row oh of plane `x`: best[ow] (and, if `at` is not null, the argmax's offset in the plane).
template <typename T>
void pool_row(const WindowCall& w, const Dims& d, const T* x, int64_t oh, T* best, int64_t* at) {
  std::fill(best, best + d.ow, lowest<T>());
  if (at != nullptr) std::fill(at, at + d.ow, int64_t{-1});
  int64_t first_h = -1;
  for (int64_t i = 0; i < d.kh; ++i) {
    const int64_t h = oh * w.stride_h - w.pad_h + i * w.dilation_h;
    if (h < 0 || h >= d.h) continue;
    if (first_h < 0) first_h = h;
    const T* row = x + h * d.w;
    for (int64_t j = 0; j < d.kw; ++j) {
      const int64_t off = j * w.dilation_w - w.pad_w;
      const auto [lo, hi] = valid_range(d.ow, d.w, w.stride_w, off);
      const int64_t sw = w.stride_w;
      if (at == nullptr) {
        for (int64_t ow = lo; ow < hi; ++ow) {
          const T v = row[ow * sw + off];
          best[ow] = takes(v, best[ow]) ? v : best[ow];
        }
      } else {
        for (int64_t ow = lo; ow < hi; ++ow) {
          const T v = row[ow * sw + off];
          const bool take = takes(v, best[ow]);
          best[ow] = take ? v : best[ow];
          at[ow] = take ? h * d.w + ow * sw + off : at[ow];
        }
      }
    }
  }
  if (at == nullptr) return;
  // A window of nothing but -inf points at its first in-bounds element.
  for (int64_t ow = 0; ow < d.ow; ++ow) {
    if (at[ow] >= 0) continue;
    int64_t col = ow * w.stride_w - w.pad_w;
    while (col < 0) col += w.dilation_w;
    at[ow] = first_h * d.w + col;
  }
}

// The 2x2, stride 2, unpadded pool of nearly every CNN: windows do not overlap, so each output
// is 3 straight-line compares, and its gradient is written (not added) to all four inputs,
// without a separate zero fill. The order of the compares is the general rule's.
bool is_plain_2x2(const WindowCall& w) {
  return w.kernel_h == 2 && w.kernel_w == 2 && w.stride_h == 2 && w.stride_w == 2 && w.pad_h == 0 &&
         w.pad_w == 0 && w.dilation_h == 1 && w.dilation_w == 1;
}

// The argmax (0-3, row-major) of one 2x2 window and its value.
// `take ? a : b` through bit masks: compilers turn a float select into a branch here, and on real
// data each compare of a pooling window is a coin flip that a branch mispredicts.
template <typename T>
inline T select(bool take, T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    Bits ab, bb;
    std::memcpy(&ab, &a, sizeof(T));
    std::memcpy(&bb, &b, sizeof(T));
    const Bits mask = Bits{0} - static_cast<Bits>(take);
    const Bits r = (ab & mask) | (bb & ~mask);
    T out;
    std::memcpy(&out, &r, sizeof(T));
    return out;
  } else {
    return take ? a : b;
  }
}

template <typename T>
inline int argmax4(const T* __restrict r0, const T* __restrict r1, T& best) {
  T b = r0[0];
  int at = 0;
  const T v[3] = {r0[1], r1[0], r1[1]};
  for (int k = 0; k < 3; ++k) {
    const bool take = takes(v[k], b);
    b = select(take, v[k], b);
    at += static_cast<int>(take) * (k + 1 - at);
  }
  best = b;
  return at;
}

template <typename T>
void pool_plain_2x2(const Dims& d, const T* x, const T* g, T* out, int64_t b, int64_t e) {
  for (int64_t t = b; t < e; ++t) {
    const T* plane = x + t * d.h * d.w;
    T* dx = out + t * d.h * d.w;
    if (g != nullptr) {
      // Rows and a column past the last window (odd sizes) get no gradient.
      std::fill(dx + 2 * d.oh * d.w, dx + d.h * d.w, T(0));
    }
    for (int64_t oh = 0; oh < d.oh; ++oh) {
      const T* r0 = plane + 2 * oh * d.w;
      const T* r1 = r0 + d.w;
      if (g == nullptr) {
        T* y = out + t * d.p + oh * d.ow;
        for (int64_t ow = 0; ow < d.ow; ++ow) argmax4(r0 + 2 * ow, r1 + 2 * ow, y[ow]);
        continue;
      }
      const T* gp = g + t * d.p + oh * d.ow;
      T* d0 = dx + 2 * oh * d.w;
      T* d1 = d0 + d.w;
      for (int64_t ow = 0; ow < d.ow; ++ow) {
        T best;
        const int at = argmax4(r0 + 2 * ow, r1 + 2 * ow, best);
        d0[2 * ow] = select(at == 0, gp[ow], T(0));
        d0[2 * ow + 1] = select(at == 1, gp[ow], T(0));
        d1[2 * ow] = select(at == 2, gp[ow], T(0));
        d1[2 * ow + 1] = select(at == 3, gp[ow], T(0));
      }
      if (d.w > 2 * d.ow) {
        d0[d.w - 1] = T(0);
        d1[d.w - 1] = T(0);
      }
    }
  }
}

template <typename T>
absl::Status pool_forward(const WindowCall& w, const Dims& d, const T* x, T* out) {
  default_thread_pool().parallel_for(d.n * d.c, grain_for(d.p * d.kk), [&](int64_t b, int64_t e) {
    if (is_plain_2x2(w)) return pool_plain_2x2<T>(d, x, nullptr, out, b, e);
    for (int64_t t = b; t < e; ++t) {
      for (int64_t oh = 0; oh < d.oh; ++oh) {
        pool_row(w, d, x + t * d.h * d.w, oh, out + t * d.p + oh * d.ow, nullptr);
      }
    }
  });
  return absl::OkStatus();
}

template <typename T>
absl::Status pool_forward(const WindowCall& w, const T* x, T* out) {
  return pool_forward(w, dims_of(w), x, out);
}

template <typename T>
absl::Status pool_backward(const WindowCall& w, const T* x, const T* g, T* out) {
  const Dims d = dims_of(w);
  default_thread_pool().parallel_for(d.n * d.c, grain_for(d.p * d.kk), [&](int64_t b, int64_t e) {
    if (is_plain_2x2(w)) return pool_plain_2x2(d, x, g, out, b, e);
    std::vector<T> best(d.ow);
    std::vector<int64_t> at(d.ow);
    for (int64_t t = b; t < e; ++t) {
      T* dx = out + t * d.h * d.w;
      std::fill(dx, dx + d.h * d.w, T(0));
      for (int64_t oh = 0; oh < d.oh; ++oh) {
        pool_row(w, d, x + t * d.h * d.w, oh, best.data(), at.data());
        const T* gp = g + t * d.p + oh * d.ow;
        for (int64_t ow = 0; ow < d.ow; ++ow) dx[at[ow]] += gp[ow];
      }
    }
  });
  return absl::OkStatus();
}

template <typename T>
absl::Status run_typed(const WindowCall& w, const void* a, const void* b, void* out) {
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  T* to = static_cast<T*>(out);
  using Op = WindowCall::Op;
  switch (w.op) {
    case Op::kConv:
      return conv_forward(w, ta, tb, to);
    case Op::kConvBackwardInput:
      return conv_backward_input(w, ta, tb, to);
    case Op::kConvBackwardWeight:
      return conv_backward_weight(w, ta, tb, to);
    case Op::kPool:
      return pool_forward(w, ta, to);
    case Op::kPoolBackward:
      return pool_backward(w, ta, tb, to);
  }
  return absl::InternalError("conv: unknown window op");
}

}  // namespace

int64_t window_out_elements(const WindowCall& w) {
  using Op = WindowCall::Op;
  switch (w.op) {
    case Op::kConvBackwardInput:
    case Op::kPoolBackward:
      return w.batch * w.channels * w.in_h * w.in_w;
    case Op::kConvBackwardWeight:
      return w.out_channels * w.channels * w.kernel_h * w.kernel_w;
    default:
      return w.batch * w.out_channels * w.out_h * w.out_w;
  }
}

absl::Status run_window(const WindowCall& w, const void* a, const void* b, void* out) {
  // An empty batch (or no output): the sums are empty, so every output is zero.
  if (w.batch * w.out_channels * w.out_h * w.out_w == 0 || w.channels == 0) {
    std::memset(out, 0, static_cast<size_t>(window_out_elements(w)) * dtype_size(w.dtype));
    return absl::OkStatus();
  }
  const bool pool_forward_op = w.op == WindowCall::Op::kPool;
  switch (w.dtype) {
    case DType::Float32:
      return run_typed<float>(w, a, b, out);
    case DType::Float64:
      return run_typed<double>(w, a, b, out);
    case DType::Int32:
      if (pool_forward_op)
        return pool_forward(w, static_cast<const int32_t*>(a), static_cast<int32_t*>(out));
      break;
    case DType::Int64:
      if (pool_forward_op)
        return pool_forward(w, static_cast<const int64_t*>(a), static_cast<int64_t*>(out));
      break;
    case DType::Bool:
      break;
  }
  return absl::InternalError(absl::StrCat("conv: unsupported dtype ", dtype_name(w.dtype)));
}

}  // namespace smelt::runtime
