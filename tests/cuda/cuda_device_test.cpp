// The CUDA backend on a real device: fused kernels, cuBLAS matmuls and gathers against the CPU
// path (itself checked against the reference evaluator), on random inputs. Every test skips,
// saying why, on a machine without a CUDA device.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "compiler/compile.h"
#include "runtime/cuda_api.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::RandomGraph;
using testing::reference_values;

#define SKIP_WITHOUT_GPU()                                                           \
  do {                                                                               \
    if (!cuda_is_available()) {                                                      \
      GTEST_SKIP() << "no CUDA device: " << runtime::cuda::availability().message(); \
    }                                                                                \
  } while (0)

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// f(inputs) on the CPU and on the GPU, from the same data; the GPU's values must match.
void expect_same_on_gpu(const std::vector<Tensor>& cpu_inputs,
                        const std::function<Tensor(const std::vector<Tensor>&)>& f,
                        const std::string& what, double rel = 2e-5) {
  std::vector<Tensor> gpu_inputs;
  for (const Tensor& t : cpu_inputs) gpu_inputs.push_back(t.cuda());
  Tensor want = f(cpu_inputs);
  Tensor got = f(gpu_inputs);
  EXPECT_EQ(got.device(), Device::cuda()) << what;
  EXPECT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(got.dtype(), want.dtype()) << what;
  if (is_floating(want.dtype())) {
    expect_close(values(got), values(want), what, rel);
  } else {
    EXPECT_EQ(values(got), values(want)) << what;
  }
}

TEST(CudaDevice, MovesRoundTripEveryDtype) {
  SKIP_WITHOUT_GPU();
  for (DType t : kAllDTypes) {
    for (int64_t n : {0, 1, 7, 1000, 1 << 22}) {
      Tensor x = randn({n}).to(t);
      Tensor g = x.cuda();
      EXPECT_EQ(g.device(), Device::cuda());
      EXPECT_EQ(g.cpu().to_vector<double>(), x.to_vector<double>()) << dtype_name(t) << " " << n;
      EXPECT_EQ(g.to_vector<double>(), x.to_vector<double>());  // reads copy back themselves
    }
  }
}

TEST(CudaDevice, MixedDevicesThrowNamingBoth) {
  SKIP_WITHOUT_GPU();
  Tensor a = randn({3}), b = randn({3}).cuda();
  try {
    (void)(a + b);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), "cpu")) << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), "cuda:0")) << e.what();
  }
  EXPECT_THROW(matmul(randn({2, 2}), randn({2, 2}).cuda()), Error);
}

// conv2d and max_pool2d (built-in kernels + cuBLAS) against the CPU, forward and backward, with
// strides, paddings, odd sizes, float64, and a max_pool2d tie (the first element wins on both).
TEST(CudaDevice, ConvAndPoolMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  struct Case {
    std::vector<int64_t> x, w;
    int64_t stride, pad;
    DType dtype;
  };
  for (const Case& c : {Case{{2, 3, 9, 7}, {4, 3, 3, 3}, 1, 1, DType::Float32},
                        Case{{1, 1, 6, 11}, {2, 1, 2, 3}, 2, 0, DType::Float32},
                        Case{{3, 2, 8, 8}, {5, 2, 3, 3}, 2, 2, DType::Float64},
                        Case{{64, 32, 14, 14}, {64, 32, 3, 3}, 1, 1, DType::Float32}}) {
    const std::string what = absl::StrCat("conv x", c.x[2], "x", c.x[3], " s", c.stride, " p",
                                          c.pad, " ", dtype_name(c.dtype));
    Tensor x = randn(c.x).to(c.dtype), w = randn(c.w).to(c.dtype), b = randn({c.w[0]}).to(c.dtype);
    Tensor r = randn({c.x[0], c.w[0], 16, 16}).to(c.dtype);  // cropped to y's shape below
    auto step = [&](const std::vector<Tensor>& in, int which) {
      Tensor xs = in[0].detach().requires_grad_(), ws = in[1].detach().requires_grad_();
      Tensor y = max_pool2d(relu(conv2d(xs, ws, in[2], c.stride, c.pad)), 2, 1);
      if (which == 0) return y;
      Tensor rr = in[3].slice(2, 0, y.size(2)).slice(3, 0, y.size(3));
      std::vector<Tensor> g = grad({(y * rr).sum()}, {xs, ws});
      return g[which - 1];
    };
    for (int which = 0; which < 3; ++which) {
      expect_same_on_gpu(
          {x, w, b, r}, [&](const auto& in) { return step(in, which); },
          absl::StrCat(what, " output ", which), 1e-4);
    }
  }
  expect_same_on_gpu(
      {ones({1, 2, 4, 4}).requires_grad_()},
      [](const auto& in) {
        Tensor x = in[0].detach().requires_grad_();
        return grad({max_pool2d(x, 3, 1, 1).sum()}, {x})[0];
      },
      "max_pool2d ties");
}

// Dilated and grouped convolutions (the group split is slices and a concatenation around the
// same conv op), forward and both gradients.
TEST(CudaDevice, GroupedAndDilatedConvMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  Tensor x = randn({2, 4, 9, 8}), w = randn({6, 2, 3, 3}), b = randn({6});
  for (int which = 0; which < 3; ++which) {
    expect_same_on_gpu(
        {x, w, b},
        [&](const auto& in) {
          Tensor xs = in[0].detach().requires_grad_(), ws = in[1].detach().requires_grad_();
          Tensor y = conv2d(xs, ws, in[2], /*stride=*/1, /*padding=*/2, /*dilation=*/2,
                            /*groups=*/2);
          if (which == 0) return y;
          return grad({(y * y).sum()}, {xs, ws})[which - 1];
        },
        absl::StrCat("grouped dilated conv output ", which), 1e-4);
  }
}

// The frontend's composites (masked_fill, logsumexp, norm, isfinite) stay on the device: no
// CPU-made constant may reach a GPU op. (Written in session 9, which had no GPU time left.)
TEST(CudaDevice, CompositesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  Tensor x = randn({4, 5});
  expect_same_on_gpu(
      {x},
      [](const auto& in) {
        Tensor a = in[0];
        return a.masked_fill(a > 0.5f, -1.0f) + a.logsumexp(1, true) + a.norm(2, 0) +
               isfinite(a.log()).to(DType::Float32) + floor(a * 4.0f) + ceil(a * 3.0f) +
               round(a * 2.0f) + trunc(a * 5.0f) + a.round(1) + frac(a * 3.0f) + a.prod(1, true) +
               a.abs().prod();
      },
      "composites", 1e-4);
}

TEST(CudaDevice, CumsumMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  // Short rows and columns (a thread per column), long rows (a block per row), every dtype, and
  // the reverse scan through the gradient.
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {5, 7}, {3, 100000}, {2000, 70}, {4, 33, 9}, {1, 1 << 20}}) {
    Tensor x = randn(shape);
    for (int64_t dim = 0; dim < static_cast<int64_t>(shape.size()); ++dim) {
      expect_same_on_gpu(
          {x}, [dim](const auto& in) { return in[0].cumsum(dim); },
          absl::StrCat("cumsum ", shape.size(), "-d dim ", dim), 1e-4);
      Tensor i = (x * 100.f).to(DType::Int32);
      expect_same_on_gpu(
          {i}, [dim](const auto& in) { return in[0].cumsum(dim); },
          absl::StrCat("integer cumsum dim ", dim));
      Tensor d = x.to(DType::Float64);
      expect_same_on_gpu(
          {d},
          [dim](const auto& in) {
            Tensor leaf = in[0].detach().requires_grad_();
            Tensor w = leaf.detach() * 0.5 + 1.0;
            return grad({(leaf.cumsum(dim) * w).sum()}, {leaf})[0];
          },
          absl::StrCat("cumsum gradient dim ", dim), 1e-9);
    }
  }
}

TEST(CudaDevice, FuzzedGraphsMatchTheReference) {
  SKIP_WITHOUT_GPU();
  for (int seed = 1; seed <= 120; ++seed) {
    const int ops = 3 + seed % 12;
    const std::vector<double> want = reference_values(RandomGraph(seed).build(ops));
    Tensor got = RandomGraph(seed, Device::cuda()).build(ops);
    EXPECT_EQ(got.device(), Device::cuda());
    expect_close(values(got), want, absl::StrCat("seed ", seed));
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(CudaDevice, ElementwiseOpsInEveryDtype) {
  SKIP_WITHOUT_GPU();
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor x = randn({1003}).to(t), y = randn({1003}).to(t);
    expect_same_on_gpu(
        {x, y},
        [](const std::vector<Tensor>& v) {
          const Tensor &x = v[0], &y = v[1];
          return exp(x) + log(abs(x) + 0.1) + sqrt(abs(y)) + rsqrt(abs(x) + 1.0) + tanh(x) +
                 sigmoid(y * 10.0) + relu(x) + sin(x) + cos(y) + sign(x) + pow(abs(x) + 0.5, y) +
                 maximum(x, y) + minimum(x, y) + where(x > y, x, y) + clamp(x, -0.5, 0.5) +
                 x / (y * y + 1.0);
        },
        absl::StrCat("float ops ", dtype_name(t)), t == DType::Float32 ? 2e-5 : 1e-12);
  }
  for (DType t : {DType::Int32, DType::Int64}) {
    Tensor x = randint(-1000, 1000, {517}).to(t), y = randint(-1000, 1000, {517}).to(t);
    expect_same_on_gpu(
        {x, y},
        [](const std::vector<Tensor>& v) {
          const Tensor &x = v[0], &y = v[1];
          return (x + y) * (x - y) + abs(-x) + maximum(x, y) + minimum(x, y) + relu(x) + sign(y) +
                 where(x > y, x, y);
        },
        absl::StrCat("integer ops ", dtype_name(t)));
  }
  Tensor f = randn({300}) * 1e10f;
  expect_same_on_gpu(
      {f},
      [](const std::vector<Tensor>& v) {
        const Tensor& f = v[0];
        return f.to(DType::Int32).to(DType::Float64) + f.to(DType::Int64).to(DType::Float64) +
               (f > 0.f).to(DType::Float64) +
               logical_or(logical_and(f > 0.f, f < 1e9f), logical_not(f != f)).to(DType::Float64);
      },
      "casts and logic");
}

TEST(CudaDevice, NanAndInfinityFollowTheCpu) {
  SKIP_WITHOUT_GPU();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = from_vector(std::vector<float>{1, nan, -inf, 3, 3, -0.f, inf, 2}, {2, 4});
  Tensor y = from_vector(std::vector<float>{nan, 0, 1, 3, -1, 0.f, 5, 2}, {2, 4});
  expect_same_on_gpu(
      {x, y},
      [](const std::vector<Tensor>& v) {
        return cat({maximum(v[0], v[1]), minimum(v[0], v[1]), relu(v[0]), sign(v[0])}, 0);
      },
      "special values");
  for (int dim : {0, 1}) {
    expect_same_on_gpu(
        {x}, [dim](const std::vector<Tensor>& v) { return v[0].argmax(dim); }, "argmax with NaN");
    expect_same_on_gpu(
        {x}, [dim](const std::vector<Tensor>& v) { return v[0].argmin(dim); }, "argmin with NaN");
    expect_same_on_gpu(
        {x}, [dim](const std::vector<Tensor>& v) { return v[0].max(dim); }, "max with NaN");
  }
}

TEST(CudaDevice, ReductionsOfEveryStrategy) {
  SKIP_WITHOUT_GPU();
  struct Shape {
    std::vector<int64_t> shape;
    int64_t dim;
  };
  // thread per output, column, block per output, split, and their argmax/argmin.
  const std::vector<Shape> shapes = {{{4096, 10}, 1},  {{4096, 300}, 0},  {{512, 4096}, 1},
                                     {{1 << 22}, 0},   {{4, 1 << 20}, 1}, {{64, 5000}, 1},
                                     {{7, 33, 65}, 1}, {{3, 0}, 1}};
  for (const Shape& s : shapes) {
    const std::string what =
        absl::StrCat("shape ", s.shape.size(), "-d dim ", s.dim, " of ", s.shape[0], "...");
    Tensor x = randn(s.shape);
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return v[0].sum(s.dim); }, what + " sum", 1e-4);
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return v[0].mean(s.dim); }, what + " mean", 1e-4);
    if (x.numel() == 0) continue;
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return v[0].max(s.dim); }, what + " max");
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return v[0].min(s.dim); }, what + " min");
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return v[0].argmax(s.dim); }, what + " argmax");
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return v[0].argmin(s.dim); }, what + " argmin");
    Tensor i = randint(-5, 5, s.shape).to(DType::Int32);
    expect_same_on_gpu(
        {i}, [&](const std::vector<Tensor>& v) { return v[0].sum(s.dim); }, what + " int sum");
    expect_same_on_gpu(
        {x}, [&](const std::vector<Tensor>& v) { return (v[0] > 3.f).sum(); },
        what + " bool count");
  }
  Tensor x = randn({256, 1000});
  expect_same_on_gpu(
      {x},
      [](const std::vector<Tensor>& v) {
        return softmax(v[0], 1) + log_softmax(v[0], 1) + v[0].var(1, true, true);
      },
      "softmax, log_softmax, var", 1e-4);
  expect_same_on_gpu(
      {x}, [](const std::vector<Tensor>& v) { return v[0].sum(); }, "full sum of a 2-d tensor",
      1e-4);
}

// Softmax, log_softmax, layer norm and cross-entropy (row kernels: reductions whose results the
// same kernel reads back over the row) against the CPU: rows long and short, over the last and a
// middle axis, float and double, rows of no elements.
TEST(CudaDevice, RowKernelsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  struct Case {
    std::vector<int64_t> shape;
    int64_t dim;
  };
  const std::vector<Case> cases = {{{4096, 1024}, -1}, {{7, 1000}, -1}, {{7, 1000}, 1},
                                   {{3, 5, 33}, -1},   {{3, 5, 33}, 1}, {{4096, 10}, -1},
                                   {{16, 700, 64}, 1}, {{5, 0}, -1},    {{0, 8}, -1}};
  for (DType t : {DType::Float32, DType::Float64}) {
    const double rel = t == DType::Float32 ? 1e-4 : 1e-10;
    for (const Case& c : cases) {
      std::string what = absl::StrCat(dtype_name(t), " [");
      for (int64_t d : c.shape) absl::StrAppend(&what, d, ",");
      absl::StrAppend(&what, "] dim ", c.dim, ": ");
      // Large values, so a softmax without its max subtracted would overflow.
      Tensor x = (randn(c.shape) * 30.f).to(t);
      const int64_t dim = c.dim;
      expect_same_on_gpu(
          {x}, [&](const std::vector<Tensor>& v) { return softmax(v[0], dim); }, what + "softmax",
          rel);
      expect_same_on_gpu(
          {x}, [&](const std::vector<Tensor>& v) { return log_softmax(v[0], dim); },
          what + "log_softmax", rel);
      expect_same_on_gpu(
          {x},
          [&](const std::vector<Tensor>& v) {
            Tensor d = v[0] - v[0].mean(dim, true);
            return d * rsqrt((d * d).mean(dim, true) + 1e-5);
          },
          what + "layer norm", rel);
      if (c.shape.size() != 2 || (dim != -1 && dim != 1) || x.numel() == 0) continue;
      const int64_t classes = c.shape[1];
      Tensor target = randint(0, classes, {c.shape[0]});
      Tensor onehot = (arange(classes).unsqueeze(0) == target.unsqueeze(1)).to(t);
      expect_same_on_gpu(
          {x, target},
          [&](const std::vector<Tensor>& v) { return nn::functional::cross_entropy(v[0], v[1]); },
          what + "cross_entropy", rel);
      expect_same_on_gpu(
          {x, onehot},
          [&](const std::vector<Tensor>& v) { return -(log_softmax(v[0], 1) * v[1]).sum(1); },
          what + "log_softmax * onehot", rel);
    }
  }
}

TEST(CudaDevice, ViewsPadsAndConcats) {
  SKIP_WITHOUT_GPU();
  Tensor x = randn({6, 8, 5});
  expect_same_on_gpu(
      {x},
      [](const std::vector<Tensor>& v) {
        const Tensor& x = v[0];
        Tensor a = x.permute({2, 0, 1}).reshape({5, 48});
        Tensor b = x.slice(1, 1, 8, 3).transpose(0, 2).flatten(1);
        return cat({a, a * 2.f}, 1).sum(1) + b.sum(1).slice(0, 0, 5);
      },
      "views");
  expect_same_on_gpu(
      {randn({2, 3, 9, 9}), randn({4, 3, 3, 3}), randn({4})},
      [](const std::vector<Tensor>& v) {
        return max_pool2d(relu(conv2d(v[0], v[1], v[2], 1, 1)), 2, 2);
      },
      "conv2d + max_pool2d", 1e-4);
}

TEST(CudaDevice, MatmulThroughCublas) {
  SKIP_WITHOUT_GPU();
  auto mm = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); };
  expect_same_on_gpu({randn({64, 128}), randn({128, 32})}, mm, "2-d", 1e-4);
  expect_same_on_gpu(
      {randn({128, 64}), randn({32, 128})},
      [](const std::vector<Tensor>& v) { return matmul(v[0].t(), v[1].t()); },
      "transposed operands", 1e-4);
  expect_same_on_gpu({randn({4, 16, 8}), randn({4, 8, 12})}, mm, "batched", 1e-4);
  expect_same_on_gpu({randn({4, 16, 8}), randn({8, 12})}, mm, "broadcast batch", 1e-4);
  expect_same_on_gpu({randn({2, 3, 16, 8}), randn({3, 8, 12})}, mm, "two batch dims", 1e-4);
  expect_same_on_gpu({randn({8}), randn({8, 5})}, mm, "vector @ matrix", 1e-4);
  expect_same_on_gpu({randn({5, 8}), randn({8})}, mm, "matrix @ vector", 1e-4);
  expect_same_on_gpu({randn({8}), randn({8})}, mm, "dot", 1e-4);
  expect_same_on_gpu({randn({33, 17}).to(DType::Float64), randn({17, 9}).to(DType::Float64)}, mm,
                     "f64", 1e-12);
  expect_same_on_gpu(
      {randn({6, 1}), randn({1, 7})},
      [](const std::vector<Tensor>& v) {
        return matmul(v[0].expand({6, 5}), v[1].expand({5, 7}));
      },
      "broadcast (stride 0) operands", 1e-4);
  expect_same_on_gpu({randn({4, 0}), randn({0, 3})}, mm, "k = 0");
  // A linear layer, fused around the matmul.
  expect_same_on_gpu(
      {randn({128, 784}), randn({256, 784}), randn({256})},
      [](const std::vector<Tensor>& v) { return relu(matmul(v[0], v[1].t()) + v[2]).sum(1); },
      "linear + relu", 1e-4);
}

TEST(CudaDevice, IndexSelectAndItsErrors) {
  SKIP_WITHOUT_GPU();
  Tensor x = randn({10, 7});
  Tensor idx = from_vector(std::vector<int64_t>{3, 0, 9, 3}, {4});
  expect_same_on_gpu(
      {x, idx},
      [](const std::vector<Tensor>& v) {
        return v[0].index_select(0, v[1]) + v[0].index_select(1, v[1].slice(0, 0, 2)).sum();
      },
      "index_select");
  Tensor bad = from_vector(std::vector<int64_t>{1, 12, -1}, {3}).cuda();
  Tensor g = x.cuda();
  Tensor y = g.index_select(0, bad) * 2.f;
  try {
    y.eval();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), "index 12 is out of range for dim 0 of size 10"))
        << e.what();
  }
  // Nothing lost: the inputs still read, and a good index still works.
  EXPECT_EQ(g.to_vector<float>(), x.to_vector<float>());
  EXPECT_EQ(g.index_select(0, from_vector(std::vector<int64_t>{2}, {1}).cuda()).to_vector<float>(),
            x.index_select(0, from_vector(std::vector<int64_t>{2}, {1})).to_vector<float>());
}

TEST(CudaDevice, SortTopkAndGatherMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  // Few distinct values: ties test the stable order; a NaN its place.
  Tensor x = randint(0, 9, {6, 300, 3}).to(DType::Float32);
  for (int64_t dim = 0; dim < 3; ++dim) {
    for (bool descending : {false, true}) {
      expect_same_on_gpu(
          {x}, [&](const auto& v) { return v[0].argsort(dim, descending); },
          absl::StrCat("argsort dim ", dim, descending ? " descending" : ""));
    }
  }
  // Lines past the device's rank limit (16384) are sorted on the host.
  expect_same_on_gpu(
      {randint(0, 1000, {2, 20000}).to(DType::Float32)},
      [](const auto& v) { return v[0].argsort(1, true); }, "long lines");
  Tensor nan = tensor({2.f, std::numeric_limits<float>::quiet_NaN(), -1.f, 2.f});
  expect_same_on_gpu(
      {nan}, [](const auto& v) { return v[0].argsort(0, true); }, "NaN");
  Tensor d = randn({4, 50}, DType::Float64);
  expect_same_on_gpu(
      {d},
      [](const auto& v) {
        Tensor leaf = v[0].detach().requires_grad_();
        auto [top, pos] = leaf.topk(5);
        Tensor g = grad({(top * top).sum()}, {leaf})[0];
        return cat({top.reshape({-1}), g.reshape({-1}), pos.to(DType::Float64).reshape({-1})});
      },
      "topk values, gradient and positions", 1e-12);
  expect_same_on_gpu(
      {randint(-50, 50, {7, 20}).to(DType::Int32)},
      [](const auto& v) { return std::get<0>(v[0].sort(1)); }, "integer sort");
}

TEST(CudaDevice, IndexAddMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  Tensor base = randn({50, 9});
  Tensor idx = randint(0, 50, {400});
  Tensor src = randn({400, 9});
  expect_same_on_gpu(
      {base, idx, src}, [](const auto& v) { return v[0].index_add(0, v[1], v[2]); }, "index_add",
      1e-4);
  expect_same_on_gpu(
      {base.to(DType::Int64), idx, (src * 10.f).to(DType::Int64)},
      [](const auto& v) { return v[0].index_add(0, v[1], v[2]); }, "integer index_add");
  expect_same_on_gpu(
      {base, from_vector(std::vector<int64_t>{}, {0}), zeros({9, 0})},
      [](const auto& v) { return v[0].t().index_add(1, v[1], v[2]); }, "no indices");
}

TEST(CudaDevice, EmbeddingAndLayerNormTrainOnTheGpu) {
  SKIP_WITHOUT_GPU();
  // index_select's gradient (Embedding's) counts its positions on the device.
  Tensor table = randn({12, 6}, DType::Float64), gamma = randn({6}, DType::Float64);
  Tensor idx = from_vector(std::vector<int64_t>{3, 0, 11, 3, 5, 0}, {2, 3});
  expect_same_on_gpu(
      {table, gamma, idx},
      [](const std::vector<Tensor>& v) {
        Tensor t = v[0].detach().requires_grad_(), g = v[1].detach().requires_grad_();
        Tensor h = nn::functional::layer_norm(nn::functional::embedding(v[2], t, 0), {6}, g);
        std::vector<Tensor> grads = grad({(h * h.detach().sin()).sum()}, {t, g});
        return cat({grads[0].reshape({-1}), grads[1]});
      },
      "embedding + layer_norm gradients", 1e-9);
}

TEST(CudaDevice, SameKernelsAsTheCpuAndCachedPrograms) {
  SKIP_WITHOUT_GPU();
  Tensor x = randn({512, 100}).cuda(), w = randn({100, 10}).cuda();
  Tensor loss = softmax(matmul(x, w), 1).max(1).mean();
  const compiler::CompileStats before = compiler::compile_stats();
  const float first = loss.item<float>();
  const compiler::CompileStats mid = compiler::compile_stats();
  Tensor again = softmax(matmul(x, w), 1).max(1).mean();
  EXPECT_EQ(again.item<float>(), first);
  const compiler::CompileStats after = compiler::compile_stats();
  EXPECT_EQ(mid.program_misses, before.program_misses + 1);
  EXPECT_EQ(after.program_misses, mid.program_misses);  // the second is a cache hit
  EXPECT_EQ(after.kernels_compiled, mid.kernels_compiled);
}

TEST(CudaDevice, MemoryIsReturnedAndCounted) {
  SKIP_WITHOUT_GPU();
  cuda::synchronize();
  const size_t base = cuda::memory_allocated();
  {
    Tensor a = randn({1 << 20}).cuda();
    Tensor b = (a * 2.f + 1.f).eval();
    EXPECT_GE(cuda::memory_allocated(), base + 2 * (4u << 20));
    EXPECT_GE(cuda::max_memory_allocated(), cuda::memory_allocated());
    EXPECT_GE(cuda::memory_reserved(), cuda::memory_allocated());
  }
  EXPECT_EQ(cuda::memory_allocated(), base);
  cuda::empty_cache();
  EXPECT_LE(cuda::memory_reserved(), cuda::memory_allocated() + (20u << 20));
}

// Gradients computed on the device match the CPU's: the backward graph lowers to the same kinds
// of kernels (column reductions for bias gradients, transposed matmuls).
TEST(CudaDevice, GradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  struct Run {
    std::vector<std::vector<double>> grads;
    double loss;
  };
  auto run = [](Device device) {
    manual_seed(21);
    std::vector<Tensor> params = {randn({64, 100}) * 0.1f, randn({64}), randn({10, 64}) * 0.1f,
                                  randn({10}), randn({4, 2, 3, 3}) * 0.3f};
    Tensor x = randn({32, 100}).to(device);
    Tensor img = randn({8, 2, 10, 10}).to(device);
    Tensor onehot = (randint(0, 10, {32}).unsqueeze(1) == arange(0, 10).unsqueeze(0))
                        .to(DType::Float32)
                        .to(device);
    for (Tensor& p : params) {
      p = p.to(device).detach();
      p.requires_grad_();
    }
    Tensor h = tanh(matmul(x, params[0].t()) + params[1]);
    Tensor logp = log_softmax(matmul(h, params[2].t()) + params[3], 1);
    Tensor conv = max_pool2d(relu(conv2d(img, params[4], Tensor(), 1, 1)), 2, 2);
    Tensor loss = -(logp * onehot).sum(1).mean() + softmax(conv.flatten(1), 1).max(1).sum() +
                  (conv * conv).mean();
    Run r;
    for (const Tensor& g : grad({loss}, params)) {
      EXPECT_EQ(g.device(), device);
      r.grads.push_back(g.to_vector<double>());
    }
    r.loss = loss.item<double>();
    return r;
  };
  const Run cpu = run(Device::cpu());
  const Run gpu = run(Device::cuda());
  EXPECT_NEAR(gpu.loss, cpu.loss, 1e-4 * std::fabs(cpu.loss));
  ASSERT_EQ(gpu.grads.size(), cpu.grads.size());
  for (size_t i = 0; i < cpu.grads.size(); ++i) {
    expect_close(gpu.grads[i], cpu.grads[i], absl::StrCat("gradient of parameter ", i), 1e-4);
  }
}

TEST(CudaDevice, LargeChainIsCorrect) {
  SKIP_WITHOUT_GPU();
  Tensor x = randn({1 << 24}), y = randn({1 << 24});
  expect_same_on_gpu(
      {x, y},
      [](const std::vector<Tensor>& v) {
        return tanh(v[0] * 0.5f + v[1]) * sigmoid(v[0]) + exp(-v[0] * v[0]);
      },
      "chain of 16M", 1e-5);
}

}  // namespace
}  // namespace smelt
