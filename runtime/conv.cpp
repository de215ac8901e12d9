#include "runtime/conv.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/blas.h"
#include "runtime/conv_direct.h"
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

// n elements zeroed in 16-byte pieces. im2col's flat path below zeroes one or two elements per
// row; GCC turns a plain loop (or std::fill) into a memset call, which costs more than that, and
// the empty asm hides the loop's pattern from it.
template <typename T>
inline void zero_short(T* dst, int64_t n) {
  constexpr int64_t kPiece = 16 / sizeof(T);
  alignas(16) static constexpr T kZeros[kPiece] = {};
  int64_t k = 0;
  for (; k + kPiece <= n; k += kPiece) {
    asm("" : "+r"(k));
    std::memcpy(dst + k, kZeros, 16);
  }
  for (; k < n; ++k) {
    asm("" : "+r"(k));
    dst[k] = T(0);
  }
}

// "Same" stride-1 convolutions (stride 1, OW == W, e.g. 3x3 with padding 1): each tap reads or
// writes the input plane shifted by one flat offset, so im2col and col2im handle a tap's valid
// output rows as one run of up to P elements instead of OH runs of OW (14-28 elements in a small
// CNN, where the per-row overhead dominated: im2col + its memmove calls were ~10 % of the CNN
// step, col2im ~8 %).
bool flat_case(const WindowCall& w, const Dims& d) {
  return w.stride_h == 1 && w.stride_w == 1 && d.ow == d.w;
}

// One row of a columns matrix: dst[ow] = src[ow * sw + off] for ow in [lo, hi), 0 elsewhere
// in [0, n).
template <typename T>
inline void gather_row(const T* __restrict src, T* __restrict dst, int64_t n, int64_t lo,
                       int64_t hi, int64_t sw, int64_t off) {
  std::fill(dst, dst + lo, T(0));
  if (sw == 1) {
    std::copy(src + lo + off, src + hi + off, dst + lo);
  } else {
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * sw + off];
  }
  std::fill(dst + hi, dst + n, T(0));
}

// The adjoint of gather_row: dst[ow * sw + off] += src[ow] for ow in [lo, hi).
template <typename T>
inline void scatter_add_row(const T* __restrict src, T* __restrict dst, int64_t lo, int64_t hi,
                            int64_t sw, int64_t off) {
  if (sw == 1) {
    T* d = dst + off;
    for (int64_t ow = lo; ow < hi; ++ow) d[ow] += src[ow];
  } else {
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw + off] += src[ow];
  }
}

// Row r = (c, i, j) of image n's columns: the P values of input plane `plane` (channel c)
// seen through tap (i, j), written to dst[0, P).
template <typename T>
void im2col_row(const WindowCall& w, const Dims& d, const T* plane, int64_t r, T* dst) {
  const int64_t i = r % d.kk / d.kw, j = r % d.kk % d.kw;
  const int64_t off_h = i * w.dilation_h - w.pad_h, off_w = j * w.dilation_w - w.pad_w;
  const auto [lo, hi] = valid_range(d.ow, d.w, w.stride_w, off_w);
  if (flat_case(w, d)) {
    // One copy from the tap's first valid element to its last (every index between lies inside
    // the plane); then the columns outside [lo, hi) of each row, which the copy filled with the
    // neighbouring row's values, are zeroed.
    const auto [oh_lo, oh_hi] = valid_range(d.oh, d.h, 1, off_h);
    zero_short(dst, oh_lo * d.ow);
    zero_short(dst + oh_hi * d.ow, (d.oh - oh_hi) * d.ow);
    if (oh_lo >= oh_hi || lo >= hi) {
      zero_short(dst + oh_lo * d.ow, (oh_hi - oh_lo) * d.ow);
      return;
    }
    const int64_t first = oh_lo * d.ow + lo, last = (oh_hi - 1) * d.ow + hi;
    std::memcpy(dst + first, plane + first + off_h * d.w + off_w, sizeof(T) * (last - first));
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
      zero_short(dst + oh * d.ow, lo);
      zero_short(dst + oh * d.ow + hi, d.ow - hi);
    }
    return;
  }
  for (int64_t oh = 0; oh < d.oh; ++oh, dst += d.ow) {
    const int64_t h = oh * w.stride_h + off_h;
    if (h < 0 || h >= d.h) {
      zero_short(dst, d.ow);
      continue;
    }
    gather_row(plane + h * d.w, dst, d.ow, lo, hi, w.stride_w, off_w);
  }
}

template <typename T>
void im2col(const WindowCall& w, const Dims& d, const T* x, T* col) {
  default_thread_pool().parallel_for(d.rows * d.n, grain_for(d.p), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t r = t / d.n, n = t % d.n;
      im2col_row(w, d, x + (n * d.c + r / d.kk) * d.h * d.w, r, col + r * d.np + n * d.p);
    }
  });
}

// In the flat case col2im adds a tap's columns to the plane as one shifted run, skipping the
// entries whose column falls outside the input: keep[j * P + q] is all ones where column q % OW
// of tap column j is inside, else zero, and the add goes through that mask (bitwise, so an Inf
// or NaN in a skipped entry cannot leak in; a skipped entry adds +0, which leaves every sum as
// the row-by-row loop made it, the plane starting at +0).
template <typename T>
using BitsOf = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T>
std::vector<BitsOf<T>> flat_masks(const WindowCall& w, const Dims& d) {
  std::vector<BitsOf<T>> keep;
  if (!flat_case(w, d)) return keep;
  keep.resize(static_cast<size_t>(d.kw * d.p));
  for (int64_t j = 0; j < d.kw; ++j) {
    const auto [lo, hi] = valid_range(d.ow, d.w, 1, j * w.dilation_w - w.pad_w);
    for (int64_t q = 0; q < d.p; ++q) {
      const int64_t col = q % d.ow;
      keep[j * d.p + q] = col >= lo && col < hi ? ~BitsOf<T>{0} : BitsOf<T>{0};
    }
  }
  return keep;
}

template <typename T>
inline void masked_add(const T* __restrict src, const BitsOf<T>* __restrict keep, T* __restrict dst,
                       int64_t n) {
  for (int64_t q = 0; q < n; ++q) {
    dst[q] += std::bit_cast<T>(std::bit_cast<BitsOf<T>>(src[q]) & keep[q]);
  }
}

// Plane c of one image from its columns (`col` points at the image's first column of row 0,
// rows `ld` apart): zeroed, then every column entry of the channel's KH*KW rows added back.
// `keep` is flat_masks' result (empty outside the flat case).
template <typename T>
void col2im_plane(const WindowCall& w, const Dims& d, const T* col, int64_t ld, int64_t c,
                  const std::vector<BitsOf<T>>& keep, T* plane) {
  std::fill(plane, plane + d.h * d.w, T(0));
  for (int64_t i = 0; i < d.kh; ++i) {
    for (int64_t j = 0; j < d.kw; ++j) {
      const T* src = col + ((c * d.kh + i) * d.kw + j) * ld;
      const int64_t off_h = i * w.dilation_h - w.pad_h, off_w = j * w.dilation_w - w.pad_w;
      const auto [lo, hi] = valid_range(d.ow, d.w, w.stride_w, off_w);
      if (!keep.empty()) {
        const auto [oh_lo, oh_hi] = valid_range(d.oh, d.h, 1, off_h);
        if (oh_lo >= oh_hi || lo >= hi) continue;
        const int64_t first = oh_lo * d.ow + lo, last = (oh_hi - 1) * d.ow + hi;
        masked_add(src + first, keep.data() + j * d.p + first, plane + first + off_h * d.w + off_w,
                   last - first);
        continue;
      }
      for (int64_t oh = 0; oh < d.oh; ++oh, src += d.ow) {
        const int64_t h = oh * w.stride_h + off_h;
        if (h < 0 || h >= d.h) continue;
        scatter_add_row(src, plane + h * d.w, lo, hi, w.stride_w, off_w);
      }
    }
  }
}

// The adjoint of im2col: every column entry is added back to the input element it was read
// from. One task per (image, channel) plane, so no two tasks write the same element.
template <typename T>
void col2im(const WindowCall& w, const Dims& d, const T* col, T* x) {
  const std::vector<BitsOf<T>> keep = flat_masks<T>(w, d);
  default_thread_pool().parallel_for(d.n * d.c, grain_for(d.kk * d.p), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / d.c, c = t % d.c;
      col2im_plane(w, d, col + n * d.p, d.np, c, keep, x + t * d.h * d.w);
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

// ---- Small convolutions: one image at a time --------------------------------------------------
//
// When one image's product (O x P x C*KK multiply-adds) is at most OpenBLAS's threading
// threshold (65536 * GEMM_MULTITHREAD_THRESHOLD = 262144 in its default build), OpenBLAS runs it
// on the calling thread, so the images can go to smelt's threads, each with its own cache-sized
// columns: im2col of image n, then a GEMM that reads the NCHW operands and writes the NCHW
// result in place. This skips the batch-wide columns matrix, the [N, O, P] <-> [O, N*P] moves
// and OpenBLAS's zeroing of a batch-wide C. The first layer of a small CNN (C = 1: a 3x3 conv is
// a K = 9 product over N*P = 50176 columns) is such a convolution; wider layers keep the batched
// GEMM, whose threads per-image GEMMs could not use (measured: bench/RESULTS.md).
constexpr int64_t kPerImageMaxMacs = 262144;

bool per_image(const Dims& d) { return d.o * d.p * d.rows <= kPerImageMaxMacs; }

// The first failure of a set of tasks (each GEMM returns a status; they fail together only if
// OpenBLAS is missing, but no error is dropped).
class FirstError {
 public:
  void note(absl::Status s) {
    if (s.ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok()) status_ = std::move(s);
  }
  absl::Status take() { return std::move(status_); }

 private:
  std::mutex mu_;
  absl::Status status_;
};

// Image n's columns [C*KK, P] into `col`.
template <typename T>
void im2col_image(const WindowCall& w, const Dims& d, const T* x, int64_t n, T* col) {
  const T* image = x + n * d.c * d.h * d.w;
  for (int64_t r = 0; r < d.rows; ++r) {
    im2col_row(w, d, image + r / d.kk * d.h * d.w, r, col + r * d.p);
  }
}

// Calls fn(part, begin, end, col) for `parts` contiguous ranges of the batch, in parallel, each
// with its own [C*KK, P] columns buffer.
template <typename T, typename F>
absl::Status for_image_ranges(const Dims& d, int64_t parts, F&& fn) {
  FirstError error;
  default_thread_pool().parallel_for(parts, 1, [&](int64_t b, int64_t e) {
    std::vector<T> col(static_cast<size_t>(d.rows * d.p));
    for (int64_t part = b; part < e; ++part) {
      error.note(fn(part, part * d.n / parts, (part + 1) * d.n / parts, col.data()));
    }
  });
  return error.take();
}

int64_t image_parts(const Dims& d) {
  return std::min<int64_t>(d.n, default_thread_pool().num_threads());
}

template <typename T>
absl::Status conv_forward_per_image(const WindowCall& w, const Dims& d, const T* x, const T* weight,
                                    T* out) {
  return for_image_ranges<T>(d, d.n, [&](int64_t, int64_t b, int64_t e, T* col) {
    for (int64_t n = b; n < e; ++n) {
      im2col_image(w, d, x, n, col);
      // out[n] [O, P] = weight [O, C*KK] @ col [C*KK, P]
      if (absl::Status s = gemm(w.dtype, false, false, d.o, d.p, d.rows, weight, d.rows, col, d.p,
                                0.0, out + n * d.o * d.p, d.p);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  });
}

template <typename T>
absl::Status conv_backward_input_per_image(const WindowCall& w, const Dims& d, const T* g,
                                           const T* weight, T* out) {
  const std::vector<BitsOf<T>> keep = flat_masks<T>(w, d);
  return for_image_ranges<T>(d, d.n, [&](int64_t, int64_t b, int64_t e, T* col) {
    for (int64_t n = b; n < e; ++n) {
      // col [C*KK, P] = weight^T [C*KK, O] @ g[n] [O, P]
      if (absl::Status s = gemm(w.dtype, true, false, d.rows, d.p, d.o, weight, d.rows,
                                g + n * d.o * d.p, d.p, 0.0, col, d.p);
          !s.ok()) {
        return s;
      }
      for (int64_t c = 0; c < d.c; ++c) {
        col2im_plane(w, d, col, d.p, c, keep, out + (n * d.c + c) * d.h * d.w);
      }
    }
    return absl::OkStatus();
  });
}

// The batch is summed in `parts` partial weight gradients (part 0 in `out`), added up at the
// end in part order, so the result does not depend on which thread ran which part.
template <typename T>
absl::Status conv_backward_weight_per_image(const WindowCall& w, const Dims& d, const T* x,
                                            const T* g, T* out) {
  const int64_t parts = image_parts(d);
  const int64_t size = d.o * d.rows;
  std::vector<T> partial(static_cast<size_t>((parts - 1) * size));
  absl::Status status =
      for_image_ranges<T>(d, parts, [&](int64_t part, int64_t b, int64_t e, T* col) {
        T* acc = part == 0 ? out : partial.data() + (part - 1) * size;
        for (int64_t n = b; n < e; ++n) {
          im2col_image(w, d, x, n, col);
          // acc [O, C*KK] (+)= g[n] [O, P] @ col^T [P, C*KK]
          if (absl::Status s = gemm(w.dtype, false, true, d.o, d.rows, d.p, g + n * d.o * d.p, d.p,
                                    col, d.p, n == b ? 0.0 : 1.0, acc, d.rows);
              !s.ok()) {
            return s;
          }
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  for (int64_t part = 1; part < parts; ++part) {
    const T* src = partial.data() + (part - 1) * size;
    for (int64_t k = 0; k < size; ++k) out[k] += src[k];
  }
  return absl::OkStatus();
}

// ---- Larger convolutions: one GEMM over the batch -----------------------------------------------

template <typename T>
absl::Status conv_forward(const WindowCall& w, const T* x, const T* weight, T* out) {
  const Dims d = dims_of(w);
  if (per_image(d)) return conv_forward_per_image(w, d, x, weight, out);
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
  if (per_image(d)) return conv_backward_input_per_image(w, d, g, weight, out);
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
  if (per_image(d)) return conv_backward_weight_per_image(w, d, x, g, out);
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

// One output row of the 2x2 backward: the gradient goes to the argmax of each window (the
// general rule's order: a = r0[2k] starts, then r0[2k+1], r1[2k], r1[2k+1] replace it when
// greater or NaN), every other input gets +0. All selects are bit masks, so GCC vectorizes the
// loop (a scalar loop with argmax4's integer argmax was ~6 % of the CNN step).
template <typename T>
void pool_2x2_backward_row(const T* __restrict r0, const T* __restrict r1, const T* __restrict gp,
                           T* __restrict d0, T* __restrict d1, int64_t ow) {
  using B = BitsOf<T>;
  const auto bits = [](T v) { return std::bit_cast<B>(v); };
  const auto value = [](B b) { return std::bit_cast<T>(b); };
  const auto mask = [](bool c) { return B{0} - static_cast<B>(c); };
  for (int64_t k = 0; k < ow; ++k) {
    const T a = r0[2 * k], b = r0[2 * k + 1], c = r1[2 * k], e = r1[2 * k + 1];
    const B tb = mask((b > a) | (b != b));
    const T m1 = value((bits(b) & tb) | (bits(a) & ~tb));
    const B tc = mask((c > m1) | (c != c));
    const T m2 = value((bits(c) & tc) | (bits(m1) & ~tc));
    const B te = mask((e > m2) | (e != e));
    const B g = bits(gp[k]);
    d1[2 * k + 1] = value(g & te);
    d1[2 * k] = value(g & ~te & tc);
    d0[2 * k + 1] = value(g & ~te & ~tc & tb);
    d0[2 * k] = value(g & ~te & ~tc & ~tb);
  }
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
      T* d0 = dx + 2 * oh * d.w;
      pool_2x2_backward_row(r0, r1, g + t * d.p + oh * d.ow, d0, d0 + d.w, d.ow);
      T* d1 = d0 + d.w;
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
      if (direct_conv_applies(w)) {
        return run_direct_conv(w, static_cast<const float*>(a), static_cast<const float*>(b),
                               static_cast<float*>(out));
      }
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
