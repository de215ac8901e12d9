// NVRTC compilation and its caches. NVRTC needs no GPU, so these run wherever smelt was built with
// CUDA; loading and launching the result needs a device.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/cuda_api.h"

namespace smelt::runtime::cuda {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

#define SKIP_WITHOUT_CUDA_BUILD() \
  if (!built_with_cuda()) GTEST_SKIP() << "smelt was built without CUDA"

// A kernel whose text is unique per test (NVRTC output is cached by source).
std::string saxpy(const std::string& tag) {
  return "// " + tag + R"(
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";
}

// Points the disk cache at a fresh folder for the test's duration.
class TempCacheDir {
 public:
  explicit TempCacheDir(const std::string& name)
      : dir_(fs::temp_directory_path() /
             ("smelt-nvrtc-test-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    const char* old = std::getenv("SMELT_CACHE_DIR");
    if (old != nullptr) old_ = old;
    had_old_ = old != nullptr;
    ::setenv("SMELT_CACHE_DIR", dir_.c_str(), 1);
  }
  ~TempCacheDir() {
    if (had_old_) {
      ::setenv("SMELT_CACHE_DIR", old_.c_str(), 1);
    } else {
      ::unsetenv("SMELT_CACHE_DIR");
    }
    fs::remove_all(dir_);
  }
  fs::path cuda_dir() const { return dir_ / "cuda"; }
  std::vector<fs::path> files(const std::string& ext) const {
    std::vector<fs::path> out;
    if (!fs::exists(cuda_dir())) return out;
    for (const auto& e : fs::directory_iterator(cuda_dir())) {
      if (e.path().extension() == ext) out.push_back(e.path());
    }
    return out;
  }

 private:
  fs::path dir_;
  std::string old_;
  bool had_old_ = false;
};

TEST(Nvrtc, CompilesToACubinWithoutAGpu) {
  SKIP_WITHOUT_CUDA_BUILD();
  TempCacheDir cache("cubin");
  absl::StatusOr<CompiledImage> img = nvrtc_compile(saxpy("cubin"), "saxpy");
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->arch, target_arch());
  if (!img->is_ptx) {
    ASSERT_GE(img->image.size(), 4u);
    EXPECT_EQ(img->image.substr(0, 4),
              "\x7f"
              "ELF");
  } else {
    EXPECT_THAT(img->image, HasSubstr(".entry saxpy"));
  }
}

TEST(Nvrtc, SyntaxErrorGivesTheLog) {
  SKIP_WITHOUT_CUDA_BUILD();
  const int64_t failures = nvrtc_stats().failures;
  absl::StatusOr<CompiledImage> img =
      nvrtc_compile("extern \"C\" __global__ void broken() { int x = ; }", "broken_kernel");
  ASSERT_TRUE(absl::IsInvalidArgument(img.status())) << img.status();
  EXPECT_THAT(img.status().message(), HasSubstr("broken_kernel"));
  EXPECT_THAT(img.status().message(), HasSubstr("expected an expression"));
  EXPECT_EQ(nvrtc_stats().failures, failures + 1);
}

TEST(Nvrtc, SecondCompileIsAMemoryHit) {
  SKIP_WITHOUT_CUDA_BUILD();
  ::setenv("SMELT_DISABLE_DISK_CACHE", "1", 1);
  const NvrtcStats before = nvrtc_stats();
  absl::StatusOr<CompiledImage> a = nvrtc_compile(saxpy("memory-hit"), "saxpy");
  absl::StatusOr<CompiledImage> b = nvrtc_compile(saxpy("memory-hit"), "saxpy");
  ::unsetenv("SMELT_DISABLE_DISK_CACHE");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->image, b->image);
  const NvrtcStats after = nvrtc_stats();
  EXPECT_EQ(after.compiles, before.compiles + 1);
  EXPECT_EQ(after.memory_hits, before.memory_hits + 1);
  EXPECT_EQ(after.disk_hits, before.disk_hits);
}

TEST(Nvrtc, DiskCacheRoundTrip) {
  SKIP_WITHOUT_CUDA_BUILD();
  TempCacheDir cache("disk");
  const std::string src = saxpy("disk");
  absl::StatusOr<CompiledImage> a = nvrtc_compile(src, "saxpy");
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string ext = a->is_ptx ? ".ptx" : ".cubin";
  ASSERT_EQ(cache.files(ext).size(), 1u);
  ASSERT_EQ(cache.files(".cu").size(), 1u);
  EXPECT_EQ(cache.files(ext)[0].stem(), cache.files(".cu")[0].stem());
  std::ifstream cu(cache.files(".cu")[0]);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(cu), {}), src);

  nvrtc_clear_memory_cache();  // as if a new process started
  const NvrtcStats before = nvrtc_stats();
  absl::StatusOr<CompiledImage> b = nvrtc_compile(src, "saxpy");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->image, a->image);
  EXPECT_EQ(b->is_ptx, a->is_ptx);
  EXPECT_EQ(nvrtc_stats().disk_hits, before.disk_hits + 1);
  EXPECT_EQ(nvrtc_stats().compiles, before.compiles);
}

TEST(Nvrtc, CorruptDiskEntryIsRecompiled) {
  SKIP_WITHOUT_CUDA_BUILD();
  TempCacheDir cache("corrupt");
  const std::string src = saxpy("corrupt");
  absl::StatusOr<CompiledImage> a = nvrtc_compile(src, "saxpy");
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string ext = a->is_ptx ? ".ptx" : ".cubin";
  ASSERT_EQ(cache.files(ext).size(), 1u);
  const fs::path entry = cache.files(ext)[0];
  for (int variant = 0; variant < 2; ++variant) {
    if (variant == 0) {
      // Flip a byte in the payload: the checksum fails.
      std::fstream f(entry, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(entry) - 10));
      f.put('\x55');
    } else {
      fs::resize_file(entry, fs::file_size(entry) / 2);  // truncated
    }
    nvrtc_clear_memory_cache();
    const NvrtcStats before = nvrtc_stats();
    absl::StatusOr<CompiledImage> b = nvrtc_compile(src, "saxpy");
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->image, a->image);
    EXPECT_EQ(nvrtc_stats().compiles, before.compiles + 1) << "variant " << variant;
    EXPECT_EQ(nvrtc_stats().disk_hits, before.disk_hits);
  }
  // The recompile rewrote the entry, so it is a disk hit again.
  nvrtc_clear_memory_cache();
  const NvrtcStats before = nvrtc_stats();
  ASSERT_TRUE(nvrtc_compile(src, "saxpy").ok());
  EXPECT_EQ(nvrtc_stats().disk_hits, before.disk_hits + 1);
}

TEST(Nvrtc, ArchFromTheEnvironmentWithoutADevice) {
  SKIP_WITHOUT_CUDA_BUILD();
  if (available()) GTEST_SKIP() << "a device decides the architecture";
  ::setenv("SMELT_CUDA_ARCH", "sm_80", 1);
  EXPECT_EQ(target_arch(), "sm_80");
  absl::StatusOr<CompiledImage> img = nvrtc_compile(saxpy("sm80"), "saxpy");
  ::unsetenv("SMELT_CUDA_ARCH");
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->arch, "sm_80");
  EXPECT_EQ(target_arch(), "sm_90");
}

// ---- on a device ------------------------------------------------------------------------------

#define SKIP_WITHOUT_DEVICE() \
  if (!available()) GTEST_SKIP() << "no CUDA device: " << availability()

TEST(CudaLaunch, SaxpyRuns) {
  SKIP_WITHOUT_DEVICE();
  absl::StatusOr<CompiledImage> img = nvrtc_compile(saxpy("launch"), "saxpy");
  ASSERT_TRUE(img.ok()) << img.status();
  absl::StatusOr<std::vector<Function>> fns = load_functions(*img, {"saxpy"});
  ASSERT_TRUE(fns.ok()) << fns.status();
  absl::StatusOr<std::vector<Function>> again = load_functions(*img, {"saxpy"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0], (*fns)[0]);  // the module is loaded once
  EXPECT_FALSE(load_functions(*img, {"no_such_kernel"}).ok());

  const int n = 1000;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = i, y[i] = 1;
  auto dx = allocate(n * sizeof(float));
  auto dy = allocate(n * sizeof(float));
  ASSERT_TRUE(dx.ok() && dy.ok());
  ASSERT_TRUE(copy_to_device((*dx)->data(), x.data(), n * sizeof(float)).ok());
  ASSERT_TRUE(copy_to_device((*dy)->data(), y.data(), n * sizeof(float)).ok());
  float a = 2;
  void* px = (*dx)->data();
  void* py = (*dy)->data();
  int nn = n;
  void* params[] = {&a, &px, &py, &nn};
  LaunchConfig cfg;
  cfg.grid[0] = (n + 255) / 256;
  cfg.block[0] = 256;
  ASSERT_TRUE(launch((*fns)[0], cfg, params).ok());
  ASSERT_TRUE(copy_to_host(y.data(), (*dy)->data(), n * sizeof(float)).ok());
  for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], 2.0f * i + 1) << i;
}

// Reference row-major batched matmul over strided operands.
template <typename T>
std::vector<T> reference_gemm(int64_t batch, int64_t m, int64_t n, int64_t k,
                              const std::vector<T>& a, const GemmOperand& ga,
                              const std::vector<T>& b, const GemmOperand& gb) {
  std::vector<T> c(batch * m * n);
  for (int64_t p = 0; p < batch; ++p)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) {
          s += double(a[ga.offset + p * ga.batch_stride + i * ga.row_stride + q * ga.col_stride]) *
               double(b[gb.offset + p * gb.batch_stride + q * gb.row_stride + j * gb.col_stride]);
        }
        c[(p * m + i) * n + j] = static_cast<T>(s);
      }
  return c;
}

template <typename T>
void check_gemm(bool a_transposed, bool b_transposed) {
  const int64_t batch = 3, m = 37, n = 19, k = 23;
  // A: m x k, stored row-major (row stride k) or as the transpose (a k x m buffer).
  GemmOperand ga{nullptr, 2, m * k + 5, a_transposed ? 1 : k, a_transposed ? m : 1};
  GemmOperand gb{nullptr, 1, k * n + 3, b_transposed ? 1 : n, b_transposed ? k : 1};
  std::vector<T> a(2 + batch * ga.batch_stride), b(1 + batch * gb.batch_stride);
  // Small integers over powers of two: every product and sum is exact in float32.
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<T>(static_cast<int>(i * 7 % 13) - 6) / 4;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<T>(static_cast<int>(i * 5 % 11) - 5) / 2;
  auto da = allocate(a.size() * sizeof(T));
  auto db = allocate(b.size() * sizeof(T));
  auto dc = allocate(batch * m * n * sizeof(T));
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
  ASSERT_TRUE(copy_to_device((*da)->data(), a.data(), a.size() * sizeof(T)).ok());
  ASSERT_TRUE(copy_to_device((*db)->data(), b.data(), b.size() * sizeof(T)).ok());
  ga.data = (*da)->data();
  gb.data = (*db)->data();
  absl::Status s = gemm(sizeof(T) == 8, batch, m, n, k, ga, gb, (*dc)->data());
  ASSERT_TRUE(s.ok()) << s;
  std::vector<T> c(batch * m * n);
  ASSERT_TRUE(copy_to_host(c.data(), (*dc)->data(), c.size() * sizeof(T)).ok());
  std::vector<T> want = reference_gemm(batch, m, n, k, a, ga, b, gb);
  for (size_t i = 0; i < c.size(); ++i) {
    ASSERT_NEAR(c[i], want[i], 1e-3) << "at " << i << " (A transposed " << a_transposed
                                     << ", B transposed " << b_transposed << ")";
  }
}

TEST(CudaGemm, AllTransposeCombinations) {
  SKIP_WITHOUT_DEVICE();
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      check_gemm<float>(ta, tb);
      check_gemm<double>(ta, tb);
    }
  }
}

TEST(CudaGemm, RejectsOperandsWithoutAUnitStride) {
  SKIP_WITHOUT_DEVICE();
  auto d = allocate(4096);
  ASSERT_TRUE(d.ok());
  GemmOperand a{(*d)->data(), 0, 0, 8, 2};
  GemmOperand b{(*d)->data(), 0, 0, 4, 1};
  absl::Status s = gemm(false, 1, 4, 4, 4, a, b, (*d)->data());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("operand A"));
}

}  // namespace
}  // namespace smelt::runtime::cuda
