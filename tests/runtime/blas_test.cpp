// runtime::gemm against a double-precision triple loop: every transpose combination, beta, leading
// dimensions wider than the matrices, and shapes that split into panels over the thread pool
// (tall, wide, odd sizes that leave a short last panel) or run in one call (tiny ones).
#include "runtime/blas.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

struct Case {
  int64_t m, n, k;
};

template <typename T>
void check_gemm(DType dtype, const Case& c, bool ta, bool tb, double beta, double tol) {
  SCOPED_TRACE(testing::Message() << "m=" << c.m << " n=" << c.n << " k=" << c.k << " ta=" << ta
                                  << " tb=" << tb << " beta=" << beta);
  std::mt19937 rng(static_cast<uint32_t>(c.m * 131 + c.n * 17 + c.k + ta * 2 + tb));
  std::uniform_real_distribution<double> dist(-1, 1);
  // Stored shapes: A is m x k (k x m when transposed), B is k x n (n x k); each row padded by 3
  // so the leading dimensions differ from the widths.
  const int64_t a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
  const int64_t b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
  const int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = c.n + 3;
  std::vector<T> a(a_rows * lda), b(b_rows * ldb), out(c.m * ldc);
  for (T& v : a) v = static_cast<T>(dist(rng));
  for (T& v : b) v = static_cast<T>(dist(rng));
  for (T& v : out) v = static_cast<T>(dist(rng));
  const std::vector<T> before = out;
  ASSERT_TRUE(
      gemm(dtype, ta, tb, c.m, c.n, c.k, a.data(), lda, b.data(), ldb, beta, out.data(), ldc).ok());
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      if (j >= c.n) {  // the padding between rows of C is never written
        ASSERT_EQ(out[i * ldc + j], before[i * ldc + j]) << i << "," << j;
        continue;
      }
      double want = beta * static_cast<double>(before[i * ldc + j]);
      for (int64_t p = 0; p < c.k; ++p) {
        const double av = ta ? a[p * lda + i] : a[i * lda + p];
        const double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        want += av * bv;
      }
      ASSERT_NEAR(out[i * ldc + j], want, tol * (1 + std::abs(want))) << i << "," << j;
    }
  }
}

TEST(Gemm, MatchesTripleLoopForEveryLayoutAndPanelSplit) {
  const std::vector<Case> cases = {
      {1, 1, 1},      {3, 5, 7},     {128, 256, 784}, {256, 784, 128},
      {10, 256, 128}, {257, 33, 65}, {33, 257, 129},  {67, 300, 129},
      {500, 17, 40},  {17, 500, 40}, {200, 700, 100},  // row panels for a wide C: k is short; the
                                                       // last panel is narrower
  };
  for (const Case& c : cases) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        check_gemm<float>(DType::Float32, c, ta, tb, 0.0, 1e-4);
        check_gemm<double>(DType::Float64, c, ta, tb, 0.5, 1e-12);
      }
    }
  }
}

TEST(Gemm, TheOpenMpBuildIsLoadedWhenInstalled) {
  // tools/setup.sh installs Debian's libopenblas0-openmp; smelt must pick it over the default
  // pthreads build, or GEMMs and kernels fall back to two thread pools taking turns.
  if (!std::filesystem::exists("/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0") ||
      std::getenv("SMELT_OPENBLAS") != nullptr) {
    GTEST_SKIP() << "OpenBLAS's OpenMP build is not installed here";
  }
  EXPECT_TRUE(blas_shares_thread_pool());
}

// Runs in a child process started by EveryThreadingModeKeepsThePoolAndTheValues, with
// SMELT_BLAS_THREADS set before OpenBLAS loads. OpenBLAS is loaded before the pool is made: on
// the OpenMP build, telling OpenBLAS to run one thread per call (what `pool` once did) also set
// the OpenMP team size to one, and the pool made after it had one thread.
TEST(Gemm, ThreadingModeChild) {
  if (std::getenv("SMELT_TEST_BLAS_CHILD") == nullptr) {
    GTEST_SKIP() << "run by EveryThreadingModeKeepsThePoolAndTheValues";
  }
  (void)blas_shares_thread_pool();
  EXPECT_EQ(default_thread_pool().num_threads(), ThreadPool::default_num_threads());
  for (const Case& c : {Case{128, 256, 784}, Case{256, 784, 128}, Case{500, 17, 40}}) {
    check_gemm<float>(DType::Float32, c, false, true, 0.5, 1e-4);
  }
}

TEST(Gemm, EveryThreadingModeKeepsThePoolAndTheValues) {
  if (ThreadPool::default_num_threads() < 2 || std::getenv("OMP_NUM_THREADS") != nullptr) {
    GTEST_SKIP() << "needs two CPUs and the default OpenMP team";
  }
  char exe[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  for (const char* mode : {"pool", "openblas", ""}) {  // "": the default
    SCOPED_TRACE(mode);
    const std::string run = std::string("SMELT_BLAS_THREADS=") + mode +
                            " SMELT_TEST_BLAS_CHILD=1 '" + exe +
                            "' --gtest_filter=Gemm.ThreadingModeChild > /dev/null 2>&1";
    EXPECT_EQ(std::system(run.c_str()), 0);
  }
}

TEST(Gemm, IsCorrectWhenCalledFromInsideAParallelRegion) {
  // Conv's per-image GEMMs run inside the pool's chunks: they must run whole, on that thread.
  const Case c = {96, 96, 96};
  default_thread_pool().parallel_for(4, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      check_gemm<float>(DType::Float32, c, i % 2, i / 2, 0, 1e-4);
  });
}

TEST(RunMatmul, NarrowTransposedFactorsAndAddends) {
  // x W^T for a classifier's last layer (W [n, k], read transposed; run_matmul packs a small one
  // into rows), narrow and not, alone and as an addmm: against a double-precision loop.
  for (int64_t n : {1, 10, 15, 16, 40}) {
    for (bool with_addend : {false, true}) {
      SCOPED_TRACE(testing::Message() << "n=" << n << " addend=" << with_addend);
      const int64_t m = 33, k = 70;
      std::mt19937 rng(static_cast<uint32_t>(n));
      std::uniform_real_distribution<float> dist(-1, 1);
      std::vector<float> x(m * k), w(n * k), c(m * n), out(m * n);
      for (float& v : x) v = dist(rng);
      for (float& v : w) v = dist(rng);
      for (float& v : c) v = dist(rng);
      MatmulCall call;
      call.a = {0, 0, {}, k, 1};
      call.b = {1, 0, {}, 1, k};  // W^T: element (r, col) at col * k + r
      call.m = m;
      call.n = n;
      call.k = k;
      call.out = 2;
      if (with_addend) {
        call.addend = 3;
        call.alpha = -0.5;
        call.beta = 2.0;
      }
      ASSERT_TRUE(
          run_matmul(call, x.data(), w.data(), out.data(), with_addend ? c.data() : nullptr).ok());
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double want = 0;
          for (int64_t p = 0; p < k; ++p) want += double{x[i * k + p]} * w[j * k + p];
          if (with_addend) want = -0.5 * want + 2.0 * c[i * n + j];
          ASSERT_NEAR(out[i * n + j], want, 1e-4) << i << "," << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace smelt::runtime
