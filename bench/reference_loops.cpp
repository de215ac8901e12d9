#include "bench/reference_loops.h"

#include <cmath>

namespace smelt::bench {

void triad_ref(float* __restrict a, const float* __restrict b, const float* __restrict c, float s,
               int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
}

void chain_ref(const float* __restrict x, const float* __restrict y, float* __restrict out,
               int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    float xv = x[i];
    float t = std::tanh(xv * 0.5f + y[i]);
    float sg = 1.0f / (1.0f + std::exp(-xv));
    out[i] = t * sg + std::exp(-xv * xv);
  }
}

void axpby_ref(const float* __restrict x, const float* __restrict y, float* __restrict out, float a,
               float b, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) out[i] = x[i] * a + y[i] * b;
}

float sum_ref(const float* __restrict x, int64_t begin, int64_t end) {
  float s = 0.0f;
  for (int64_t i = begin; i < end; ++i) s += x[i];
  return s;
}

}  // namespace smelt::bench
