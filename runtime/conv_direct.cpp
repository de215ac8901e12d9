#include "runtime/conv_direct.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

// Why: the im2col path spends as much time around its GEMMs as in them (writing and packing a
// [C*KH*KW, N*P] columns matrix, moving [N, O, P] to [O, N*P], col2im, OpenBLAS zeroing C) and
// OpenBLAS reaches about half of this CPU's FMA peak on the GEMMs themselves (M = O = 64).
// Here each image's input is zero-padded once (a few tens of KB, in L1/L2) and register-blocked
// AVX-512 kernels read it in place: the 16 lanes of a vector are 16 output channels, so every
// (input channel, tap) of a block costs a few vector loads of packed weights, one broadcast per
// output position, and a full vector FMA per accumulator.
//
// All three convolutions are one of two kernels over a "plan": `cin` source planes of ih x iw,
// zero-padded by (ph, pw) into planes of hp x wp, and `cout` outputs at the oh x ow positions
// (hp - kh + 1) x (wp - kw + 1):
//   gather: out[o][y][x] = sum over rows r = (c, i, j) of wt[r][o] * padded[c][y + i][x + j]
//           (the forward convolution; the input gradient is the same with g as the source,
//           padded by kernel - 1 - padding, and the weight flipped and transposed);
//   reduce: dw[o][r] = sum over images and positions of g[o][y][x] * padded[c][y + i][x + j]
//           (the weight gradient).
// Both keep up to 24 accumulators (positions or rows x vectors of channels) in registers; the
// gather walks the weight rows in 16 KB chunks and the reduce the positions in 12 KB chunks, so
// the operand read by every block stays in L1. The kernels write [positions, channels]; 16 x 16
// register transposes move that to and from the NCHW planes.

constexpr int64_t kLanes = 16;
constexpr int kMaxVectors = 4;  // vectors of output channels per block

struct Plan {
  int64_t cin, cout, coutp;  // coutp: cout rounded up to whole vectors (zero-padded lanes)
  int64_t kh, kw, ih, iw, ph, pw, hp, wp, oh, ow;
  int64_t rows;   // cin * kh * kw
  int64_t plane;  // hp * wp
  int64_t p;      // oh * ow
  // off[r]: where row r = (c, i, j) starts in the padded planes; base[k]: where output position
  // k = (y, x) reads them (padded[c][y + i][x + j] = padded_data[off[r] + base[k]]).
  std::vector<int64_t> off, base;
};

Plan make_plan(int64_t cin, int64_t cout, int64_t kh, int64_t kw, int64_t ih, int64_t iw,
               int64_t ph, int64_t pw) {
  Plan q;
  q.cin = cin, q.cout = cout, q.coutp = (cout + kLanes - 1) / kLanes * kLanes;
  q.kh = kh, q.kw = kw, q.ih = ih, q.iw = iw, q.ph = ph, q.pw = pw;
  q.hp = ih + 2 * ph, q.wp = iw + 2 * pw;
  q.oh = q.hp - kh + 1, q.ow = q.wp - kw + 1;
  q.rows = cin * kh * kw;
  q.plane = q.hp * q.wp;
  q.p = q.oh * q.ow;
  q.off.resize(static_cast<size_t>(q.rows));
  for (int64_t r = 0; r < q.rows; ++r) {
    const int64_t c = r / (kh * kw), i = r % (kh * kw) / kw, j = r % kw;
    q.off[r] = c * q.plane + i * q.wp + j;
  }
  q.base.resize(static_cast<size_t>(q.p));
  for (int64_t k = 0; k < q.p; ++k) q.base[k] = k / q.ow * q.wp + k % q.ow;
  return q;
}

// One image's `cin` planes of ih x iw into the zero-padded planes of the plan.
void pad_planes(const Plan& q, const float* src, float* dst) {
  for (int64_t c = 0; c < q.cin; ++c) {
    const float* s = src + c * q.ih * q.iw;
    float* d = dst + c * q.plane;
    std::fill(d, d + q.ph * q.wp, 0.0f);
    d += q.ph * q.wp;
    for (int64_t y = 0; y < q.ih; ++y, d += q.wp, s += q.iw) {
      std::fill(d, d + q.pw, 0.0f);
      std::copy(s, s + q.iw, d + q.pw);
      std::fill(d + q.pw + q.iw, d + q.wp, 0.0f);
    }
    std::fill(d, d + q.ph * q.wp, 0.0f);
  }
}

// dst[c * ldd + i] = src[i * lds + c] for i, c < 16: a 16 x 16 block transposed in registers
// (4x4 transposes inside 128-bit lanes, then a 4x4 transpose of the lanes).
__attribute__((target("avx512f"))) void transpose16(const float* src, int64_t lds, float* dst,
                                                    int64_t ldd) {
  __m512 r[16], t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4 * g + j], lane l: column 4 * l + j of rows 4 * g .. 4 * g + 3.
  __m512 u[16];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
    _mm512_storeu_ps(dst + (0 + j) * ldd, _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (4 + j) * ldd, _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (12 + j) * ldd, _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

// dst[c][i] = src[i][c] for i < rows, c < cols (row strides lds, ldd): whole 16 x 16 blocks in
// registers, the edges element by element.
void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  const int64_t rows16 = rows / kLanes * kLanes, cols16 = cols / kLanes * kLanes;
  for (int64_t i = 0; i < rows16; i += kLanes) {
    for (int64_t c = 0; c < cols16; c += kLanes) {
      transpose16(src + i * lds + c, lds, dst + c * ldd + i, ldd);
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t c0 = i < rows16 ? cols16 : 0;
    for (int64_t c = c0; c < cols; ++c) dst[c * ldd + i] = src[i * lds + c];
  }
}

// out[o][k] = t[k][o] for o < cout: a [p, ld] block of positions back to channel planes.
void positions_to_planes(const float* t, int64_t p, int64_t cout, int64_t ld, float* out) {
  transpose(t, ld, p, cout, out, p);
}

// t[k][o] = g[o][k], and 0 for cout <= o < ld.
void planes_to_positions(const float* g, int64_t p, int64_t cout, int64_t ld, float* t) {
  if (cout < ld) {
    for (int64_t k = 0; k < p; ++k) std::fill(t + k * ld + cout, t + (k + 1) * ld, 0.0f);
  }
  transpose(g, p, cout, p, t, ld);
}

// MP output positions (reading x + base[m]) x NOV vectors of output channels, summed over all
// `rows` weight rows: out[m][v] = sum_r x[base[m] + off[r]] * wt[r][v] (added to out with
// `add`). The weight gradient runs the same block with the roles swapped: MR weight rows
// (x + off[m]) summed over an image's positions, dw[m][v] += sum_k x[off[m] + base[k]] * g[k][v].
template <int MP, int NOV>
__attribute__((target("avx512f"))) void gather_block(const float* x, const int64_t* base,
                                                     const int64_t* off, int64_t rows,
                                                     const float* wt, int64_t ldw, float* out,
                                                     int64_t ldo, bool add) {
  __m512 acc[MP][NOV];
  const float* xp[MP];
#pragma GCC unroll 16
  for (int m = 0; m < MP; ++m) {
    xp[m] = x + base[m];
#pragma GCC unroll 4
    for (int v = 0; v < NOV; ++v) acc[m][v] = _mm512_setzero_ps();
  }
  for (int64_t r = 0; r < rows; ++r, wt += ldw) {
    __m512 wv[NOV];
#pragma GCC unroll 4
    for (int v = 0; v < NOV; ++v) wv[v] = _mm512_loadu_ps(wt + v * kLanes);
    const int64_t o = off[r];
#pragma GCC unroll 16
    for (int m = 0; m < MP; ++m) {
      const __m512 xb = _mm512_set1_ps(xp[m][o]);
#pragma GCC unroll 4
      for (int v = 0; v < NOV; ++v) acc[m][v] = _mm512_fmadd_ps(xb, wv[v], acc[m][v]);
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < MP; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NOV; ++v) {
      float* o = out + m * ldo + v * kLanes;
      _mm512_storeu_ps(o, add ? _mm512_add_ps(_mm512_loadu_ps(o), acc[m][v]) : acc[m][v]);
    }
  }
}

// The gather block for two images at once, the second's padded planes `d` floats after the
// first's: the weight vectors are loaded once for both, and 2 x MP x NOV accumulators need only
// MP position pointers. For NOV <= 2, where a one-image block of 2 x MP positions would need
// more pointers than there are general registers (GCC parks them in vector registers, and
// moving them back costs FMA-port slots).
template <int MP, int NOV>
__attribute__((target("avx512f"))) void gather_pair_block(const float* x, int64_t d,
                                                          const int64_t* base, const int64_t* off,
                                                          int64_t rows, const float* wt,
                                                          int64_t ldw, float* out0, float* out1,
                                                          int64_t ldo, bool add) {
  __m512 acc[2][MP][NOV];
  const float* xp[MP];
#pragma GCC unroll 16
  for (int m = 0; m < MP; ++m) {
    xp[m] = x + base[m];
#pragma GCC unroll 4
    for (int v = 0; v < NOV; ++v) acc[0][m][v] = acc[1][m][v] = _mm512_setzero_ps();
  }
  for (int64_t r = 0; r < rows; ++r, wt += ldw) {
    __m512 wv[NOV];
#pragma GCC unroll 4
    for (int v = 0; v < NOV; ++v) wv[v] = _mm512_loadu_ps(wt + v * kLanes);
    const int64_t o0 = off[r], o1 = o0 + d;
#pragma GCC unroll 16
    for (int m = 0; m < MP; ++m) {
      const __m512 b0 = _mm512_set1_ps(xp[m][o0]);
      const __m512 b1 = _mm512_set1_ps(xp[m][o1]);
#pragma GCC unroll 4
      for (int v = 0; v < NOV; ++v) {
        acc[0][m][v] = _mm512_fmadd_ps(b0, wv[v], acc[0][m][v]);
        acc[1][m][v] = _mm512_fmadd_ps(b1, wv[v], acc[1][m][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < MP; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NOV; ++v) {
      float* p0 = out0 + m * ldo + v * kLanes;
      float* p1 = out1 + m * ldo + v * kLanes;
      _mm512_storeu_ps(p0, add ? _mm512_add_ps(_mm512_loadu_ps(p0), acc[0][m][v]) : acc[0][m][v]);
      _mm512_storeu_ps(p1, add ? _mm512_add_ps(_mm512_loadu_ps(p1), acc[1][m][v]) : acc[1][m][v]);
    }
  }
}

// The kernels by block size: kGather[NOV - 1][MP - 1] (the forward, input-gradient and weight-
// gradient blocks alike). A block keeps MP x NOV accumulators in registers; kBlock[NOV - 1]
// positions (rows) make 24 of them at most (16 for one vector, where every position's broadcast
// also needs its own pointer).
using GatherFn = void (*)(const float*, const int64_t*, const int64_t*, int64_t, const float*,
                          int64_t, float*, int64_t, bool);

constexpr int kBlock[kMaxVectors] = {16, 12, 8, 6};
constexpr int kMaxBlock = 16;

template <int NOV, int... M>
constexpr std::array<GatherFn, kMaxBlock> gather_fns(std::integer_sequence<int, M...>) {
  return {&gather_block<M + 1, NOV>...};
}
template <int NOV>
constexpr auto kBlockSeq = std::make_integer_sequence<int, kBlock[NOV - 1]>();

constexpr std::array<std::array<GatherFn, kMaxBlock>, kMaxVectors> kGather = {
    gather_fns<1>(kBlockSeq<1>), gather_fns<2>(kBlockSeq<2>), gather_fns<3>(kBlockSeq<3>),
    gather_fns<4>(kBlockSeq<4>)};

using GatherPairFn = void (*)(const float*, int64_t, const int64_t*, const int64_t*, int64_t,
                              const float*, int64_t, float*, float*, int64_t, bool);
constexpr int kMaxPairVectors = 2;
constexpr int kPairBlock[kMaxPairVectors] = {8, 6};  // 16 and 24 accumulators
constexpr int kMaxPairBlock = 8;

template <int NOV, int... M>
constexpr std::array<GatherPairFn, kMaxPairBlock> gather_pair_fns(
    std::integer_sequence<int, M...>) {
  return {&gather_pair_block<M + 1, NOV>...};
}
constexpr std::array<std::array<GatherPairFn, kMaxPairBlock>, kMaxPairVectors> kGatherPair = {
    gather_pair_fns<1>(std::make_integer_sequence<int, kPairBlock[0]>()),
    gather_pair_fns<2>(std::make_integer_sequence<int, kPairBlock[1]>())};

int vectors_at(const Plan& q, int64_t o0) {
  return static_cast<int>(std::min<int64_t>(kMaxVectors, (q.coutp - o0) / kLanes));
}

// The gather form over a batch: images split over the threads, each padded into its own
// buffer; `wt` is [rows, coutp].
void run_gather(const Plan& q, int64_t batch, const float* src, const float* wt, float* dst) {
  const int64_t image = q.cin * q.plane, out_image = q.p * q.coutp;
  default_thread_pool().parallel_for(batch, 2, [&](int64_t b, int64_t e) {
    std::vector<float> padded(static_cast<size_t>(2 * image));
    std::vector<float> positions(static_cast<size_t>(2 * out_image));
    for (int64_t n = b; n < e;) {
      const int64_t count = n + 1 < e ? 2 : 1;
      for (int64_t i = 0; i < count; ++i) {
        pad_planes(q, src + (n + i) * q.cin * q.ih * q.iw, padded.data() + i * image);
      }
      for (int64_t o0 = 0; o0 < q.coutp; o0 += kMaxVectors * kLanes) {
        const int nov = vectors_at(q, o0);
        // Rows in chunks whose packed weights stay in L1 (16 KB) across the positions.
        const int64_t chunk = std::max<int64_t>(1, 16384 / (nov * kLanes * 4));
        for (int64_t r0 = 0; r0 < q.rows; r0 += chunk) {
          const int64_t rc = std::min(chunk, q.rows - r0);
          const float* w0 = wt + r0 * q.coutp + o0;
          if (count == 2 && nov <= kMaxPairVectors) {
            for (int64_t k0 = 0; k0 < q.p; k0 += kPairBlock[nov - 1]) {
              const int64_t mp = std::min<int64_t>(kPairBlock[nov - 1], q.p - k0);
              float* out0 = positions.data() + k0 * q.coutp + o0;
              kGatherPair[nov - 1][mp - 1](padded.data(), image, q.base.data() + k0,
                                           q.off.data() + r0, rc, w0, q.coutp, out0,
                                           out0 + out_image, q.coutp, r0 > 0);
            }
            continue;
          }
          for (int64_t i = 0; i < count; ++i) {
            for (int64_t k0 = 0; k0 < q.p; k0 += kBlock[nov - 1]) {
              const int64_t mp = std::min<int64_t>(kBlock[nov - 1], q.p - k0);
              kGather[nov - 1][mp - 1](
                  padded.data() + i * image, q.base.data() + k0, q.off.data() + r0, rc, w0, q.coutp,
                  positions.data() + i * out_image + k0 * q.coutp + o0, q.coutp, r0 > 0);
            }
          }
        }
      }
      for (int64_t i = 0; i < count; ++i) {
        positions_to_planes(positions.data() + i * out_image, q.p, q.cout, q.coutp,
                            dst + (n + i) * q.cout * q.p);
      }
      n += count;
    }
  });
}

Plan forward_plan(const WindowCall& w) {
  return make_plan(w.channels, w.out_channels, w.kernel_h, w.kernel_w, w.in_h, w.in_w, w.pad_h,
                   w.pad_w);
}

// The input gradient's plan: g's O planes of OH x OW padded by kernel - 1 - padding, whose
// "valid" positions are the input's H x W.
Plan backward_input_plan(const WindowCall& w) {
  return make_plan(w.out_channels, w.channels, w.kernel_h, w.kernel_w, w.out_h, w.out_w,
                   w.kernel_h - 1 - w.pad_h, w.kernel_w - 1 - w.pad_w);
}

void forward(const WindowCall& w, const float* x, const float* weight, float* out) {
  const Plan q = forward_plan(w);
  // wt[r][o] = weight[o][r]
  std::vector<float> wt(static_cast<size_t>(q.rows * q.coutp), 0.0f);
  for (int64_t o = 0; o < q.cout; ++o) {
    for (int64_t r = 0; r < q.rows; ++r) wt[r * q.coutp + o] = weight[o * q.rows + r];
  }
  run_gather(q, w.batch, x, wt.data(), out);
}

void backward_input(const WindowCall& w, const float* g, const float* weight, float* out) {
  const Plan q = backward_input_plan(w);
  const int64_t kh = w.kernel_h, kw = w.kernel_w, c_in = w.channels;
  // Row (o, i, j) of the flipped kernel, lane c: weight[o][c][kh - 1 - i][kw - 1 - j].
  std::vector<float> wt(static_cast<size_t>(q.rows * q.coutp), 0.0f);
  for (int64_t o = 0; o < q.cin; ++o) {
    for (int64_t c = 0; c < c_in; ++c) {
      const float* k = weight + (o * c_in + c) * kh * kw;
      for (int64_t i = 0; i < kh; ++i) {
        for (int64_t j = 0; j < kw; ++j) {
          wt[((o * kh + i) * kw + j) * q.coutp + c] = k[(kh - 1 - i) * kw + (kw - 1 - j)];
        }
      }
    }
  }
  run_gather(q, w.batch, g, wt.data(), out);
}

// The batch is cut into one range of images per thread, each summed into its own [rows, coutp]
// partial; the partials are added in range order, so the result does not depend on which thread
// ran which range.
void backward_weight(const WindowCall& w, const float* x, const float* g, float* out) {
  const Plan q = forward_plan(w);
  const int64_t parts = std::min<int64_t>(w.batch, default_thread_pool().num_threads());
  const int64_t size = q.rows * q.coutp;
  std::vector<float> partial(static_cast<size_t>(parts * size), 0.0f);
  default_thread_pool().parallel_for(parts, 1, [&](int64_t b, int64_t e) {
    std::vector<float> padded(static_cast<size_t>(q.cin * q.plane));
    std::vector<float> positions(static_cast<size_t>(q.p * q.coutp));
    for (int64_t part = b; part < e; ++part) {
      float* dw = partial.data() + part * size;
      for (int64_t n = part * w.batch / parts; n < (part + 1) * w.batch / parts; ++n) {
        pad_planes(q, x + n * q.cin * q.ih * q.iw, padded.data());
        planes_to_positions(g + n * q.cout * q.p, q.p, q.cout, q.coutp, positions.data());
        for (int64_t o0 = 0; o0 < q.coutp; o0 += kMaxVectors * kLanes) {
          const int nov = vectors_at(q, o0);
          // Positions in chunks whose gradient rows stay in L1 (12 KB) across the weight rows.
          const int64_t chunk = std::max<int64_t>(1, 12288 / (nov * kLanes * 4));
          for (int64_t k0 = 0; k0 < q.p; k0 += chunk) {
            const int64_t kc = std::min(chunk, q.p - k0);
            for (int64_t r0 = 0; r0 < q.rows; r0 += kBlock[nov - 1]) {
              const int64_t mr = std::min<int64_t>(kBlock[nov - 1], q.rows - r0);
              kGather[nov - 1][mr - 1](padded.data(), q.off.data() + r0, q.base.data() + k0, kc,
                                       positions.data() + k0 * q.coutp + o0, q.coutp,
                                       dw + r0 * q.coutp + o0, q.coutp, /*add=*/true);
            }
          }
        }
      }
    }
  });
  for (int64_t o = 0; o < q.cout; ++o) {
    for (int64_t r = 0; r < q.rows; ++r) {
      float s = partial[r * q.coutp + o];
      for (int64_t part = 1; part < parts; ++part) s += partial[part * size + r * q.coutp + o];
      out[o * q.rows + r] = s;
    }
  }
}

bool has_avx512f() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return yes;
}

}  // namespace

bool direct_conv_applies(const WindowCall& w) {
  using Op = WindowCall::Op;
  if (w.op != Op::kConv && w.op != Op::kConvBackwardInput && w.op != Op::kConvBackwardWeight) {
    return false;
  }
  if (w.dtype != DType::Float32 || w.stride_h != 1 || w.stride_w != 1 || w.dilation_h != 1 ||
      w.dilation_w != 1) {
    return false;
  }
  if (w.pad_h < 0 || w.pad_w < 0 || w.pad_h > w.kernel_h - 1 || w.pad_w > w.kernel_w - 1) {
    return false;
  }
  // The geometry every plan assumes (stride 1: OH = H + 2 * pad_h - KH + 1).
  if (w.out_h != w.in_h + 2 * w.pad_h - w.kernel_h + 1 ||
      w.out_w != w.in_w + 2 * w.pad_w - w.kernel_w + 1 || w.out_h <= 0 || w.out_w <= 0) {
    return false;
  }
  if (w.batch < default_thread_pool().num_threads()) return false;
  // Below this many multiply-adds per image (a first layer: C = 1, K = 9) the [P, O] <-> [O, P]
  // transposes cost more than the product, and runtime/conv.cpp's image-by-image GEMMs win.
  if (w.out_channels * w.out_h * w.out_w * w.channels * w.kernel_h * w.kernel_w <= 262144) {
    return false;
  }
  return has_avx512f();
}

absl::Status run_direct_conv(const WindowCall& w, const float* a, const float* b, float* out) {
  using Op = WindowCall::Op;
  switch (w.op) {
    case Op::kConv:
      forward(w, a, b, out);
      return absl::OkStatus();
    case Op::kConvBackwardInput:
      backward_input(w, a, b, out);
      return absl::OkStatus();
    case Op::kConvBackwardWeight:
      backward_weight(w, a, b, out);
      return absl::OkStatus();
    default:
      return absl::InternalError("direct conv: not a convolution");
  }
}

}  // namespace smelt::runtime
