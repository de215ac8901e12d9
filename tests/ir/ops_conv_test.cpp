// conv2d, max_pool2d and their backward ops in the registry: type rules and their errors, hand
// values of the reference evaluator, and the backward ops as exact adjoints of the forward one.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "ir/op_registry.h"
#include "ir/reference.h"
#include "ir/window.h"
#include "tests/ir/op_testing.h"

namespace smelt::ir {
namespace {

using testing::eval;
using testing::input;
using testing::make;
using testing::make_error;
using testing::placeholder;
using testing::type_of;
using testing::values;

Attrs window(IntList stride, IntList padding, IntList dilation = {1, 1}) {
  return {{"stride", stride}, {"padding", padding}, {"dilation", dilation}};
}
Attrs with(Attrs a, const char* name, IntList v) {
  a.set(name, v);
  return a;
}

TEST(ConvOps, AreWindowLibraryOps) {
  for (OpCode op : {OpCode::Conv2d, OpCode::Conv2dBackwardInput, OpCode::Conv2dBackwardWeight,
                    OpCode::MaxPool2d, OpCode::MaxPool2dBackward}) {
    EXPECT_EQ(op_def(op).kind, OpKind::Window) << op_name(op);
    EXPECT_NE(op_def(op).vjp, nullptr) << op_name(op);
  }
}

TEST(ConvOps, TypeRules) {
  const NodePtr x = placeholder(DType::Float32, {2, 3, 7, 5});
  const NodePtr w = placeholder(DType::Float32, {4, 3, 3, 2});
  EXPECT_EQ(type_of(OpCode::Conv2d, {x, w}, window({1, 1}, {0, 0})).shape, (Shape{2, 4, 5, 4}));
  EXPECT_EQ(type_of(OpCode::Conv2d, {x, w}, window({2, 1}, {1, 0}, {2, 1})).shape,
            (Shape{2, 4, 3, 4}));
  const NodePtr g = placeholder(DType::Float32, {2, 4, 5, 4});
  EXPECT_EQ(type_of(OpCode::Conv2dBackwardInput, {g, w},
                    with(window({1, 1}, {0, 0}), "input_size", {7, 5}))
                .shape,
            (Shape{2, 3, 7, 5}));
  EXPECT_EQ(type_of(OpCode::Conv2dBackwardWeight, {x, g},
                    with(window({1, 1}, {0, 0}), "kernel_size", {3, 2}))
                .shape,
            (Shape{4, 3, 3, 2}));
  const Attrs pool = with(window({2, 2}, {1, 1}), "kernel_size", {3, 3});
  EXPECT_EQ(type_of(OpCode::MaxPool2d, {x}, pool).shape, (Shape{2, 3, 4, 3}));
  EXPECT_EQ(type_of(OpCode::MaxPool2dBackward, {x, placeholder(DType::Float32, {2, 3, 4, 3})}, pool)
                .shape,
            x->shape());
}

TEST(ConvOps, TypeErrorsNameTheOpAndShapes) {
  const NodePtr x = placeholder(DType::Float32, {2, 3, 7, 5});
  EXPECT_EQ(make_error(OpCode::Conv2d, {x, placeholder(DType::Float32, {4, 2, 3, 3})},
                       window({1, 1}, {0, 0})),
            "conv2d: input [2, 3, 7, 5] has 3 channels but weight [4, 2, 3, 3] expects 2");
  EXPECT_EQ(make_error(OpCode::Conv2d, {x, placeholder(DType::Float32, {4, 3, 9, 3})},
                       window({1, 1}, {0, 0})),
            "conv2d: the 9x3 kernel (dilation [1, 1]) is larger than the 7x5 input padded by "
            "[0, 0]");
  EXPECT_EQ(make_error(OpCode::Conv2d, {x, placeholder(DType::Float64, {4, 3, 3, 3})},
                       window({1, 1}, {0, 0})),
            "conv2d: operand dtypes f32 and f64 differ (the IR needs explicit cast)");
  EXPECT_EQ(make_error(OpCode::Conv2d, {x, placeholder(DType::Float32, {4, 3, 3, 3})},
                       window({0, 1}, {0, 0})),
            "conv2d: stride must be two numbers >= 1 ([h, w]), got [0, 1]");
  EXPECT_EQ(make_error(
                OpCode::Conv2d,
                {placeholder(DType::Float32, {3, 7, 5}), placeholder(DType::Float32, {4, 3, 3, 3})},
                window({1, 1}, {0, 0})),
            "conv2d: input must be 4-d, got [3, 7, 5]");
  EXPECT_EQ(make_error(OpCode::MaxPool2d, {x}, with(window({1, 1}, {2, 0}), "kernel_size", {3, 3})),
            "max_pool2d: padding [2, 0] must be at most half the kernel size [3, 3]");
  EXPECT_EQ(make_error(OpCode::MaxPool2dBackward, {x, placeholder(DType::Float32, {2, 3, 1, 1})},
                       with(window({1, 1}, {0, 0}), "kernel_size", {3, 3})),
            "max_pool2d_backward: gradient [2, 3, 1, 1] does not match the pooled shape "
            "[2, 3, 5, 3]");
  EXPECT_EQ(make_error(OpCode::Conv2dBackwardInput,
                       {placeholder(DType::Float32, {2, 4, 5, 5}),
                        placeholder(DType::Float32, {4, 3, 3, 3})},
                       with(window({1, 1}, {0, 0}), "input_size", {7, 5})),
            "conv2d_backward_input: gradient [2, 4, 5, 5] is not the output grid 5x3 of a 7x5 "
            "input");
}

TEST(ConvOps, ReferenceValues) {
  // x = 0..15 as 4x4; a 2x2 kernel of ones, dilation 2: sums of x[i][j], x[i][j+2], x[i+2][j],
  // x[i+2][j+2].
  const NodePtr x =
      input(DType::Float64, {1, 1, 4, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  const NodePtr ones = input(DType::Float64, {1, 1, 2, 2}, {1, 1, 1, 1});
  EXPECT_EQ(values(eval(make(OpCode::Conv2d, {x, ones}, window({1, 1}, {0, 0}, {2, 2})))),
            (std::vector<double>{20, 24, 36, 40}));
  // Stride [1, 3], padding [0, 1]: columns -1..0 and 2..3.
  EXPECT_EQ(values(eval(make(OpCode::Conv2d, {x, ones}, window({1, 3}, {0, 1})))),
            (std::vector<double>{4, 18, 12, 34, 20, 50}));
  // Pooling with dilation 2: the max of the corners of each 3x3 span.
  EXPECT_EQ(values(eval(make(OpCode::MaxPool2d, {x},
                             with(window({1, 1}, {0, 0}, {2, 2}), "kernel_size", {2, 2})))),
            (std::vector<double>{10, 11, 14, 15}));
}

// <conv(x, w), g> = <x, conv_backward_input(g, w)> = <w, conv_backward_weight(x, g)>: the
// backward ops are the exact adjoints, for strides, paddings and dilations that differ by axis.
TEST(ConvOps, BackwardOpsAreAdjoints) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> dist(-1, 1);
  auto random = [&](Shape s) {
    std::vector<double> v(numel(s));
    for (double& e : v) e = dist(rng);
    return input(DType::Float64, s, v);
  };
  auto dot = [](const RefTensor& a, const RefTensor& b) {
    double s = 0;
    for (size_t k = 0; k < a.f.size(); ++k) s += a.f[k] * b.f[k];
    return s;
  };
  for (const Attrs& a :
       {window({1, 1}, {0, 0}), window({2, 3}, {1, 2}), window({1, 2}, {2, 0}, {2, 1})}) {
    const NodePtr x = random({2, 3, 9, 8});
    const NodePtr w = random({4, 3, 3, 2});
    const NodePtr y = make(OpCode::Conv2d, {x, w}, a);
    const NodePtr g = random(y->shape());
    const NodePtr dx = make(OpCode::Conv2dBackwardInput, {g, w}, with(a, "input_size", {9, 8}));
    const NodePtr dw = make(OpCode::Conv2dBackwardWeight, {x, g}, with(a, "kernel_size", {3, 2}));
    const double forward = dot(eval(y), eval(g));
    EXPECT_NEAR(dot(eval(x), eval(dx)), forward, 1e-10);
    EXPECT_NEAR(dot(eval(w), eval(dw)), forward, 1e-10);
  }
}

TEST(ConvOps, WindowGeometry) {
  EXPECT_EQ(window_out_size(7, 3, 2, 1, 1), 4);
  EXPECT_EQ(window_out_size(7, 3, 1, 0, 3), 1);
  EXPECT_EQ(window_out_size(2, 3, 1, 0, 1), 0);
  const WindowGeometry g =
      window_geometry(OpCode::Conv2dBackwardInput, {Shape{2, 4, 5, 3}, Shape{4, 3, 3, 3}},
                      Shape{2, 3, 7, 5}, with(window({1, 1}, {0, 0}), "input_size", {7, 5}));
  EXPECT_EQ(g.batch, 2);
  EXPECT_EQ(g.channels, 3);
  EXPECT_EQ(g.out_channels, 4);
  EXPECT_EQ(g.in_h, 7);
  EXPECT_EQ(g.out_w, 3);
}

}  // namespace
}  // namespace smelt::ir
