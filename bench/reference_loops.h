// Hand-written loops that the compiler benchmarks measure smelt against. Compiled alone with
// -O3 -march=native -ffast-math (bench/CMakeLists.txt), so they are what a careful C++ author
// would get from the host compiler. Each works on [begin, end) so a caller can split the range
// across threads.
#pragma once

#include <cstdint>

namespace smelt::bench {

// STREAM triad: a[i] = b[i] + s * c[i].
void triad_ref(float* a, const float* b, const float* c, float s, int64_t begin, int64_t end);
// out[i] = tanh(x*0.5 + y) * sigmoid(x) + exp(-x*x), one pass.
void chain_ref(const float* x, const float* y, float* out, int64_t begin, int64_t end);
// out[i] = x[i]*a + y[i]*b.
void axpby_ref(const float* x, const float* y, float* out, float a, float b, int64_t begin,
               int64_t end);
// Sum of x[begin, end) (the reduction order is the compiler's: -ffast-math lets it vectorize).
float sum_ref(const float* x, int64_t begin, int64_t end);

}  // namespace smelt::bench
