// Elementwise ops: values (as PyTorch computes them), broadcasting, type promotion, scalars on
// either side, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Arithmetic, TensorTensor) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  Tensor b = tensor({4.f, 5.f, 6.f});
  expect_tensor(a + b, {3}, {5, 7, 9});
  expect_tensor(a - b, {3}, {-3, -3, -3});
  expect_tensor(a * b, {3}, {4, 10, 18});
  expect_tensor(a / b, {3}, {0.25, 0.4, 0.5});
  expect_tensor(-a, {3}, {-1, -2, -3});
  expect_tensor(neg(a), {3}, {-1, -2, -3});
  EXPECT_EQ((a + b).dtype(), DType::Float32);
}

TEST(Arithmetic, ScalarsOnEitherSide) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  expect_tensor(a + 1.f, {3}, {2, 3, 4});
  expect_tensor(1.f + a, {3}, {2, 3, 4});
  expect_tensor(1.f - a, {3}, {0, -1, -2});
  expect_tensor(a - 1, {3}, {0, 1, 2});
  expect_tensor(2.f * a, {3}, {2, 4, 6});
  expect_tensor(a * 2.0, {3}, {2, 4, 6});
  expect_tensor(6.f / a, {3}, {6, 3, 2});
  expect_tensor(a / 2, {3}, {0.5, 1, 1.5});
  EXPECT_EQ((2.0 * a).dtype(), DType::Float32);  // a double scalar does not widen f32
}

TEST(Broadcasting, NumPyRules) {
  Tensor m = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  expect_tensor(m + tensor({10.f, 20.f, 30.f}), {2, 3}, {11, 22, 33, 14, 25, 36});
  Tensor col = tensor({{1.f}, {2.f}});
  expect_tensor(col + tensor({10.f, 20.f, 30.f}), {2, 3}, {11, 21, 31, 12, 22, 32});
  expect_tensor(tensor({10.f, 20.f, 30.f}) * col, {2, 3}, {10, 20, 30, 20, 40, 60});
  // A 0-d tensor broadcasts to anything.
  expect_tensor(m - scalar_tensor(1.f), {2, 3}, {0, 1, 2, 3, 4, 5});
  // Size-1 dims in the middle stretch too: [2, 1, 3] + [4, 1] -> [2, 4, 3].
  Tensor x = ones({2, 1, 3});
  Tensor y = ones({4, 1});
  EXPECT_EQ((x + y).shape(), (std::vector<int64_t>{2, 4, 3}));
  EXPECT_DOUBLE_EQ((x + y).sum().item<double>(), 48.0);
}

TEST(Broadcasting, ErrorNamesOpAndShapes) {
  Tensor m = zeros({2, 3});
  expect_error([&] { m + zeros({4}); }, {"add: shapes [2, 3] and [4] cannot be broadcast"});
  expect_error([&] { m* zeros({3, 3}); }, {"mul:", "[2, 3]", "[3, 3]"});
  expect_error([&] { m < zeros({2}); }, {"lt:", "[2, 3]", "[2]"});
  expect_error([&] { where(m > 0.f, m, zeros({5})); }, {"where:", "[5]"});
}

TEST(Promotion, TensorTensor) {
  Tensor i32 = from_vector(std::vector<int32_t>{1, 2});
  Tensor i64 = tensor({1, 2});
  Tensor f32 = tensor({1.f, 2.f});
  Tensor f64 = tensor({1.0, 2.0});
  Tensor b = tensor({true, false});
  EXPECT_EQ((i32 + i64).dtype(), DType::Int64);
  EXPECT_EQ((i64 + f32).dtype(), DType::Float32);
  EXPECT_EQ((f32 + f64).dtype(), DType::Float64);
  EXPECT_EQ((b + i32).dtype(), DType::Int32);
  EXPECT_EQ((b * f32).dtype(), DType::Float32);
  expect_tensor(i32 + f64, {2}, {2, 4});
}

TEST(Promotion, ZeroDimTensorsOnlyLiftTheCategory) {
  Tensor i32 = from_vector(std::vector<int32_t>{1, 2});
  Tensor f32 = tensor({1.f, 2.f});
  // int32 tensor + int64 0-d -> int32; f32 + f64 0-d -> f32; int + f64 0-d -> f64.
  Tensor r = i32 + scalar_tensor(5);
  EXPECT_EQ(r.dtype(), DType::Int32);
  expect_tensor(r, {2}, {6, 7});
  EXPECT_EQ((f32 + scalar_tensor(1.0, DType::Float64)).dtype(), DType::Float32);
  EXPECT_EQ((i32 + scalar_tensor(1.0, DType::Float64)).dtype(), DType::Float64);
  // Two 0-d tensors promote normally.
  EXPECT_EQ((scalar_tensor(1) + scalar_tensor(1.0, DType::Float64)).dtype(), DType::Float64);
}

TEST(Promotion, WrappedNumbers) {
  Tensor i64 = tensor({1, 2});
  Tensor i32 = from_vector(std::vector<int32_t>{1, 2});
  Tensor f64 = tensor({1.0, 2.0});
  Tensor b = tensor({true, false});
  Tensor r = i64 + 1.5f;
  EXPECT_EQ(r.dtype(), DType::Float32);
  expect_tensor(r, {2}, {2.5, 3.5});
  EXPECT_EQ((f64 * 2.f).dtype(), DType::Float64);
  EXPECT_EQ((i32 + 1).dtype(), DType::Int32);
  EXPECT_EQ((i32 * int64_t{3}).dtype(), DType::Int32);
  Tensor bi = b + 1;
  EXPECT_EQ(bi.dtype(), DType::Int64);
  expect_tensor(bi, {2}, {2, 1});
  EXPECT_EQ((b + 0.5).dtype(), DType::Float32);
  EXPECT_EQ((b + true).dtype(), DType::Bool);
}

TEST(Promotion, TrueDivisionOfIntegersIsFloat32) {
  Tensor r = tensor({1, 2}) / tensor({2, 4});
  EXPECT_EQ(r.dtype(), DType::Float32);
  expect_tensor(r, {2}, {0.5, 0.5});
  Tensor s = tensor({3}) / 2;
  EXPECT_EQ(s.dtype(), DType::Float32);
  EXPECT_FLOAT_EQ(s.item<float>(), 1.5f);
  EXPECT_EQ((tensor({1.0}) / 2).dtype(), DType::Float64);
}

TEST(Promotion, IntegerArithmeticStaysExact) {
  Tensor a = tensor({int64_t{4000000000}, int64_t{-7}});
  Tensor r = a * 2 + 1;
  EXPECT_EQ(r.dtype(), DType::Int64);
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{8000000001, -13}));
}

TEST(Bool, ArithmeticIsLogic) {
  Tensor a = tensor({true, true, false, false});
  Tensor b = tensor({true, false, true, false});
  EXPECT_EQ((a + b).to_vector<bool>(), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ((a * b).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ((a + b).dtype(), DType::Bool);
  expect_error([&] { a - b; }, {"sub:", "bool"});
  expect_error([&] { -a; }, {"neg:", "bool", "logical_not"});
}

TEST(Comparisons, GiveBool) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  Tensor b = tensor({3.f, 2.f, 1.f});
  EXPECT_EQ((a == b).to_vector<bool>(), (std::vector<bool>{false, true, false}));
  EXPECT_EQ((a != b).to_vector<bool>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ((a < b).to_vector<bool>(), (std::vector<bool>{true, false, false}));
  EXPECT_EQ((a <= b).to_vector<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ((a > b).to_vector<bool>(), (std::vector<bool>{false, false, true}));
  EXPECT_EQ((a >= b).to_vector<bool>(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ((a > b).dtype(), DType::Bool);
  EXPECT_EQ((a > 1.5f).to_vector<bool>(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ((2.f >= a).to_vector<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ((a == 2).to_vector<bool>(), (std::vector<bool>{false, true, false}));
  // Compared in the promoted dtype: 1 < 1.5 is true for an integer tensor.
  EXPECT_EQ((tensor({1, 2}) < 1.5f).to_vector<bool>(), (std::vector<bool>{true, false}));
  // NaN compares false except with !=.
  Tensor n = tensor({NAN});
  EXPECT_FALSE((n == n).item<bool>());
  EXPECT_TRUE((n != n).item<bool>());
}

TEST(Logical, NonzeroIsTrue) {
  Tensor a = tensor({0.f, 1.f, 2.f});
  EXPECT_EQ(logical_not(a).to_vector<bool>(), (std::vector<bool>{true, false, false}));
  Tensor b = tensor({true, true, false});
  EXPECT_EQ(logical_and(a, b).to_vector<bool>(), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(logical_or(a, b).to_vector<bool>(), (std::vector<bool>{true, true, true}));
}

TEST(Unary, Values) {
  expect_tensor(exp(tensor({0.f, 1.f})), {2}, {1.0, 2.718281828459045});
  expect_tensor(log(tensor({1.f, 2.718281828f})), {2}, {0.0, 1.0});
  expect_tensor(log(tensor({0.f, -1.f})), {2}, {-INFINITY, kNaN});
  expect_tensor(sqrt(tensor({4.f, 9.f})), {2}, {2, 3});
  expect_tensor(rsqrt(tensor({4.f, 0.25f})), {2}, {0.5, 2});
  expect_tensor(abs(tensor({-1.5f, 2.f})), {2}, {1.5, 2});
  expect_tensor(tanh(tensor({0.f, 1.f})), {2}, {0.0, 0.7615941559557649});
  expect_tensor(sigmoid(tensor({0.f, 2.f})), {2}, {0.5, 0.8807970779778823});
  expect_tensor(relu(tensor({-1.f, 0.f, 2.f})), {3}, {0, 0, 2});
  expect_tensor(sin(tensor({0.f, 1.5707963267948966f})), {2}, {0, 1});
  expect_tensor(cos(tensor({0.f, 3.141592653589793f})), {2}, {1, -1});
  expect_tensor(sign(tensor({-2.f, 0.f, 3.f})), {3}, {-1, 0, 1});
  // Method forms.
  Tensor a = tensor({1.f, 4.f});
  expect_tensor(a.sqrt().exp().log(), {2}, {1, 2});
  expect_tensor(a.neg().abs().relu(), {2}, {1, 4});
}

TEST(Unary, FloatFunctionsOfIntegersAreFloat32) {
  Tensor i = tensor({0, 1});
  for (const Tensor& t : {exp(i), log(i), sqrt(i), rsqrt(i), tanh(i), sigmoid(i), sin(i), cos(i)}) {
    EXPECT_EQ(t.dtype(), DType::Float32);
  }
  expect_tensor(exp(i), {2}, {1.0, 2.718281828459045});
  EXPECT_EQ(sqrt(tensor({true})).dtype(), DType::Float32);
  // Float64 stays Float64.
  EXPECT_EQ(exp(tensor({1.0})).dtype(), DType::Float64);
}

TEST(Unary, IntegerFunctionsKeepTheirDtype) {
  Tensor i = tensor({-3, 0, 4});
  EXPECT_EQ(abs(i).dtype(), DType::Int64);
  EXPECT_EQ(abs(i).to_vector<int64_t>(), (std::vector<int64_t>{3, 0, 4}));
  EXPECT_EQ(relu(i).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 4}));
  EXPECT_EQ((-i).to_vector<int64_t>(), (std::vector<int64_t>{3, 0, -4}));
  EXPECT_EQ(sign(tensor({true, false})).to_vector<bool>(), (std::vector<bool>{true, false}));
}

TEST(Unary, BoolErrors) {
  Tensor b = tensor({true});
  expect_error([&] { abs(b); }, {"abs:", "bool"});
  expect_error([&] { relu(b); }, {"relu:", "bool"});
}

TEST(Pow, ScalarAndTensorExponents) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  expect_tensor(pow(a, 2.f), {3}, {1, 4, 9});
  expect_tensor(a.pow(0.5f), {3}, {1, 1.4142135623730951, 1.7320508075688772});
  expect_tensor(pow(tensor({2.f, 3.f}), tensor({3.f, 2.f})), {2}, {8, 9});
  expect_tensor(pow(2.f, a), {3}, {2, 4, 8});
  Tensor ip = pow(tensor({2, 3}), 2);
  EXPECT_EQ(ip.dtype(), DType::Int64);
  EXPECT_EQ(ip.to_vector<int64_t>(), (std::vector<int64_t>{4, 9}));
  EXPECT_EQ(pow(tensor({2, 3}), 0.5f).dtype(), DType::Float32);
  expect_error([] { pow(tensor({2, 3}), -1); }, {"pow:", "negative integer powers"});
}

TEST(MaximumMinimum, Values) {
  Tensor a = tensor({1.f, 5.f, 3.f});
  Tensor b = tensor({4.f, 2.f, 6.f});
  expect_tensor(maximum(a, b), {3}, {4, 5, 6});
  expect_tensor(minimum(a, b), {3}, {1, 2, 3});
  expect_tensor(maximum(a, 2.f), {3}, {2, 5, 3});
  expect_tensor(minimum(2, a), {3}, {1, 2, 2});
  expect_tensor(maximum(tensor({NAN, 1.f}), tensor({0.f, 0.f})), {2}, {kNaN, 1});
  // Broadcasting.
  expect_tensor(maximum(tensor({{0.f}, {4.f}}), b), {2, 3}, {4, 2, 6, 4, 4, 6});
}

TEST(Where, SelectsAndBroadcasts) {
  Tensor cond = tensor({true, false, true});
  Tensor a = tensor({1.f, 2.f, 3.f});
  Tensor b = tensor({10.f, 20.f, 30.f});
  expect_tensor(where(cond, a, b), {3}, {1, 20, 3});
  expect_tensor(where(a > 1.5f, a, 0.f), {3}, {0, 2, 3});
  expect_tensor(where(a > 1.5f, -1.f, a), {3}, {1, -1, -1});
  // cond [2, 1] with a [3] -> [2, 3].
  Tensor c2 = tensor({{true}, {false}});
  expect_tensor(where(c2, a, b), {2, 3}, {1, 2, 3, 10, 20, 30});
  // Scalars give PyTorch's dtypes: ints Int64, floats Float32; a tensor decides within a
  // category.
  EXPECT_EQ(where(cond, 1, 0).dtype(), DType::Int64);
  EXPECT_EQ(where(cond, 1.f, 0).dtype(), DType::Float32);
  EXPECT_EQ(where(cond, tensor({1.0, 2.0, 3.0}), 0.f).dtype(), DType::Float64);
  EXPECT_EQ(where(cond, tensor({1, 2, 3}), a).dtype(), DType::Float32);
  expect_error([&] { where(a, a, b); }, {"where: the condition must be a bool tensor, got f32"});
}

TEST(Clamp, Values) {
  Tensor a = tensor({-1.f, 0.5f, 2.f});
  expect_tensor(clamp(a, 0, 1), {3}, {0, 0.5, 1});
  expect_tensor(a.clamp(0.f, 1.f), {3}, {0, 0.5, 1});
  expect_tensor(clamp_min(a, 0.f), {3}, {0, 0.5, 2});
  expect_tensor(clamp_max(a, 0.f), {3}, {-1, 0, 0});
  // lo > hi: everything becomes hi (PyTorch).
  expect_tensor(clamp(a, 3.f, 2.f), {3}, {2, 2, 2});
  Tensor i = clamp(tensor({-5, 5, 10}), 0, 6);
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{0, 5, 6}));
  expect_tensor(clamp(a, tensor({0.f}), tensor({1.f, 1.f, 1.5f})), {3}, {0, 0.5, 1.5});
  expect_error([&] { clamp(a, zeros({2}), ones({3})); }, {"clamp:", "[3]", "[2]"});
}

TEST(Elementwise, UndefinedTensorErrors) {
  Tensor undefined;
  EXPECT_FALSE(undefined.defined());
  expect_error([&] { undefined + 1.f; }, {"add:", "undefined"});
  expect_error([&] { exp(undefined); }, {"exp:", "undefined"});
  expect_error([&] { undefined.shape(); }, {"undefined"});
}

TEST(Rounding, ValuesAsPyTorchComputesThem) {
  Tensor x = tensor({-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 2.7f, -2.7f, 0.f});
  expect_tensor(floor(x), {9}, {-3, -2, -1, 0, 1, 2, 2, -3, 0});
  expect_tensor(x.ceil(), {9}, {-2, -1, -0.0, 1, 2, 3, 3, -2, 0});
  expect_tensor(round(x), {9}, {-2, -2, -0.0, 0, 2, 2, 3, -3, 0});  // halves to even
  expect_tensor(x.trunc(), {9}, {-2, -1, -0.0, 0, 1, 2, 2, -2, 0});
  // The signs of zero results are IEEE's (and PyTorch's): round(-0.5) is -0.
  EXPECT_TRUE(std::signbit(round(x).to_vector<float>()[2]));
  EXPECT_FALSE(std::signbit(round(x).to_vector<float>()[3]));
  // Infinities and NaN go through.
  Tensor s = tensor({std::numeric_limits<double>::infinity(), kNaN});
  for (Tensor r : {floor(s), ceil(s), round(s), trunc(s)}) {
    const std::vector<double> v = r.to_vector<double>();
    EXPECT_TRUE(std::isinf(v[0]) && v[0] > 0);
    EXPECT_TRUE(std::isnan(v[1]));
    EXPECT_EQ(r.dtype(), DType::Float64);
  }
}

TEST(Rounding, FusesWithItsNeighbours) {
  // One kernel: floor of a product, scaled, as quantization code writes it.
  Tensor x = randn({1000});
  const std::vector<float> in = x.to_vector<float>();
  const std::vector<float> got = (floor(x * 4.0f) / 4.0f).to_vector<float>();
  for (size_t k = 0; k < in.size(); ++k) EXPECT_EQ(got[k], std::floor(in[k] * 4.0f) / 4.0f) << k;
}

TEST(Rounding, DecimalsAndFrac) {
  Tensor x = tensor({1.125, -2.675, 1234.5678, 0.5});
  // -2.675 * 100 is exactly -267.5 in double, whose even neighbour is -268 (PyTorch: -2.68 too).
  expect_tensor(round(x, 2), {4}, {1.12, -2.68, 1234.57, 0.5}, 1e-12);
  expect_tensor(x.round(1), {4}, {1.1, -2.7, 1234.6, 0.5}, 1e-12);
  expect_tensor(round(x, -2), {4}, {0, -0.0, 1200, 0});
  expect_tensor(x.round(0), {4}, {1, -3, 1235, 0});
  expect_tensor(frac(tensor({2.75f, -2.75f, 3.f})), {3}, {0.75, -0.75, 0});
  expect_tensor(tensor({-1.25}).frac(), {1}, {-0.25});
}

TEST(Rounding, IntegersComeBackUnchangedAndBoolIsRefused) {
  Tensor i = tensor<int64_t>({-3, 0, 7});
  for (Tensor r : {floor(i), ceil(i), round(i), trunc(i)}) {
    EXPECT_EQ(r.dtype(), DType::Int64);
    EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{-3, 0, 7}));
  }
  EXPECT_EQ(round(i.to(DType::Int32)).dtype(), DType::Int32);
  Tensor b = tensor<int64_t>({1, 0}).to(DType::Bool);
  expect_error([&] { floor(b); }, {"floor", "bool"});
  expect_error([&] { b.round(); }, {"round", "bool"});
  expect_error([&] { round(i, 1); }, {"round", "decimals = 1", "floating", "i64"});
  expect_error([&] { frac(i); }, {"frac", "floating", "i64"});
  expect_error([&] { floor(Tensor()); }, {"floor", "undefined"});
}

TEST(Rounding, GradientsAreZeroExceptFrac) {
  Tensor x = tensor({-1.3f, 0.2f, 2.5f}).requires_grad_();
  (floor(x) * 2.0f + ceil(x) + round(x) + trunc(x) + round(x, 1)).sum().backward();
  expect_tensor(x.grad(), {3}, {0, 0, 0});
  Tensor y = tensor({-1.3f, 0.2f, 2.5f}).requires_grad_();
  (frac(y) * 3.0f).sum().backward();
  expect_tensor(y.grad(), {3}, {3, 3, 3});
}

}  // namespace
}  // namespace smelt
