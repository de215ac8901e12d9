// Hand-written [4096, 1024] float row softmax in AVX-512 intrinsics, in the row kernel's shape
// (max sweep with a NaN flag, exp sweep parking e^(x - max) in the output, scaling sweep), with
// variants of its exp, its division and its prefetching: the probe behind bench/RESULTS.md
// "Softmax, session 6". Not part of the build:
//   g++ -O2 -march=native -fopenmp bench/probes/softmax_rows.cpp -o /tmp/softmax_rows
//   OMP_WAIT_POLICY=passive /tmp/softmax_rows <threads>
// Prints min / 25th percentile / median of 60 timed calls per variant, the variants interleaved.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
constexpr int R = 4096, C = 1024;
// E: 0 = session 5's exp (1 + r + r^2 P(r), eight operations), 1 = degree-6 Horner (six fmas,
// same accuracy), 2 = degree-5 Horner (3.3 ulp) with one-step scaling (subnormal results flushed)
template <int E>
static inline __m512 ex(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(E == 2 ? -88.f : -104.f));
  const __m512 shift = _mm512_set1_ps(0x1.8p23f);
  __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), shift);
  __m512 n = _mm512_sub_ps(t, shift);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e43p-1f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-0x1.05c61p-29f), r);
  __m512 p;
  if (E == 0) {
    p = _mm512_set1_ps(0.00019890980911441147f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0013933641603216529f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00833331048488617f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.04166646674275398f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.1666666716337204f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(r, r), p, r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.f));
  } else if (E == 1) {
    p = _mm512_set1_ps(0x1.6d4316p-10f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0x1.123d82p-7f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0x1.5554eap-5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0x1.55547cp-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  } else {
    p = _mm512_set1_ps(8.363173075e-03f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.187564445e-02f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666657703e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.999937214e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    __m512i e = _mm512_add_epi32(_mm512_slli_epi32(_mm512_castps_si512(t), 23),
                                 _mm512_set1_epi32(127 << 23));
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
  __m512i e = _mm512_add_epi32(_mm512_slli_epi32(_mm512_castps_si512(t), 23),
                               _mm512_set1_epi32((127 + 64) << 23));
  return _mm512_mul_ps(_mm512_mul_ps(p, _mm512_castsi512_ps(e)), _mm512_set1_ps(0x1p-64f));
}
float *X, *Y;
// D: 0 = reciprocal + Markstein fma step + zero-sign select, 1 = without the select, 2 = plain
// reciprocal multiply. P: 0 = no prefetch, 1 = last sweep prefetches 2 rows ahead, 2 = exp sweep
// prefetches the next row (its sum then reduced per 64-float chunk, as a vectorized chunk would),
// k >= 3 = last sweep prefetches k - 1 rows ahead.
template <int E, int D, int P>
void row(const float* x, float* y) {
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
  __mmask16 nan = 0;
  for (int j = 0; j < C; j += 64) {
    __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16),
           c = _mm512_loadu_ps(x + j + 32), d = _mm512_loadu_ps(x + j + 48);
    m0 = _mm512_max_ps(m0, a);
    m1 = _mm512_max_ps(m1, b);
    m2 = _mm512_max_ps(m2, c);
    m3 = _mm512_max_ps(m3, d);
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q) |
           _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
  }
  float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
  if (nan) m = NAN;
  __m512 mv = _mm512_set1_ps(m);
  float sum = 0;
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (int j = 0; j < C; j += 64) {
    if (P == 2)
      for (int u = 0; u < 4; ++u) _mm_prefetch((const char*)(x + C + j + 16 * u), _MM_HINT_T0);
    __m512 v[4];
    for (int u = 0; u < 4; ++u) {
      v[u] = ex<E>(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16 * u), mv));
      _mm512_storeu_ps(y + j + 16 * u, v[u]);
    }
    s0 = _mm512_add_ps(s0, v[0]);
    s1 = _mm512_add_ps(s1, v[1]);
    s2 = _mm512_add_ps(s2, v[2]);
    s3 = _mm512_add_ps(s3, v[3]);
    if (P == 2) {
      sum += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
      s0 = s1 = s2 = s3 = _mm512_setzero_ps();
    }
  }
  sum += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  __m512 r = _mm512_set1_ps(1.f / sum), s = _mm512_set1_ps(sum), z = _mm512_setzero_ps();
  for (int j = 0; j < C; j += 16) {
    if (P != 0 && P != 2 && (j % 64) == 0)
      for (int u = 0; u < 4; ++u)
        _mm_prefetch((const char*)(x + (P == 1 ? 2 : P - 1) * C + j + 16 * u), _MM_HINT_T0);
    __m512 a = _mm512_loadu_ps(y + j);
    __m512 q = _mm512_mul_ps(a, r);
    if (D < 2) {
      __m512 e = _mm512_fnmadd_ps(q, s, a);
      __m512 q2 = _mm512_fmadd_ps(e, r, q);
      q = D == 0 ? _mm512_mask_mov_ps(q2, _mm512_cmp_ps_mask(q2, z, _CMP_EQ_UQ), q) : q2;
    }
    _mm512_storeu_ps(y + j, q);
  }
}
template <int E, int D, int P>
double run(int threads) {
  auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int lo = R * t / nt, hi = R * (t + 1) / nt;
    for (int i = lo; i < hi; ++i) row<E, D, P>(X + (size_t)i * C, Y + (size_t)i * C);
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
int main(int argc, char** argv) {
  int threads = atoi(argv[1]);
  X = (float*)std::aligned_alloc(64,
                                 sizeof(float) * (R + 8) * C);  // room for prefetches past the end
  Y = (float*)std::aligned_alloc(64, sizeof(float) * R * C);
  for (size_t i = 0; i < (size_t)(R + 8) * C; ++i) X[i] = (rand() / (float)RAND_MAX) * 2 - 1;
  memset(Y, 0, sizeof(float) * R * C);
  const char* names[] = {"session 5 (no prefetch)",
                         "prefetch 2 rows ahead",
                         "+ Horner exp, no select",
                         "  + reciprocal multiply",
                         "  + degree-5 exp, flush",
                         "  + both",
                         "Horner, no select, prefetch in exp sweep",
                         "1 row ahead",
                         "4 rows ahead"};
  constexpr int kVariants = 9;
  std::vector<std::vector<double>> t(kVariants);
  for (int it = 0; it < 60; ++it) {
    t[0].push_back(run<0, 0, 0>(threads));
    t[1].push_back(run<0, 0, 1>(threads));
    t[2].push_back(run<1, 1, 1>(threads));
    t[3].push_back(run<1, 2, 1>(threads));
    t[4].push_back(run<2, 1, 1>(threads));
    t[5].push_back(run<2, 2, 1>(threads));
    t[6].push_back(run<1, 1, 2>(threads));
    t[7].push_back(run<1, 1, 3>(threads));
    t[8].push_back(run<1, 1, 5>(threads));
  }
  for (int k = 0; k < kVariants; ++k) {
    std::sort(t[k].begin(), t[k].end());
    printf("%-42s min %.3f p25 %.3f med %.3f ms\n", names[k], t[k][0], t[k][15], t[k][30]);
  }
}
