// conv2d and max_pool2d (the Window ops of ir/ops/conv.cpp): hand-computed values, compiled
// results and gradients against the reference evaluator and finite differences, PyTorch's
// tie and NaN rules, eager mode, errors, and how few calls a conv step compiles to.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/reference.h"
#include "runtime/conv_direct.h"
#include "runtime/program.h"
#include "runtime/thread_pool.h"
#include "tests/common/gradcheck.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

// [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]] as [1, 1, 4, 4].
Tensor grid() { return arange(16).reshape({1, 1, 4, 4}).to(DType::Float32); }

TEST(Conv2d, SumsWindows) {
  Tensor x = grid();
  expect_tensor(conv2d(x, ones({1, 1, 2, 2})), {1, 1, 3, 3}, {10, 14, 18, 26, 30, 34, 42, 46, 50});
  expect_tensor(conv2d(x, ones({1, 1, 2, 2}), tensor({1.f}), 2), {1, 1, 2, 2}, {11, 19, 43, 51});
  // x[i][j] - x[i+1][j+1] is -5 everywhere.
  Tensor diag = tensor({{1.f, 0.f}, {0.f, -1.f}}).reshape({1, 1, 2, 2});
  expect_tensor(conv2d(x, diag), {1, 1, 3, 3}, std::vector<double>(9, -5));
  // Zero padding: a 3x3 kernel of ones over a padded 2x2 input sees all four values.
  Tensor small = tensor({{1.f, 2.f}, {3.f, 4.f}}).reshape({1, 1, 2, 2});
  expect_tensor(conv2d(small, ones({1, 1, 3, 3}), Tensor(), 1, 1), {1, 1, 2, 2}, {10, 10, 10, 10});
}

TEST(Conv2d, ChannelsBatchesAndBias) {
  // Channels [[1, 2], [3, 4]] and [[5, 6], [7, 8]]; output 0 copies channel 0, output 1 adds both.
  Tensor x = arange(1, 9).reshape({1, 2, 2, 2}).to(DType::Float32);
  Tensor w = tensor({{1.f, 0.f}, {1.f, 1.f}}).reshape({2, 2, 1, 1});
  expect_tensor(conv2d(x, w), {1, 2, 2, 2}, {1, 2, 3, 4, 6, 8, 10, 12});
  expect_tensor(conv2d(x, w, tensor({0.f, -6.f})), {1, 2, 2, 2}, {1, 2, 3, 4, 0, 2, 4, 6});
  Tensor batch = cat({x, x * 2.f});
  EXPECT_EQ(conv2d(batch, w).shape(), (std::vector<int64_t>{2, 2, 2, 2}));
  expect_tensor(conv2d(batch, w).slice(0, 1), {1, 2, 2, 2}, {2, 4, 6, 8, 12, 16, 20, 24});
  // Unbatched input.
  expect_tensor(conv2d(x.squeeze(0), w), {2, 2, 2}, {1, 2, 3, 4, 6, 8, 10, 12});
}

TEST(Conv2d, Errors) {
  Tensor x = grid();
  expect_error(
      [&] {
        conv2d(x, ones({1, 2, 2, 2}));
      },
      {"conv2d: input [1, 1, 4, 4] has 1 channels but weight [1, 2, 2, 2] expects 2"});
  expect_error([&] { conv2d(x.flatten(), ones({1, 1, 2, 2})); }, {"conv2d: input must be 4-d"});
  expect_error([&] { conv2d(x, ones({1, 1, 5, 5})); }, {"conv2d:", "larger than the padded"});
  expect_error([&] { conv2d(x, ones({1, 1, 2, 2}), ones({2})); }, {"conv2d: bias must be [1]"});
  expect_error([&] { conv2d(x, ones({1, 1, 2, 2}), Tensor(), 0); }, {"conv2d: stride"});
  expect_error(
      [] {
        conv2d(zeros({1, 1, 2, 2}, DType::Int64), zeros({1, 1, 1, 1}, DType::Int64));
      },
      {"conv2d: needs a floating dtype"});
}

TEST(MaxPool2d, Windows) {
  Tensor x = grid();
  expect_tensor(max_pool2d(x, 2), {1, 1, 2, 2}, {5, 7, 13, 15});
  expect_tensor(max_pool2d(x, 2, 1), {1, 1, 3, 3}, {5, 6, 7, 9, 10, 11, 13, 14, 15});
  expect_tensor(max_pool2d(-x, 2, 2, 1), {1, 1, 3, 3}, {0, -1, -3, -4, -5, -7, -12, -13, -15});
  expect_tensor(max_pool2d(x.squeeze(0), 4), {1, 1, 1}, {15});
  expect_tensor(max_pool2d(x, 3), {1, 1, 1, 1}, {10});  // floor mode: one window
  expect_error([&] { max_pool2d(x, 2, 2, 2); }, {"max_pool2d: padding 2 must be at most half"});
  expect_error([&] { max_pool2d(x, 5); }, {"max_pool2d:", "larger than the padded"});
}

std::vector<double> random_values(int64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}

Tensor random_tensor(const std::vector<int64_t>& shape, DType dtype, std::mt19937_64& rng) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return from_vector(random_values(n, rng), shape).to(dtype);
}

// Values of `t` (pending) from the reference evaluator, then from the compiled program.
void expect_matches_reference(const Tensor& t, double tol) {
  absl::StatusOr<std::vector<ir::RefTensor>> want = ir::reference_evaluate({t.impl()->node()});
  ASSERT_TRUE(want.ok()) << want.status();
  const std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), (*want)[0].f.size());
  for (size_t k = 0; k < got.size(); ++k) {
    ASSERT_NEAR(got[k], (*want)[0].f[k], tol) << "element " << k;
  }
}

struct ConvCase {
  int64_t n, c, h, w, o, kh, kw, stride, pad;
  DType dtype;
};

// Non-square images and kernels, strides 1-2, padding 0-2, batch and channel 1, odd sizes.
const ConvCase kConvCases[] = {
    {2, 3, 7, 5, 4, 3, 3, 1, 1, DType::Float32}, {1, 1, 6, 9, 1, 2, 3, 2, 0, DType::Float32},
    {3, 2, 5, 5, 3, 3, 1, 2, 2, DType::Float64}, {1, 4, 9, 7, 2, 5, 3, 1, 2, DType::Float64},
    {2, 1, 4, 4, 5, 1, 1, 1, 0, DType::Float32}, {1, 3, 11, 6, 2, 3, 2, 2, 1, DType::Float32},
};

TEST(Conv2dOp, ForwardAndGradientsMatchTheReference) {
  std::mt19937_64 rng(3);
  for (const ConvCase& c : kConvCases) {
    SCOPED_TRACE(::testing::Message()
                 << "N" << c.n << " C" << c.c << " " << c.h << "x" << c.w << " O" << c.o << " k"
                 << c.kh << "x" << c.kw << " s" << c.stride << " p" << c.pad);
    const double tol = c.dtype == DType::Float64 ? 1e-10 : 1e-4;
    Tensor x = random_tensor({c.n, c.c, c.h, c.w}, c.dtype, rng).requires_grad_();
    Tensor w = random_tensor({c.o, c.c, c.kh, c.kw}, c.dtype, rng).requires_grad_();
    Tensor b = random_tensor({c.o}, c.dtype, rng).requires_grad_();
    Tensor y = conv2d(x, w, b, c.stride, c.pad);
    // A weighted sum, so a transposed or shuffled gradient cannot hide.
    Tensor loss = (relu(y) * random_tensor(y.shape(), c.dtype, rng)).sum();
    std::vector<Tensor> grads = grad({loss}, {x, w, b});
    expect_matches_reference(y, tol);
    for (const Tensor& g : grads) expect_matches_reference(g, tol);
  }
}

TEST(MaxPool2dOp, ForwardAndGradientMatchTheReference) {
  std::mt19937_64 rng(4);
  struct Case {
    std::vector<int64_t> shape;
    int64_t kernel, stride, pad;
    DType dtype;
  };
  for (const Case& c :
       {Case{{2, 3, 8, 6}, 2, 2, 0, DType::Float32}, Case{{1, 1, 7, 9}, 3, 2, 1, DType::Float64},
        Case{{2, 2, 5, 5}, 3, 1, 1, DType::Float32}, Case{{1, 2, 9, 4}, 4, 3, 2, DType::Float64},
        Case{{2, 2, 7, 5}, 2, 2, 0, DType::Float64}}) {
    Tensor x = random_tensor(c.shape, c.dtype, rng).requires_grad_();
    Tensor y = max_pool2d(x, c.kernel, c.stride, c.pad);
    Tensor loss = (y * random_tensor(y.shape(), c.dtype, rng)).sum();
    std::vector<Tensor> grads = grad({loss}, {x});
    expect_matches_reference(y, 1e-6);
    expect_matches_reference(grads[0], 1e-6);
  }
}

using testing::gradcheck;

TEST(Conv2dOp, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(5);
  for (int64_t stride : {1, 2}) {
    gradcheck(
        [&](const auto& in) { return conv2d(in[0], in[1], in[2], stride, 1).tanh().sum(); },
        {random_tensor({2, 2, 5, 4}, DType::Float64, rng),
         random_tensor({3, 2, 3, 2}, DType::Float64, rng), random_tensor({3}, DType::Float64, rng)},
        1e-6);
  }
}

TEST(MaxPool2dOp, GradientMatchesFiniteDifferences) {
  // Distinct values (a shuffled range), so no window has a tie the step could flip.
  std::vector<double> v(2 * 2 * 6 * 5);
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), std::mt19937_64(6));
  for (double& x : v) x = x / 7.0 - 4.0;
  for (int64_t pad : {0, 1}) {
    gradcheck([&](const auto& in) { return max_pool2d(in[0], 3, 2, pad).pow(2.f).sum(); },
              {from_vector(v, {2, 2, 6, 5})}, 1e-6);
  }
}

TEST(MaxPool2dOp, TiesGoToTheFirstElementAndNanPropagates) {
  // Every window of ones ties: PyTorch gives each window's gradient to its first element.
  Tensor x = ones({1, 1, 3, 3}).requires_grad_();
  max_pool2d(x, 2, 1).sum().backward();
  expect_tensor(x.grad(), {1, 1, 3, 3}, {1, 1, 0, 1, 1, 0, 0, 0, 0});
  // A later tie does not move the maximum: [2, 5, 5, 1] gives its gradient to the first 5.
  Tensor y = tensor({2.f, 5.f, 5.f, 1.f}).reshape({1, 1, 2, 2}).requires_grad_();
  max_pool2d(y, 2).sum().backward();
  expect_tensor(y.grad(), {1, 1, 2, 2}, {0, 1, 0, 0});
  // NaN wins its window (and only it), as in PyTorch.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor z = tensor({1.f, nan, 3.f, 0.f, 4.f, 5.f}).reshape({1, 1, 1, 6}).requires_grad_();
  Tensor pooled = max_pool2d(z.reshape({1, 1, 2, 3}), 2, 1);
  expect_tensor(pooled, {1, 1, 1, 2}, {nan, nan});
  // In a 2x2 window (the runtime's fast path too) the last NaN takes the gradient.
  Tensor q = tensor({1.f, nan, nan, 0.f}).reshape({1, 1, 2, 2}).requires_grad_();
  Tensor pooled_q = max_pool2d(q, 2);
  expect_tensor(pooled_q, {1, 1, 1, 1}, {nan});
  pooled_q.sum().backward();
  expect_tensor(q.grad(), {1, 1, 2, 2}, {0, 0, 1, 0});
  // The padding never wins, even over -inf.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor m = full({1, 1, 2, 2}, -inf).requires_grad_();
  Tensor pooled_m = max_pool2d(m, 3, 1, 1);
  expect_tensor(pooled_m, {1, 1, 2, 2}, {-inf, -inf, -inf, -inf});
  // ... and a window of -inf gives its gradient to its first in-bounds element.
  pooled_m.sum().backward();
  expect_tensor(m.grad(), {1, 1, 2, 2}, {4, 0, 0, 0});
}

TEST(Conv2dOp, EagerModeMatchesLazy) {
  std::mt19937_64 rng(7);
  Tensor x = random_tensor({2, 3, 6, 5}, DType::Float32, rng);
  Tensor w = random_tensor({4, 3, 3, 3}, DType::Float32, rng);
  Tensor b = random_tensor({4}, DType::Float32, rng);
  auto run = [&](bool eager) {
    testing::EagerScope scope(eager);
    Tensor xs = x.detach().requires_grad_(), ws = w.detach().requires_grad_();
    Tensor loss = max_pool2d(relu(conv2d(xs, ws, b, 1, 1)), 2).sum();
    loss.backward();
    return std::vector<std::vector<double>>{loss.to_vector<double>(), xs.grad().to_vector<double>(),
                                            ws.grad().to_vector<double>()};
  };
  const auto lazy = run(false), eager = run(true);
  for (size_t i = 0; i < lazy.size(); ++i) {
    ASSERT_EQ(lazy[i].size(), eager[i].size());
    for (size_t k = 0; k < lazy[i].size(); ++k) EXPECT_NEAR(lazy[i][k], eager[i][k], 1e-4);
  }
}

TEST(Conv2dOp, MoreErrors) {
  Tensor x = grid();
  expect_error([&] { conv2d(x, ones({1, 1, 2})); }, {"conv2d: weight must be 4-d", "[1, 1, 2]"});
  expect_error(
      [&] {
        conv2d(ones({2, 1, 3, 3}), ones({1, 1, 4, 2}));
      },
      {"conv2d: the 4x2 kernel is larger than the padded input 3x3"});
  expect_error(
      [&] {
        conv2d(x, ones({1, 1, 2, 2}), Tensor(), 1, -1);
      },
      {"conv2d: padding must be >= 0, got -1"});
  expect_error([&] { max_pool2d(x, 2, 0); }, {"max_pool2d: stride must be >= 1, got 0"});
  expect_error([&] { max_pool2d(x.flatten(), 2); }, {"max_pool2d: input must be 4-d"});
  expect_error([&] { max_pool2d(x, 0); }, {"max_pool2d: kernel_size must be >= 1"});
}

TEST(Conv2dOp, ConvBiasReluIsOneLibraryCallAndOneKernel) {
  std::mt19937_64 rng(8);
  Tensor x = random_tensor({4, 3, 8, 8}, DType::Float32, rng);
  Tensor w = random_tensor({5, 3, 3, 3}, DType::Float32, rng);
  Tensor b = random_tensor({5}, DType::Float32, rng);
  eval({x, w, b});
  const runtime::ExecStats before = runtime::exec_stats();
  Tensor y = relu(conv2d(x, w, b, 1, 1));
  y.eval();
  const runtime::ExecStats after = runtime::exec_stats();
  EXPECT_EQ(after.library_calls - before.library_calls, 1u);
  EXPECT_EQ(after.kernels_launched - before.kernels_launched, 1u);  // bias + relu, fused
  // A 2x2 pool is expanded into elementwise ops (compiler/passes/expand_pooling.h): bias, ReLU
  // and pool are one kernel after the conv.
  const runtime::ExecStats mid = runtime::exec_stats();
  max_pool2d(relu(conv2d(x, w, b, 1, 1)), 2).eval();
  const runtime::ExecStats end = runtime::exec_stats();
  EXPECT_EQ(end.library_calls - mid.library_calls, 1u);
  EXPECT_EQ(end.kernels_launched - mid.kernels_launched, 1u);
  // Other windows stay a library call of their own.
  const runtime::ExecStats last = runtime::exec_stats();
  max_pool2d(y, 3, 1).eval();
  EXPECT_EQ(runtime::exec_stats().library_calls - last.library_calls, 1u);
  EXPECT_EQ(runtime::exec_stats().kernels_launched - last.kernels_launched, 0u);
}

// Strides, paddings and dilations that differ by axis (the IR takes them; the public conv2d is
// square and undilated), compiled against the reference, forward and backward.
TEST(Conv2dOp, AsymmetricGeometryMatchesTheReference) {
  std::mt19937_64 rng(9);
  const ir::Attrs attrs = {{"stride", ir::IntList{2, 1}},
                           {"padding", ir::IntList{1, 2}},
                           {"dilation", ir::IntList{1, 2}}};
  Tensor x = random_tensor({2, 3, 9, 7}, DType::Float32, rng).requires_grad_();
  Tensor w = random_tensor({4, 3, 3, 2}, DType::Float32, rng).requires_grad_();
  Tensor y = detail::wrap(detail::make_node(
      ir::OpCode::Conv2d, {detail::node_of(x, "test"), detail::node_of(w, "test")}, attrs));
  std::vector<Tensor> grads = grad({(y * y).sum()}, {x, w});
  expect_matches_reference(y, 1e-4);
  for (const Tensor& g : grads) expect_matches_reference(g, 1e-3);
  ir::Attrs pool = attrs;
  pool.set("kernel_size", ir::IntList{3, 4});
  Tensor p =
      detail::wrap(detail::make_node(ir::OpCode::MaxPool2d, {detail::node_of(x, "test")}, pool));
  expect_matches_reference(p, 1e-6);
  expect_matches_reference(grad({(p * p).sum()}, {x})[0], 1e-5);
}

// conv2d built from attributes ([h, w] pairs), so any geometry can be tested.
Tensor conv_node(const Tensor& x, const Tensor& w, std::vector<int64_t> stride,
                 std::vector<int64_t> padding, std::vector<int64_t> dilation) {
  const ir::Attrs attrs = {{"stride", ir::IntList(stride)},
                           {"padding", ir::IntList(padding)},
                           {"dilation", ir::IntList(dilation)}};
  return detail::wrap(detail::make_node(
      ir::OpCode::Conv2d, {detail::node_of(x, "test"), detail::node_of(w, "test")}, attrs));
}

struct GeometryCase {
  std::vector<int64_t> x, w, stride, padding, dilation;
};

void expect_geometry_matches_reference(const GeometryCase& c, DType dtype, std::mt19937_64& rng) {
  SCOPED_TRACE(::testing::Message()
               << "x " << c.x[0] << "x" << c.x[1] << "x" << c.x[2] << "x" << c.x[3] << " w "
               << c.w[0] << "x" << c.w[1] << "x" << c.w[2] << "x" << c.w[3] << " s " << c.stride[0]
               << "," << c.stride[1] << " p " << c.padding[0] << "," << c.padding[1] << " d "
               << c.dilation[0] << "," << c.dilation[1]);
  const double tol = dtype == DType::Float64 ? 1e-10 : 1e-3;
  Tensor x = random_tensor(c.x, dtype, rng).requires_grad_();
  Tensor w = random_tensor(c.w, dtype, rng).requires_grad_();
  Tensor y = conv_node(x, w, c.stride, c.padding, c.dilation);
  Tensor loss = (y * random_tensor(y.shape(), dtype, rng)).sum();
  std::vector<Tensor> grads = grad({loss}, {x, w});
  expect_matches_reference(y, tol);
  for (const Tensor& g : grads) expect_matches_reference(g, tol);
}

// Small convolutions (one image's product <= 262144 multiply-adds) run image by image on smelt's
// threads; same-size stride-1 ones (OW == W) take im2col's and col2im's flat path. Batch 1 and
// odd batches, dilation, and padding that keeps OW == W but not OH == H.
TEST(Conv2dOp, PerImageGeometriesMatchTheReference) {
  std::mt19937_64 rng(11);
  const GeometryCase cases[] = {
      {{1, 3, 9, 7}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}},   // flat, batch 1
      {{3, 2, 8, 9}, {5, 2, 3, 3}, {1, 1}, {2, 2}, {2, 2}},   // flat, dilated
      {{2, 2, 7, 6}, {3, 2, 3, 5}, {1, 1}, {0, 2}, {1, 1}},   // OW == W, OH < H
      {{3, 2, 6, 7}, {2, 2, 2, 3}, {1, 1}, {2, 1}, {1, 1}},   // OW == W, OH > H
      {{2, 3, 9, 8}, {4, 3, 3, 3}, {2, 1}, {1, 1}, {1, 1}},   // OW == W, stride_h 2
      {{1, 1, 5, 11}, {2, 1, 1, 4}, {1, 3}, {0, 1}, {1, 2}},  // strided, dilated
  };
  for (const GeometryCase& c : cases) {
    expect_geometry_matches_reference(c, DType::Float32, rng);
    expect_geometry_matches_reference(c, DType::Float64, rng);
  }
}

// Larger convolutions (one image's product > 262144 multiply-adds) are one GEMM over the batch,
// with the flat im2col/col2im path when OW == W.
TEST(Conv2dOp, BatchedGeometriesMatchTheReference) {
  std::mt19937_64 rng(12);
  const GeometryCase cases[] = {
      {{2, 8, 16, 12}, {24, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}},  // flat
      {{3, 8, 15, 13}, {20, 8, 3, 3}, {1, 1}, {2, 2}, {2, 2}},  // flat, dilated
      {{1, 8, 17, 13}, {24, 8, 3, 3}, {1, 1}, {0, 1}, {1, 1}},  // OW == W, OH < H, batch 1
      {{2, 8, 33, 31}, {16, 8, 3, 3}, {2, 2}, {1, 0}, {1, 1}},  // strided
  };
  for (const GeometryCase& c : cases) {
    const int64_t oh =
        (c.x[2] + 2 * c.padding[0] - c.dilation[0] * (c.w[2] - 1) - 1) / c.stride[0] + 1;
    const int64_t ow =
        (c.x[3] + 2 * c.padding[1] - c.dilation[1] * (c.w[3] - 1) - 1) / c.stride[1] + 1;
    ASSERT_GT(c.w[0] * oh * ow * c.w[1] * c.w[2] * c.w[3], 262144) << "not the batched path";
    expect_geometry_matches_reference(c, DType::Float32, rng);
    // Float32 stride-1 cases may take the direct kernels (runtime/conv_direct.cpp); float64
    // always runs this path (the same templates).
    expect_geometry_matches_reference(c, DType::Float64, rng);
  }
}

// Float32 stride-1 undilated convolutions with more than 262144 multiply-adds per image run on
// the direct AVX-512 kernels (runtime/conv_direct.cpp) when the batch has an image per thread.
// Output channels that are not whole vectors (40, 50, 70: padded lanes; 70 = a 4-vector chunk and
// a 1-vector one), input channels for the input gradient's lanes (5, 8, 16, 32), positions that
// are not whole blocks or 16 x 16 transposes, 1x1, 2x2 with padding = kernel - 1, 3x5 with
// padding 0 on one axis, and the CNN benchmark's second layer on a small batch.
TEST(Conv2dOp, DirectGeometriesMatchTheReference) {
  std::mt19937_64 rng(14);
  const GeometryCase cases[] = {
      {{4, 8, 13, 11}, {40, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}},
      {{3, 5, 12, 17}, {70, 5, 3, 5}, {1, 1}, {0, 2}, {1, 1}},
      {{4, 16, 9, 10}, {50, 16, 2, 2}, {1, 1}, {1, 1}, {1, 1}},
      {{3, 64, 7, 9}, {80, 64, 1, 1}, {1, 1}, {0, 0}, {1, 1}},
      {{4, 32, 14, 14}, {64, 32, 3, 3}, {1, 1}, {1, 1}, {1, 1}},
  };
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") != 0;
  for (const GeometryCase& c : cases) {
    runtime::WindowCall call;
    call.dtype = DType::Float32;
    call.batch = c.x[0], call.channels = c.x[1], call.in_h = c.x[2], call.in_w = c.x[3];
    call.out_channels = c.w[0], call.kernel_h = c.w[2], call.kernel_w = c.w[3];
    call.pad_h = c.padding[0], call.pad_w = c.padding[1];
    call.out_h = c.x[2] + 2 * c.padding[0] - c.w[2] + 1;
    call.out_w = c.x[3] + 2 * c.padding[1] - c.w[3] + 1;
    const bool direct = avx512 && c.x[0] >= runtime::default_thread_pool().num_threads();
    for (auto op : {runtime::WindowCall::Op::kConv, runtime::WindowCall::Op::kConvBackwardInput,
                    runtime::WindowCall::Op::kConvBackwardWeight}) {
      call.op = op;
      EXPECT_EQ(runtime::direct_conv_applies(call), direct) << "case x[1] = " << c.x[1];
    }
    expect_geometry_matches_reference(c, DType::Float32, rng);
  }
}

// The 2x2 / stride-2 backward's vectorized row (rows of 11 windows: full vectors and a tail),
// with many ties (values from {-1, 0, 1}) and an odd height and width.
// The public dilation against an identity that shares no code with it: a 3x3 kernel with taps
// 2 apart is the 5x5 kernel with zeros between those taps. Forward and gradients also against
// the reference evaluator.
TEST(Conv2d, DilationEqualsASpreadKernel) {
  std::mt19937_64 rng(21);
  Tensor x = random_tensor({2, 3, 9, 8}, DType::Float64, rng).requires_grad_();
  Tensor w = random_tensor({4, 3, 3, 3}, DType::Float64, rng).requires_grad_();
  Tensor b = random_tensor({4}, DType::Float64, rng);
  const std::vector<double> wv = w.to_vector<double>();
  std::vector<double> spread(4 * 3 * 5 * 5, 0.0);
  for (int64_t oc = 0; oc < 12; ++oc) {  // (out, in) pairs
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < 3; ++j) spread[oc * 25 + 2 * i * 5 + 2 * j] = wv[oc * 9 + i * 3 + j];
    }
  }
  Tensor y = conv2d(x, w, b, /*stride=*/2, /*padding=*/2, /*dilation=*/2);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 4, 5, 4}));
  const Tensor want = conv2d(x.detach(), from_vector(spread, {4, 3, 5, 5}), b, 2, 2);
  const std::vector<double> got = y.to_vector<double>(), expected = want.to_vector<double>();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], expected[k], 1e-12) << k;
  Tensor y2 = conv2d(x, w, b, 1, 1, 2);
  std::vector<Tensor> grads = grad({(y2 * y2).sum()}, {x, w});
  expect_matches_reference(y2, 1e-9);
  for (const Tensor& g : grads) expect_matches_reference(g, 1e-8);
}

// groups: against a block-diagonal kernel (output channel o sees only its group's input
// channels), with 2 groups and depthwise (a group per channel), batched and unbatched.
TEST(Conv2d, GroupsEqualABlockDiagonalKernel) {
  std::mt19937_64 rng(22);
  for (const auto& [groups, in, out] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 4, 6}, {4, 4, 4}, {3, 3, 6}}) {
    SCOPED_TRACE(::testing::Message() << "groups=" << groups << " in=" << in << " out=" << out);
    const int64_t in_g = in / groups, out_g = out / groups;
    Tensor x = random_tensor({2, in, 6, 5}, DType::Float32, rng);
    Tensor w = random_tensor({out, in_g, 3, 3}, DType::Float32, rng);
    Tensor b = random_tensor({out}, DType::Float32, rng);
    const std::vector<double> wv = w.to_vector<double>();
    std::vector<double> full(static_cast<size_t>(out * in * 9), 0.0);
    for (int64_t o = 0; o < out; ++o) {
      const int64_t group = o / out_g;
      for (int64_t c = 0; c < in_g; ++c) {
        for (int64_t t = 0; t < 9; ++t) {
          full[(o * in + group * in_g + c) * 9 + t] = wv[(o * in_g + c) * 9 + t];
        }
      }
    }
    const Tensor w_full = from_vector(full, {out, in, 3, 3}).to(DType::Float32);
    const std::vector<double> want = conv2d(x, w_full, b, 1, 1).to_vector<double>();
    const std::vector<double> got = conv2d(x, w, b, 1, 1, 1, groups).to_vector<double>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-4) << k;
    const std::vector<double> unbatched =
        conv2d(x.slice(0, 1, 2).squeeze(0), w, b, 1, 1, 1, groups).to_vector<double>();
    for (size_t k = 0; k < unbatched.size(); ++k) {
      ASSERT_NEAR(unbatched[k], want[want.size() / 2 + k], 1e-4) << k;
    }
  }
}

TEST(Conv2d, GroupedDilatedGradientsMatchFiniteDifferences) {
  manual_seed(23);
  testing::gradcheck(
      [](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in[2], 1, 2, 2, 2).pow(2.0).sum();
      },
      {randn({1, 4, 5, 5}), randn({6, 2, 3, 3}), randn({6})}, 1e-5);
}

// {h, w} pairs through the public functions give the op the same attributes as building it by
// hand (whose values the test above checks against the reference).
TEST(Conv2d, PerAxisGeometryThroughThePublicApi) {
  std::mt19937_64 rng(24);
  Tensor x = random_tensor({2, 3, 9, 7}, DType::Float32, rng);
  Tensor w = random_tensor({4, 3, 3, 2}, DType::Float32, rng);
  const std::vector<double> got =
      conv2d(x, w, Tensor(), {2, 1}, {1, 2}, {1, 2}).to_vector<double>();
  const std::vector<double> want = conv_node(x, w, {2, 1}, {1, 2}, {1, 2}).to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], want[k]) << k;

  Tensor p = max_pool2d(x, {3, 4}, Size2(2, 1), {1, 2});
  ir::Attrs pool = {{"stride", ir::IntList{2, 1}},
                    {"padding", ir::IntList{1, 2}},
                    {"dilation", ir::IntList{1, 1}},
                    {"kernel_size", ir::IntList{3, 4}}};
  Tensor p_want =
      detail::wrap(detail::make_node(ir::OpCode::MaxPool2d, {detail::node_of(x, "test")}, pool));
  EXPECT_EQ(p.shape(), p_want.shape());
  EXPECT_EQ(p.to_vector<float>(), p_want.to_vector<float>());
  EXPECT_EQ(max_pool2d(x, {2, 3}).shape(), (std::vector<int64_t>{2, 3, 4, 2}))
      << "the stride defaults to the kernel's pair";

  expect_error(
      [&] {
        conv2d(x, w, Tensor(), {0, 1});
      },
      {"conv2d: stride must be >= 1, got [0, 1]"});
  expect_error(
      [&] {
        max_pool2d(x, {2, 4}, std::nullopt, {1, 3});
      },
      {"max_pool2d: padding [1, 3] must be at most half the kernel size [2, 4]"});
}

TEST(Conv2d, GroupAndDilationErrors) {
  Tensor x = zeros({1, 4, 5, 5});
  expect_error(
      [&] {
        conv2d(x, ones({4, 3, 3, 3}), Tensor(), 1, 0, 1, 2);
      },
      {"conv2d: input [1, 4, 5, 5] has 4 channels but weight [4, 3, 3, 3] expects 6",
       "3 per group x 2 groups"});
  expect_error(
      [&] {
        conv2d(x, ones({3, 2, 3, 3}), Tensor(), 1, 0, 1, 2);
      },
      {"conv2d: weight [3, 2, 3, 3] has 3 output channels, not a multiple of groups = 2"});
  expect_error(
      [&] {
        conv2d(x, ones({4, 4, 3, 3}), Tensor(), 1, 0, 1, 0);
      },
      {"conv2d: groups must be >= 1, got 0"});
  expect_error(
      [&] {
        conv2d(x, ones({4, 4, 3, 3}), Tensor(), 1, 0, 0);
      },
      {"conv2d: dilation must be >= 1, got 0"});
  expect_error(
      [&] {
        conv2d(x, ones({4, 4, 3, 3}), Tensor(), 1, 0, 3);
      },
      {"conv2d: the 3x3 kernel (dilation 3) is larger than the padded input 5x5"});
}

TEST(MaxPool2dOp, Plain2x2BackwardWithTiesMatchesTheReference) {
  std::mt19937_64 rng(13);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    std::vector<double> v(2 * 3 * 11 * 23);
    std::uniform_int_distribution<int> pick(-1, 1);
    for (double& e : v) e = pick(rng);
    Tensor x = from_vector(v, {2, 3, 11, 23}).to(dtype).requires_grad_();
    Tensor y = max_pool2d(x, 2);
    Tensor gx = grad({(y * random_tensor(y.shape(), dtype, rng)).sum()}, {x})[0];
    expect_matches_reference(y, 0);
    expect_matches_reference(gx, 1e-12);
  }
}

// The backward ops' own VJPs (double backward): the gradient of a gradient against finite
// differences of the first gradient.
TEST(Conv2dOp, DoubleBackward) {
  std::mt19937_64 rng(10);
  const Tensor r = random_tensor({1, 2, 5, 4}, DType::Float64, rng);
  // h(x, w) = <dL/dx, r> + |dL/dw|^2 for L = |conv(x, w)|^2.
  auto h = [&](const Tensor& x, const Tensor& w, bool create_graph) {
    Tensor y = conv2d(x, w, Tensor(), 2, 1);
    std::vector<Tensor> g = grad({(y * y).sum()}, {x, w}, create_graph);
    return (g[0] * r).sum() + (g[1] * g[1]).sum();
  };
  std::vector<Tensor> in = {random_tensor({1, 2, 5, 4}, DType::Float64, rng).requires_grad_(),
                            random_tensor({3, 2, 3, 3}, DType::Float64, rng).requires_grad_()};
  const std::vector<Tensor> analytic = grad({h(in[0], in[1], true)}, in);
  const double eps = 1e-6;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::vector<double> a = analytic[i].to_vector<double>();
    const std::vector<double> base = in[i].to_vector<double>();
    for (size_t k = 0; k < base.size(); ++k) {
      auto at = [&](double delta) {
        std::vector<double> v = base;
        v[k] += delta;
        std::vector<Tensor> moved = {in[0].detach().requires_grad_(),
                                     in[1].detach().requires_grad_()};
        moved[i] = from_vector(v, in[i].shape()).requires_grad_();
        return h(moved[0], moved[1], false).item<double>();
      };
      EXPECT_NEAR(a[k], (at(eps) - at(-eps)) / (2 * eps), 1e-5)
          << "input " << i << " element " << k;
    }
  }
}

TEST(MaxPool2dOp, DoubleBackwardIsAClearError) {
  Tensor x = randn({1, 1, 4, 4}).requires_grad_();
  std::vector<Tensor> g = grad({max_pool2d(x, 2).pow(2.f).sum()}, {x}, /*create_graph=*/true);
  expect_error([&] { grad({g[0].sum()}, {x}); },
               {"max_pool2d_backward: double backward through max_pool2d is not supported"});
}

TEST(MaxPool2dOp, IntegerInputs) {
  Tensor x = arange(16).reshape({1, 1, 4, 4});
  expect_tensor(max_pool2d(x, 2), {1, 1, 2, 2}, {5, 7, 13, 15});
  expect_tensor(max_pool2d(x.to(DType::Int32) * -1, 3, 1, 1), {1, 1, 4, 4},
                {0, 0, -1, -2, 0, 0, -1, -2, -4, -4, -5, -6, -8, -8, -9, -10});
}

}  // namespace
}  // namespace smelt
