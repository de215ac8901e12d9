// Elementwise ops: type rules, their errors, reference values (NaN, infinities, integer wrap),
// and that the declared traits hold.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "tests/ir/op_testing.h"

namespace smelt::ir {
namespace {

using testing::eval;
using testing::input;
using testing::input_int;
using testing::make;
using testing::make_error;
using testing::placeholder;
using testing::same_values;
using testing::type_of;
using testing::values;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kE = 2.718281828459045;

std::vector<double> unary(OpCode op, DType dtype, const std::vector<double>& x) {
  return values(eval(make(op, {input(dtype, {static_cast<int64_t>(x.size())}, x)})));
}

std::vector<double> binary(OpCode op, DType dtype, const std::vector<double>& a,
                           const std::vector<double>& b) {
  const Shape shape{static_cast<int64_t>(a.size())};
  return values(eval(make(op, {input(dtype, shape, a), input(dtype, shape, b)})));
}

const OpCode kFloatUnary[] = {OpCode::Exp,   OpCode::Log,     OpCode::Sqrt,  OpCode::Rsqrt,
                              OpCode::Tanh,  OpCode::Sigmoid, OpCode::Sin,   OpCode::Cos,
                              OpCode::Floor, OpCode::Ceil,    OpCode::Round, OpCode::Trunc};
const OpCode kNumericUnary[] = {OpCode::Neg, OpCode::Abs, OpCode::Sign, OpCode::Relu};
const OpCode kComparisons[] = {OpCode::Eq, OpCode::Ne, OpCode::Lt,
                               OpCode::Le, OpCode::Gt, OpCode::Ge};

// ---- unary values ------------------------------------------------------------------------------

TEST(Elementwise, UnaryFloatValues) {
  const DType f = DType::Float64;
  EXPECT_TRUE(
      same_values(unary(OpCode::Neg, f, {1.5, -2, 0, kInf, kNaN}), {-1.5, 2, 0, -kInf, kNaN}));
  EXPECT_TRUE(same_values(unary(OpCode::Abs, f, {-1.5, 2, -kInf, kNaN}), {1.5, 2, kInf, kNaN}));
  // sign(NaN) is 0, as in PyTorch.
  EXPECT_TRUE(same_values(unary(OpCode::Sign, f, {-3, -0.0, 0, 0.25, kInf, -kInf, kNaN}),
                          {-1, 0, 0, 1, 1, -1, 0}));
  EXPECT_TRUE(
      same_values(unary(OpCode::Exp, f, {0, 1, -kInf, kInf, kNaN}), {1, kE, 0, kInf, kNaN}));
  EXPECT_TRUE(same_values(unary(OpCode::Log, f, {1, kE, 0, -1, kInf}), {0, 1, -kInf, kNaN, kInf}));
  EXPECT_TRUE(same_values(unary(OpCode::Sqrt, f, {4, 0, 2.25, -1, kInf}), {2, 0, 1.5, kNaN, kInf}));
  EXPECT_TRUE(
      same_values(unary(OpCode::Rsqrt, f, {4, 0.25, 0, kInf, -1}), {0.5, 2, kInf, 0, kNaN}));
  EXPECT_TRUE(same_values(unary(OpCode::Tanh, f, {0, kInf, -kInf, kNaN}), {0, 1, -1, kNaN}));
  EXPECT_TRUE(
      same_values(unary(OpCode::Sigmoid, f, {0, kInf, -kInf, std::log(3.0)}), {0.5, 1, 0, 0.75}));
  EXPECT_TRUE(same_values(unary(OpCode::Relu, f, {-1, 0, 2.5, -kInf, kInf, kNaN}),
                          {0, 0, 2.5, 0, kInf, kNaN}));
  EXPECT_TRUE(
      same_values(unary(OpCode::Sin, f, {0, std::numbers::pi / 2, -std::numbers::pi / 6, kInf}),
                  {0, 1, -0.5, kNaN}));
  EXPECT_TRUE(same_values(unary(OpCode::Cos, f, {0, std::numbers::pi, std::numbers::pi / 3}),
                          {1, -1, 0.5}));
}

TEST(Elementwise, RoundingValues) {
  const DType f = DType::Float64;
  const std::vector<double> x = {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.7, -2.7, 1e300, kInf, kNaN};
  EXPECT_TRUE(
      same_values(unary(OpCode::Floor, f, x), {-3, -2, -1, 0, 1, 2, 2, -3, 1e300, kInf, kNaN}));
  EXPECT_TRUE(
      same_values(unary(OpCode::Ceil, f, x), {-2, -1, 0, 1, 2, 3, 3, -2, 1e300, kInf, kNaN}));
  // Halves to the even neighbour, as torch.round.
  EXPECT_TRUE(
      same_values(unary(OpCode::Round, f, x), {-2, -2, 0, 0, 2, 2, 3, -3, 1e300, kInf, kNaN}));
  EXPECT_TRUE(
      same_values(unary(OpCode::Trunc, f, x), {-2, -1, 0, 0, 1, 2, 2, -2, 1e300, kInf, kNaN}));
  // The sign of a zero result follows the operand (IEEE), which the compiled kernels match.
  EXPECT_TRUE(std::signbit(unary(OpCode::Round, f, {-0.5})[0]));
  EXPECT_TRUE(std::signbit(unary(OpCode::Ceil, f, {-0.75})[0]));
  EXPECT_FALSE(std::signbit(unary(OpCode::Round, f, {0.5})[0]));
  // 0.49999999999999994 is below a half: it rounds to 0 (a naive floor(x + 0.5) gives 1).
  EXPECT_EQ(unary(OpCode::Round, f, {0.49999999999999994})[0], 0.0);
}

TEST(Elementwise, Float32ResultsAreRounded) {
  // exp(1) in double is not a float; the stored f32 value is.
  const double got = unary(OpCode::Exp, DType::Float32, {1})[0];
  EXPECT_EQ(got, static_cast<double>(static_cast<float>(kE)));
  EXPECT_NE(got, kE);
  const double sum = binary(OpCode::Add, DType::Float32, {0.1}, {0.2})[0];
  EXPECT_EQ(sum, static_cast<double>(0.1f + 0.2f));
}

TEST(Elementwise, UnaryIntegerValues) {
  for (DType t : {DType::Int32, DType::Int64}) {
    EXPECT_EQ(unary(OpCode::Neg, t, {3, -4, 0}), (std::vector<double>{-3, 4, 0}));
    EXPECT_EQ(unary(OpCode::Abs, t, {3, -4, 0}), (std::vector<double>{3, 4, 0}));
    EXPECT_EQ(unary(OpCode::Sign, t, {3, -4, 0}), (std::vector<double>{1, -1, 0}));
    EXPECT_EQ(unary(OpCode::Relu, t, {3, -4, 0}), (std::vector<double>{3, 0, 0}));
    EXPECT_EQ(type_of(OpCode::Neg, {placeholder(t, {2})}).dtype, t);
  }
}

TEST(Elementwise, IntegerNegationWraps) {
  const int64_t i32_min = std::numeric_limits<int32_t>::min();
  const int64_t i64_min = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(eval(make(OpCode::Neg, {input_int(DType::Int32, {1}, {i32_min})})).i[0], i32_min);
  EXPECT_EQ(eval(make(OpCode::Neg, {input_int(DType::Int64, {1}, {i64_min})})).i[0], i64_min);
  EXPECT_EQ(eval(make(OpCode::Abs, {input_int(DType::Int64, {1}, {i64_min})})).i[0], i64_min);
}

TEST(Elementwise, FloatOnlyUnaryOpsRejectOtherDtypes) {
  for (OpCode op : kFloatUnary) {
    for (DType t : {DType::Float32, DType::Float64}) {
      EXPECT_EQ(type_of(op, {placeholder(t, {2, 3})}), (TypeInfo{t, {2, 3}})) << op_name(op);
    }
    for (DType t : {DType::Bool, DType::Int32, DType::Int64}) {
      EXPECT_EQ(make_error(op, {placeholder(t, {2})}),
                absl::StrCat(op_name(op), ": needs a floating dtype, got ", dtype_name(t)));
    }
  }
  EXPECT_EQ(make_error(OpCode::Exp, {placeholder(DType::Int64, {3})}),
            "exp: needs a floating dtype, got i64");
}

TEST(Elementwise, NumericUnaryOpsRejectBool) {
  for (OpCode op : kNumericUnary) {
    EXPECT_EQ(make_error(op, {placeholder(DType::Bool, {2})}),
              absl::StrCat(op_name(op), ": needs a numeric (non-bool) dtype, got bool"));
  }
}

TEST(Elementwise, LogicalNot) {
  RefTensor r = eval(make(OpCode::LogicalNot, {input(DType::Bool, {3}, {1, 0, 1})}));
  EXPECT_EQ(r.dtype, DType::Bool);
  EXPECT_EQ(r.i, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(make_error(OpCode::LogicalNot, {placeholder(DType::Float32, {3})}),
            "logical_not: needs bool operands, got f32");
}

TEST(Elementwise, Arity) {
  EXPECT_EQ(make_error(OpCode::Neg, {}), "neg: takes 1 operands, got 0");
  NodePtr x = placeholder(DType::Float32, {2});
  EXPECT_EQ(make_error(OpCode::Add, {x}), "add: takes 2 operands, got 1");
  EXPECT_EQ(make_error(OpCode::Where, {x, x}), "where: takes 3 operands, got 2");
}

// ---- cast and copy -----------------------------------------------------------------------------

RefTensor cast(DType to, NodePtr x) {
  return eval(make(OpCode::Cast, {std::move(x)}, {{"dtype", to}}));
}

TEST(Elementwise, CastFloatToInteger) {
  // Truncation toward zero, like C and PyTorch.
  NodePtr x = input(DType::Float64, {6}, {2.7, -2.7, 0.5, -0.5, 1e9, -3});
  EXPECT_EQ(cast(DType::Int64, x).i, (std::vector<int64_t>{2, -2, 0, 0, 1000000000, -3}));
  EXPECT_EQ(cast(DType::Int32, x).i, (std::vector<int64_t>{2, -2, 0, 0, 1000000000, -3}));
  // NaN, infinities and out-of-range values give the target's minimum (x86, PyTorch CPU).
  NodePtr bad = input(DType::Float64, {4}, {kNaN, kInf, -kInf, 3e9});
  const int64_t i32_min = std::numeric_limits<int32_t>::min();
  const int64_t i64_min = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(cast(DType::Int32, bad).i, (std::vector<int64_t>{i32_min, i32_min, i32_min, i32_min}));
  EXPECT_EQ(cast(DType::Int64, bad).i,
            (std::vector<int64_t>{i64_min, i64_min, i64_min, 3000000000}));
}

TEST(Elementwise, CastToBoolIsNonZero) {
  NodePtr f = input(DType::Float32, {5}, {0, -0.0, 0.5, kNaN, -kInf});
  RefTensor b = cast(DType::Bool, f);
  EXPECT_EQ(b.dtype, DType::Bool);
  EXPECT_EQ(b.i, (std::vector<int64_t>{0, 0, 1, 1, 1}));
  EXPECT_EQ(cast(DType::Bool, input(DType::Int64, {3}, {0, -5, 2})).i,
            (std::vector<int64_t>{0, 1, 1}));
}

TEST(Elementwise, CastBetweenIntegersAndFloats) {
  // Int64 -> Int32 wraps.
  EXPECT_EQ(cast(DType::Int32, input_int(DType::Int64, {2}, {4294967297, -1})).i,
            (std::vector<int64_t>{1, -1}));
  // Bool -> float and int are 0/1.
  NodePtr b = input(DType::Bool, {2}, {1, 0});
  EXPECT_EQ(values(cast(DType::Float32, b)), (std::vector<double>{1, 0}));
  EXPECT_EQ(cast(DType::Int64, b).i, (std::vector<int64_t>{1, 0}));
  // Int64 -> Float32 rounds once. 2^60 + 2^36 + 1 is just above halfway between the floats 2^60
  // and 2^60 + 2^37, so it rounds up; through double it would first become the exact halfway
  // point 2^60 + 2^36 and then round (to even) down.
  const int64_t big = (int64_t{1} << 60) + (int64_t{1} << 36) + 1;
  EXPECT_EQ(cast(DType::Float32, input_int(DType::Int64, {1}, {big})).f[0],
            static_cast<double>(static_cast<float>(big)));
  // Float64 -> Float32 rounds.
  EXPECT_EQ(cast(DType::Float32, input(DType::Float64, {1}, {0.1})).f[0],
            static_cast<double>(0.1f));
  for (DType from : kAllDTypes) {
    for (DType to : kAllDTypes) {
      EXPECT_EQ(type_of(OpCode::Cast, {placeholder(from, {2, 0})}, {{"dtype", to}}),
                (TypeInfo{to, {2, 0}}));
    }
  }
}

TEST(Elementwise, CastNeedsItsAttribute) {
  EXPECT_EQ(make_error(OpCode::Cast, {placeholder(DType::Float32, {1})}),
            "cast: missing attribute 'dtype'");
  EXPECT_EQ(make_error(OpCode::Cast, {placeholder(DType::Float32, {1})}, {{"dtype", int64_t{3}}}),
            "cast: attribute 'dtype' must be dtype, got int");
}

TEST(Elementwise, CopyIsIdentityForEveryDtype) {
  for (DType t : kAllDTypes) {
    NodePtr x = input(t, {2, 2}, {1, 0, 1, 1});
    RefTensor r = eval(make(OpCode::Copy, {x}));
    EXPECT_EQ(r.dtype, t);
    EXPECT_EQ(r.shape, (Shape{2, 2}));
    EXPECT_EQ(values(r), (std::vector<double>{1, 0, 1, 1}));
  }
  EXPECT_TRUE(same_values(unary(OpCode::Copy, DType::Float64, {kNaN, -kInf}), {kNaN, -kInf}));
}

// ---- binary ------------------------------------------------------------------------------------

TEST(Elementwise, ArithmeticFloatValues) {
  const DType f = DType::Float64;
  EXPECT_TRUE(same_values(binary(OpCode::Add, f, {1, -2, kInf, kInf}, {0.5, 2, 1, -kInf}),
                          {1.5, 0, kInf, kNaN}));
  EXPECT_TRUE(same_values(binary(OpCode::Sub, f, {1, kInf}, {3, kInf}), {-2, kNaN}));
  EXPECT_TRUE(same_values(binary(OpCode::Mul, f, {2, 0, -1}, {-3, kInf, kNaN}), {-6, kNaN, kNaN}));
  EXPECT_TRUE(
      same_values(binary(OpCode::Div, f, {1, -1, 0, 3}, {0, 0, 0, 4}), {kInf, -kInf, kNaN, 0.75}));
  EXPECT_TRUE(
      same_values(binary(OpCode::Pow, f, {2, 4, -8, 0, kNaN, -2}, {10, 0.5, 1.0 / 3, 0, 0, 0.5}),
                  {1024, 2, kNaN, 1, 1, kNaN}));
}

TEST(Elementwise, MaximumMinimumPropagateNaN) {
  const DType f = DType::Float32;
  EXPECT_TRUE(same_values(binary(OpCode::Maximum, f, {1, kNaN, 2, -kInf}, {kNaN, 1, 3, -1}),
                          {kNaN, kNaN, 3, -1}));
  EXPECT_TRUE(same_values(binary(OpCode::Minimum, f, {1, kNaN, 2, -kInf}, {kNaN, 1, 3, -1}),
                          {kNaN, kNaN, 2, -kInf}));
}

TEST(Elementwise, IntegerArithmeticIsExactAndWraps) {
  const int64_t i64_max = std::numeric_limits<int64_t>::max();
  const int64_t i64_min = std::numeric_limits<int64_t>::min();
  // Exact beyond 2^53, where double would round.
  const int64_t big = (int64_t{1} << 53) + 1;
  auto run = [](OpCode op, DType t, std::vector<int64_t> a, std::vector<int64_t> b) {
    const Shape s{static_cast<int64_t>(a.size())};
    return eval(make(op, {input_int(t, s, a), input_int(t, s, b)})).i;
  };
  EXPECT_EQ(run(OpCode::Add, DType::Int64, {big, i64_max}, {2, 1}),
            (std::vector<int64_t>{big + 2, i64_min}));
  EXPECT_EQ(run(OpCode::Sub, DType::Int64, {i64_min, 5}, {1, 7}),
            (std::vector<int64_t>{i64_max, -2}));
  EXPECT_EQ(run(OpCode::Mul, DType::Int64, {big, int64_t{1} << 62}, {3, 4}),
            (std::vector<int64_t>{3 * big, 0}));
  EXPECT_EQ(run(OpCode::Maximum, DType::Int64, {big, -1}, {big - 1, 0}),
            (std::vector<int64_t>{big, 0}));
  EXPECT_EQ(run(OpCode::Minimum, DType::Int64, {big, -1}, {big - 1, 0}),
            (std::vector<int64_t>{big - 1, -1}));
  // Int32 wraps at 32 bits.
  EXPECT_EQ(run(OpCode::Add, DType::Int32, {2147483647, -2147483648}, {1, -1}),
            (std::vector<int64_t>{-2147483648, 2147483647}));
  EXPECT_EQ(run(OpCode::Mul, DType::Int32, {65536, 7}, {65536, -6}),
            (std::vector<int64_t>{0, -42}));
}

TEST(Elementwise, BoolArithmetic) {
  // add/maximum act as "or", mul/minimum as "and"; the result stays Bool.
  NodePtr a = input(DType::Bool, {4}, {0, 0, 1, 1});
  NodePtr b = input(DType::Bool, {4}, {0, 1, 0, 1});
  for (auto [op, want] : {std::pair{OpCode::Add, std::vector<int64_t>{0, 1, 1, 1}},
                          std::pair{OpCode::Maximum, std::vector<int64_t>{0, 1, 1, 1}},
                          std::pair{OpCode::Mul, std::vector<int64_t>{0, 0, 0, 1}},
                          std::pair{OpCode::Minimum, std::vector<int64_t>{0, 0, 0, 1}}}) {
    RefTensor r = eval(make(op, {a, b}));
    EXPECT_EQ(r.dtype, DType::Bool) << op_name(op);
    EXPECT_EQ(r.i, want) << op_name(op);
  }
  EXPECT_EQ(make_error(OpCode::Sub, {a, b}), "sub: needs a numeric (non-bool) dtype, got bool");
}

TEST(Elementwise, DivAndPowNeedFloats) {
  for (OpCode op : {OpCode::Div, OpCode::Pow}) {
    for (DType t : {DType::Bool, DType::Int32, DType::Int64}) {
      NodePtr x = placeholder(t, {2});
      EXPECT_EQ(make_error(op, {x, x}),
                absl::StrCat(op_name(op), ": needs a floating dtype, got ", dtype_name(t)));
    }
  }
}

TEST(Elementwise, BinaryOperandsMustMatch) {
  EXPECT_EQ(make_error(OpCode::Add,
                       {placeholder(DType::Float32, {2, 3}), placeholder(DType::Float32, {3})}),
            "add: operand shapes [2, 3] and [3] differ (the IR needs explicit expand)");
  EXPECT_EQ(
      make_error(OpCode::Add, {placeholder(DType::Float32, {3}), placeholder(DType::Int64, {3})}),
      "add: operand dtypes f32 and i64 differ (the IR needs explicit cast)");
  EXPECT_EQ(
      make_error(OpCode::Lt, {placeholder(DType::Float32, {}), placeholder(DType::Float32, {1})}),
      "lt: operand shapes [] and [1] differ (the IR needs explicit expand)");
  EXPECT_EQ(
      make_error(OpCode::Mul, {placeholder(DType::Int32, {0}), placeholder(DType::Int64, {0})}),
      "mul: operand dtypes i32 and i64 differ (the IR needs explicit cast)");
}

TEST(Elementwise, ComparisonsGiveBool) {
  const std::vector<double> a{1, 2, 3, kNaN, kInf};
  const std::vector<double> b{2, 2, 2, kNaN, kInf};
  const std::vector<std::pair<OpCode, std::vector<double>>> want = {
      {OpCode::Eq, {0, 1, 0, 0, 1}}, {OpCode::Ne, {1, 0, 1, 1, 0}}, {OpCode::Lt, {1, 0, 0, 0, 0}},
      {OpCode::Le, {1, 1, 0, 0, 1}}, {OpCode::Gt, {0, 0, 1, 0, 0}}, {OpCode::Ge, {0, 1, 1, 0, 1}}};
  for (const auto& [op, expected] : want) {
    for (DType t : {DType::Float32, DType::Float64}) {
      EXPECT_EQ(binary(op, t, a, b), expected) << op_name(op);
      EXPECT_EQ(type_of(op, {placeholder(t, {5}), placeholder(t, {5})}).dtype, DType::Bool);
    }
    // Integers compare exactly: 2^53 + 1 and 2^53 are equal as doubles.
    const int64_t big = int64_t{1} << 53;
    RefTensor r = eval(
        make(op, {input_int(DType::Int64, {1}, {big + 1}), input_int(DType::Int64, {1}, {big})}));
    EXPECT_EQ(r.dtype, DType::Bool);
    const bool gt = op == OpCode::Ne || op == OpCode::Gt || op == OpCode::Ge;
    EXPECT_EQ(r.i[0], gt ? 1 : 0) << op_name(op);
  }
  // Bools compare too (false < true).
  EXPECT_EQ(values(eval(make(OpCode::Lt,
                             {input(DType::Bool, {2}, {0, 1}), input(DType::Bool, {2}, {1, 1})}))),
            (std::vector<double>{1, 0}));
}

TEST(Elementwise, LogicalAndOr) {
  NodePtr a = input(DType::Bool, {4}, {0, 0, 1, 1});
  NodePtr b = input(DType::Bool, {4}, {0, 1, 0, 1});
  EXPECT_EQ(eval(make(OpCode::LogicalAnd, {a, b})).i, (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(eval(make(OpCode::LogicalOr, {a, b})).i, (std::vector<int64_t>{0, 1, 1, 1}));
  NodePtr f = placeholder(DType::Float32, {4});
  EXPECT_EQ(make_error(OpCode::LogicalAnd, {f, f}), "logical_and: needs bool operands, got f32");
  EXPECT_EQ(make_error(OpCode::LogicalOr, {a, placeholder(DType::Int64, {4})}),
            "logical_or: operand dtypes bool and i64 differ (the IR needs explicit cast)");
}

// ---- where -------------------------------------------------------------------------------------

TEST(Elementwise, Where) {
  NodePtr c = input(DType::Bool, {2, 2}, {1, 0, 0, 1});
  NodePtr a = input(DType::Float64, {2, 2}, {1, 2, 3, kNaN});
  NodePtr b = input(DType::Float64, {2, 2}, {-1, kNaN, -3, -4});
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Where, {c, a, b}))), {1, kNaN, -3, kNaN}));
  NodePtr ia = input_int(DType::Int64, {2, 2}, {int64_t{1} << 60, 2, 3, 4});
  NodePtr ib = input(DType::Int64, {2, 2}, {5, 6, 7, 8});
  RefTensor r = eval(make(OpCode::Where, {c, ia, ib}));
  EXPECT_EQ(r.dtype, DType::Int64);
  EXPECT_EQ(r.i, (std::vector<int64_t>{int64_t{1} << 60, 6, 7, 4}));
}

TEST(Elementwise, WhereErrors) {
  NodePtr f = placeholder(DType::Float32, {2, 3});
  EXPECT_EQ(make_error(OpCode::Where, {f, f, f}), "where: condition must be bool, got f32");
  EXPECT_EQ(make_error(OpCode::Where, {placeholder(DType::Bool, {3}), f, f}),
            "where: condition shape [3] and operand shape [2, 3] differ (the IR needs explicit "
            "expand)");
  NodePtr c = placeholder(DType::Bool, {2, 3});
  EXPECT_EQ(make_error(OpCode::Where, {c, f, placeholder(DType::Float64, {2, 3})}),
            "where: operand dtypes f32 and f64 differ (the IR needs explicit cast)");
  EXPECT_EQ(make_error(OpCode::Where, {c, f, placeholder(DType::Float32, {3})}),
            "where: operand shapes [2, 3] and [3] differ (the IR needs explicit expand)");
}

// ---- shapes ------------------------------------------------------------------------------------

TEST(Elementwise, EmptyAndScalarShapes) {
  NodePtr e = input(DType::Float32, {0, 3}, {});
  RefTensor r = eval(make(OpCode::Add, {e, e}));
  EXPECT_EQ(r.shape, (Shape{0, 3}));
  EXPECT_EQ(r.numel(), 0);
  EXPECT_EQ(eval(make(OpCode::Exp, {e})).shape, (Shape{0, 3}));
  NodePtr s = input(DType::Float64, {}, {2});
  RefTensor p = eval(make(OpCode::Mul, {s, s}));
  EXPECT_EQ(p.shape, Shape{});
  EXPECT_EQ(values(p), (std::vector<double>{4}));
  NodePtr one = input(DType::Int32, {1, 1, 1}, {-7});
  EXPECT_EQ(values(eval(make(OpCode::Abs, {one}))), (std::vector<double>{7}));
}

// ---- traits ------------------------------------------------------------------------------------

// The elementwise ops and the dtype their trait checks run in.
struct Case {
  OpCode op;
  DType dtype;
};
const Case kUnaryCases[] = {{OpCode::Neg, DType::Float64},     {OpCode::Abs, DType::Float64},
                            {OpCode::Sign, DType::Float64},    {OpCode::Exp, DType::Float64},
                            {OpCode::Log, DType::Float64},     {OpCode::Sqrt, DType::Float64},
                            {OpCode::Rsqrt, DType::Float64},   {OpCode::Tanh, DType::Float64},
                            {OpCode::Sigmoid, DType::Float64}, {OpCode::Relu, DType::Float64},
                            {OpCode::Sin, DType::Float64},     {OpCode::Cos, DType::Float64},
                            {OpCode::LogicalNot, DType::Bool}, {OpCode::Copy, DType::Float64},
                            {OpCode::Floor, DType::Float64},   {OpCode::Ceil, DType::Float64},
                            {OpCode::Round, DType::Float64},   {OpCode::Trunc, DType::Float64}};
const Case kBinaryCases[] = {{OpCode::Add, DType::Float64},     {OpCode::Sub, DType::Float64},
                             {OpCode::Mul, DType::Float64},     {OpCode::Div, DType::Float64},
                             {OpCode::Pow, DType::Float64},     {OpCode::Maximum, DType::Float64},
                             {OpCode::Minimum, DType::Float64}, {OpCode::Eq, DType::Float64},
                             {OpCode::Ne, DType::Float64},      {OpCode::Lt, DType::Float64},
                             {OpCode::Le, DType::Float64},      {OpCode::Gt, DType::Float64},
                             {OpCode::Ge, DType::Float64},      {OpCode::LogicalAnd, DType::Bool},
                             {OpCode::LogicalOr, DType::Bool}};

TEST(Elementwise, ZeroPreservingTraitMatchesTheValues) {
  for (const Case& c : kUnaryCases) {
    const double f0 = unary(c.op, c.dtype, {0})[0];
    EXPECT_EQ(op_def(c.op).traits.zero_preserving, f0 == 0) << op_name(c.op);
  }
  for (const Case& c : kBinaryCases) {
    const double f00 = binary(c.op, c.dtype, {0}, {0})[0];
    EXPECT_EQ(op_def(c.op).traits.zero_preserving, f00 == 0) << op_name(c.op);
  }
  EXPECT_TRUE(op_def(OpCode::Cast).traits.zero_preserving);
  EXPECT_TRUE(op_def(OpCode::Where).traits.zero_preserving);
}

TEST(Elementwise, CommutativeTraitMatchesTheValues) {
  const std::vector<double> a{1, 2, -3, 0.5, 0};
  const std::vector<double> b{2, 2, 4, -0.25, 1};
  for (const Case& c : kBinaryCases) {
    const std::vector<double> x = c.dtype == DType::Bool ? std::vector<double>{0, 0, 1, 1, 1} : a;
    const std::vector<double> y = c.dtype == DType::Bool ? std::vector<double>{0, 1, 0, 1, 1} : b;
    const bool same = binary(c.op, c.dtype, x, y) == binary(c.op, c.dtype, y, x);
    EXPECT_EQ(op_def(c.op).traits.commutative, same) << op_name(c.op);
  }
}

TEST(Elementwise, ComparisonTrait) {
  for (const Case& c : kBinaryCases) {
    bool is_comparison = false;
    for (OpCode op : kComparisons) is_comparison |= op == c.op;
    EXPECT_EQ(op_def(c.op).traits.comparison, is_comparison) << op_name(c.op);
  }
}

TEST(Elementwise, EveryOpIsElementwiseKind) {
  for (const Case& c : kUnaryCases) EXPECT_EQ(op_def(c.op).kind, OpKind::Elementwise);
  for (const Case& c : kBinaryCases) EXPECT_EQ(op_def(c.op).kind, OpKind::Elementwise);
}

}  // namespace
}  // namespace smelt::ir
