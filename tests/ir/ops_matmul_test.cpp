// matmul: type rule and errors, values (batched, empty inner dim, exact integers); addmm.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

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

TEST(Matmul, TwoByThreeTimesThreeByTwo) {
  NodePtr a = input(DType::Float64, {2, 3}, {1, 2, 3, 4, 5, 6});
  NodePtr b = input(DType::Float64, {3, 2}, {7, 8, 9, 10, 11, 12});
  RefTensor r = eval(make(OpCode::Matmul, {a, b}));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  // [1 2 3] . [7 9 11] = 58, . [8 10 12] = 64; [4 5 6] . ... = 139, 154.
  EXPECT_EQ(values(r), (std::vector<double>{58, 64, 139, 154}));
}

TEST(Matmul, Batched) {
  // Two batches: identity times b, and 2 * identity times b.
  NodePtr a = input(DType::Float32, {2, 2, 2}, {1, 0, 0, 1, 2, 0, 0, 2});
  NodePtr b = input(DType::Float32, {2, 2, 3}, {1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6});
  RefTensor r = eval(make(OpCode::Matmul, {a, b}));
  EXPECT_EQ(r.dtype, DType::Float32);
  EXPECT_EQ(r.shape, (Shape{2, 2, 3}));
  EXPECT_EQ(values(r), (std::vector<double>{1, 2, 3, 4, 5, 6, -2, -4, -6, -8, -10, -12}));
  EXPECT_EQ(type_of(OpCode::Matmul, {placeholder(DType::Float64, {4, 1, 5, 6}),
                                     placeholder(DType::Float64, {4, 1, 6, 7})}),
            (TypeInfo{DType::Float64, {4, 1, 5, 7}}));
}

TEST(Matmul, EmptyDims) {
  // An empty inner dim gives zeros; empty outer dims give an empty result.
  NodePtr a = input(DType::Float64, {2, 0}, {});
  NodePtr b = input(DType::Float64, {0, 3}, {});
  RefTensor r = eval(make(OpCode::Matmul, {a, b}));
  EXPECT_EQ(r.shape, (Shape{2, 3}));
  EXPECT_EQ(values(r), (std::vector<double>(6, 0.0)));
  r = eval(make(OpCode::Matmul, {input(DType::Float64, {0, 2}, {}),
                                 input(DType::Float64, {2, 3}, {1, 2, 3, 4, 5, 6})}));
  EXPECT_EQ(r.shape, (Shape{0, 3}));
  r = eval(make(OpCode::Matmul,
                {input(DType::Int32, {0, 1, 1}, {}), input(DType::Int32, {0, 1, 1}, {})}));
  EXPECT_EQ(r.shape, (Shape{0, 1, 1}));
}

TEST(Matmul, NaNAndInfinity) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  NodePtr a = input(DType::Float64, {2, 2}, {kInf, 1, kNaN, 0});
  NodePtr b = input(DType::Float64, {2, 1}, {0, 1});
  // inf * 0 = NaN; NaN * 0 = NaN.
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Matmul, {a, b}))), {kNaN, kNaN}));
}

TEST(Matmul, IntegersAreExactAndWrap) {
  const int64_t big = (int64_t{1} << 53) + 1;
  NodePtr a = input_int(DType::Int64, {1, 2}, {big, 1});
  NodePtr b = input_int(DType::Int64, {2, 1}, {3, 5});
  EXPECT_EQ(eval(make(OpCode::Matmul, {a, b})).i, (std::vector<int64_t>{3 * big + 5}));
  // Int32 wraps at 32 bits: 65536 * 65536 + 1 * 1 = 2^32 + 1 -> 1.
  NodePtr c = input(DType::Int32, {1, 2}, {65536, 1});
  NodePtr d = input(DType::Int32, {2, 1}, {65536, 1});
  RefTensor r = eval(make(OpCode::Matmul, {c, d}));
  EXPECT_EQ(r.dtype, DType::Int32);
  EXPECT_EQ(r.i, (std::vector<int64_t>{1}));
}

TEST(Matmul, Errors) {
  NodePtr a = placeholder(DType::Float32, {2, 3});
  EXPECT_EQ(make_error(OpCode::Matmul, {a, placeholder(DType::Float32, {4, 5})}),
            "matmul: cannot multiply [2, 3] by [4, 5]: inner dimensions 3 and 4 differ");
  EXPECT_EQ(make_error(OpCode::Matmul, {placeholder(DType::Float32, {3}), a}),
            "matmul: cannot multiply [3] by [2, 3]: operands need rank >= 2 (the frontend "
            "reshapes 1-d operands)");
  EXPECT_EQ(make_error(OpCode::Matmul, {placeholder(DType::Float32, {2, 2, 3}),
                                        placeholder(DType::Float32, {3, 4})}),
            "matmul: cannot multiply [2, 2, 3] by [3, 4]: ranks differ (the IR needs explicit "
            "batch dims)");
  EXPECT_EQ(make_error(OpCode::Matmul, {placeholder(DType::Float32, {2, 2, 3}),
                                        placeholder(DType::Float32, {5, 3, 4})}),
            "matmul: cannot multiply [2, 2, 3] by [5, 3, 4]: batch dims differ (the IR needs "
            "explicit expand)");
  EXPECT_EQ(make_error(OpCode::Matmul, {a, placeholder(DType::Float64, {3, 4})}),
            "matmul: operand dtypes f32 and f64 differ (the IR needs explicit cast)");
  EXPECT_EQ(make_error(OpCode::Matmul,
                       {placeholder(DType::Bool, {2, 3}), placeholder(DType::Bool, {3, 4})}),
            "matmul: needs a numeric (non-bool) dtype, got bool");
  EXPECT_EQ(make_error(OpCode::Matmul, {a}), "matmul: takes 2 operands, got 1");
  EXPECT_EQ(op_def(OpCode::Matmul).kind, OpKind::Matmul);
}

TEST(Addmm, AlphaTimesTheProductPlusBetaTimesTheAddend) {
  NodePtr a = input(DType::Float64, {2, 3}, {1, 2, 3, 4, 5, 6});
  NodePtr b = input(DType::Float64, {3, 2}, {7, 8, 9, 10, 11, 12});
  NodePtr c = input(DType::Float64, {2, 2}, {1, -2, 3, -4});
  RefTensor r = eval(make(OpCode::Addmm, {a, b, c}, {{"alpha", 2.0}, {"beta", 0.5}}));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{2 * 58 + 0.5, 2 * 64 - 1, 2 * 139 + 1.5, 2 * 154 - 2}));
  // Empty inner dim: beta times the addend alone.
  r = eval(make(OpCode::Addmm,
                {input(DType::Float32, {2, 0}, {}), input(DType::Float32, {0, 1}, {}),
                 input(DType::Float32, {2, 1}, {3, 4})},
                {{"alpha", 1.0}, {"beta", -1.0}}));
  EXPECT_EQ(values(r), (std::vector<double>{-3, -4}));
}

TEST(Addmm, Errors) {
  NodePtr a = placeholder(DType::Float32, {2, 3});
  NodePtr b = placeholder(DType::Float32, {3, 4});
  const Attrs ab{{"alpha", 1.0}, {"beta", 1.0}};
  EXPECT_EQ(make_error(OpCode::Addmm, {a, b, placeholder(DType::Float32, {2, 5})}, ab),
            "addmm: the addend is f32[2, 5] but the product is f32[2, 4]");
  EXPECT_EQ(make_error(OpCode::Addmm, {a, b, placeholder(DType::Float64, {2, 4})}, ab),
            "addmm: the addend is f64[2, 4] but the product is f32[2, 4]");
  EXPECT_EQ(
      make_error(OpCode::Addmm,
                 {a, placeholder(DType::Float32, {4, 4}), placeholder(DType::Float32, {2, 4})}, ab),
      "addmm: cannot multiply [2, 3] by [4, 4]: inner dimensions 3 and 4 differ");
  EXPECT_EQ(make_error(OpCode::Addmm,
                       {placeholder(DType::Int32, {2, 3}), placeholder(DType::Int32, {3, 4}),
                        placeholder(DType::Int32, {2, 4})},
                       ab),
            "addmm: needs a floating-point dtype, got i32");
  EXPECT_EQ(make_error(OpCode::Addmm, {a, b}, ab), "addmm: takes 3 operands, got 2");
  EXPECT_EQ(op_def(OpCode::Addmm).kind, OpKind::Matmul);
}

}  // namespace
}  // namespace smelt::ir
