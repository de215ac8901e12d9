// Movement ops: reshape, permute, expand, slice, pad, concat.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
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

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// 0, 1, ..., n - 1 as a tensor of `shape`.
NodePtr iota(Shape shape, DType t = DType::Float64) {
  std::vector<double> v(numel(shape));
  for (size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>(k);
  return input(t, std::move(shape), v);
}

Attrs slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) {
  return {{"dim", dim}, {"start", start}, {"end", end}, {"step", step}};
}

Attrs pad(IntList before, IntList after, double value = 0) {
  return {{"before", before}, {"after", after}, {"value", value}};
}

// ---- reshape -----------------------------------------------------------------------------------

TEST(Movement, Reshape) {
  RefTensor r = eval(make(OpCode::Reshape, {iota({2, 3})}, {{"shape", IntList{3, 1, 2}}}));
  EXPECT_EQ(r.shape, (Shape{3, 1, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  r = eval(make(OpCode::Reshape, {input(DType::Int32, {1}, {7})}, {{"shape", IntList{}}}));
  EXPECT_EQ(r.shape, Shape{});
  EXPECT_EQ(r.i, (std::vector<int64_t>{7}));
  EXPECT_EQ(
      type_of(OpCode::Reshape, {placeholder(DType::Bool, {0, 4})}, {{"shape", IntList{2, 0}}}),
      (TypeInfo{DType::Bool, {2, 0}}));
}

TEST(Movement, ReshapeErrors) {
  NodePtr x = placeholder(DType::Float32, {2, 3});
  EXPECT_EQ(make_error(OpCode::Reshape, {x}, {{"shape", IntList{4}}}),
            "reshape: cannot reshape [2, 3] (6 elements) to [4] (4 elements)");
  EXPECT_EQ(make_error(OpCode::Reshape, {x}, {{"shape", IntList{-1, 3}}}),
            "reshape: target shape [-1, 3] has a negative dim (the frontend resolves -1)");
  EXPECT_EQ(make_error(OpCode::Reshape, {x}, {}), "reshape: missing attribute 'shape'");
}

// ---- permute -----------------------------------------------------------------------------------

TEST(Movement, Permute) {
  // Transpose.
  RefTensor r = eval(make(OpCode::Permute, {iota({2, 3})}, {{"perm", IntList{1, 0}}}));
  EXPECT_EQ(r.shape, (Shape{3, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  // x[i][j][k] = 12 i + 4 j + k, of shape [2, 3, 4] so that every dim differs.
  NodePtr x = iota({2, 3, 4});
  r = eval(make(OpCode::Permute, {x}, {{"perm", IntList{2, 0, 1}}}));
  EXPECT_EQ(r.shape, (Shape{4, 2, 3}));
  // r[a][b][c] = x[b][c][a] = 12 b + 4 c + a.
  std::vector<double> want;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 3; ++c) want.push_back(12 * b + 4 * c + a);
  EXPECT_EQ(values(r), want);
  // Identity and 0-d.
  EXPECT_EQ(values(eval(make(OpCode::Permute, {x}, {{"perm", IntList{0, 1, 2}}}))),
            values(eval(x)));
  EXPECT_EQ(type_of(OpCode::Permute, {placeholder(DType::Int64, {})}, {{"perm", IntList{}}}),
            (TypeInfo{DType::Int64, {}}));
}

TEST(Movement, PermuteErrors) {
  NodePtr x = placeholder(DType::Float32, {2, 3});
  for (const IntList& bad :
       {IntList{0, 0}, IntList{0}, IntList{0, 1, 2}, IntList{1, 2}, IntList{-1, 0}}) {
    const std::string msg = make_error(OpCode::Permute, {x}, {{"perm", bad}});
    EXPECT_EQ(msg, absl::StrCat("permute: ", shape_str(bad),
                                " is not a permutation of the dims of [2, 3] (need each of 0 to "
                                "1 once)"));
  }
}

// ---- expand ------------------------------------------------------------------------------------

TEST(Movement, Expand) {
  RefTensor r = eval(make(OpCode::Expand, {iota({1, 3})}, {{"shape", IntList{2, 3}}}));
  EXPECT_EQ(r.shape, (Shape{2, 3}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 1, 2, 0, 1, 2}));
  r = eval(make(OpCode::Expand, {iota({2, 1})}, {{"shape", IntList{2, 3}}}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 0, 0, 1, 1, 1}));
  r = eval(make(OpCode::Expand, {input(DType::Bool, {1, 1}, {1})}, {{"shape", IntList{2, 2}}}));
  EXPECT_EQ(r.i, (std::vector<int64_t>{1, 1, 1, 1}));
  // A dim of 1 may expand to 0; an unchanged shape is an identity.
  EXPECT_EQ(eval(make(OpCode::Expand, {iota({1, 3})}, {{"shape", IntList{0, 3}}})).shape,
            (Shape{0, 3}));
  EXPECT_EQ(values(eval(make(OpCode::Expand, {iota({2, 3})}, {{"shape", IntList{2, 3}}}))),
            (std::vector<double>{0, 1, 2, 3, 4, 5}));
}

TEST(Movement, ExpandErrors) {
  NodePtr x = placeholder(DType::Float32, {2, 3});
  EXPECT_EQ(make_error(OpCode::Expand, {x}, {{"shape", IntList{4, 3}}}),
            "expand: cannot expand [2, 3] to [4, 3]: dim 0 is 2 (must be 4 or 1)");
  EXPECT_EQ(make_error(OpCode::Expand, {x}, {{"shape", IntList{2, 2, 3}}}),
            "expand: cannot expand [2, 3] to [2, 2, 3]: ranks differ (the IR needs an explicit "
            "reshape)");
  EXPECT_EQ(make_error(OpCode::Expand, {placeholder(DType::Float32, {1, 3})},
                       {{"shape", IntList{-1, 3}}}),
            "expand: cannot expand [1, 3] to [-1, 3]: target dim 0 is negative (the frontend "
            "resolves -1)");
}

// ---- slice -------------------------------------------------------------------------------------

TEST(Movement, Slice) {
  NodePtr x = iota({3, 4});
  RefTensor r = eval(make(OpCode::Slice, {x}, slice(1, 1, 3)));
  EXPECT_EQ(r.shape, (Shape{3, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{1, 2, 5, 6, 9, 10}));
  r = eval(make(OpCode::Slice, {x}, slice(1, 0, 4, 3)));  // positions 0 and 3
  EXPECT_EQ(r.shape, (Shape{3, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 3, 4, 7, 8, 11}));
  r = eval(make(OpCode::Slice, {x}, slice(0, 1, 3, 5)));  // ceil(2 / 5) = 1 row
  EXPECT_EQ(r.shape, (Shape{1, 4}));
  EXPECT_EQ(values(r), (std::vector<double>{4, 5, 6, 7}));
  r = eval(make(OpCode::Slice, {x}, slice(0, 2, 2)));  // empty
  EXPECT_EQ(r.shape, (Shape{0, 4}));
  r = eval(make(OpCode::Slice, {input(DType::Int64, {5}, {1, 2, 3, 4, 5})}, slice(0, 1, 5, 2)));
  EXPECT_EQ(r.i, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(type_of(OpCode::Slice, {placeholder(DType::Float32, {0})}, slice(0, 0, 0)),
            (TypeInfo{DType::Float32, {0}}));
}

TEST(Movement, SliceErrors) {
  NodePtr x = placeholder(DType::Float32, {5, 2});
  EXPECT_EQ(make_error(OpCode::Slice, {x}, slice(0, 3, 2)),
            "slice: start 3 and end 2 are out of range for dim 0 of [5, 2] (need 0 <= start <= "
            "end <= 5)");
  EXPECT_EQ(make_error(OpCode::Slice, {x}, slice(0, 0, 6)),
            "slice: start 0 and end 6 are out of range for dim 0 of [5, 2] (need 0 <= start <= "
            "end <= 5)");
  EXPECT_EQ(make_error(OpCode::Slice, {x}, slice(1, -1, 1)),
            "slice: start -1 and end 1 are out of range for dim 1 of [5, 2] (need 0 <= start <= "
            "end <= 2)");
  EXPECT_EQ(make_error(OpCode::Slice, {x}, slice(0, 0, 5, 0)), "slice: step must be >= 1, got 0");
  EXPECT_EQ(make_error(OpCode::Slice, {x}, slice(2, 0, 1)),
            "slice: dim 2 is not a dim of [5, 2] (valid: 0 to 1)");
  EXPECT_EQ(make_error(OpCode::Slice, {placeholder(DType::Float32, {})}, slice(0, 0, 1)),
            "slice: dim 0 is not a dim of [] (it has none)");
}

// ---- pad ---------------------------------------------------------------------------------------

TEST(Movement, Pad) {
  RefTensor r = eval(make(OpCode::Pad, {iota({2, 2})}, pad({1, 0}, {0, 2}, -1)));
  EXPECT_EQ(r.shape, (Shape{3, 4}));
  EXPECT_EQ(values(r), (std::vector<double>{-1, -1, -1, -1, 0, 1, -1, -1, 2, 3, -1, -1}));
  // Integer and bool padding.
  r = eval(make(OpCode::Pad, {input(DType::Int32, {2}, {5, 6})}, pad({2}, {1}, 7)));
  EXPECT_EQ(r.i, (std::vector<int64_t>{7, 7, 5, 6, 7}));
  r = eval(make(OpCode::Pad, {input(DType::Bool, {1}, {0})}, pad({1}, {0}, 1)));
  EXPECT_EQ(r.i, (std::vector<int64_t>{1, 0}));
  // NaN padding of floats; Float32 rounds the value.
  r = eval(make(OpCode::Pad, {input(DType::Float32, {1}, {2})}, pad({0}, {2}, 0.1)));
  EXPECT_TRUE(same_values(values(r), {2, static_cast<double>(0.1f), static_cast<double>(0.1f)}));
  r = eval(make(OpCode::Pad, {input(DType::Float64, {1}, {2})}, pad({1}, {0}, kNaN)));
  EXPECT_TRUE(same_values(values(r), {kNaN, 2}));
  // Zero padding is an identity; padding an empty tensor gives only the value; 0-d is identity.
  EXPECT_EQ(values(eval(make(OpCode::Pad, {iota({2, 3})}, pad({0, 0}, {0, 0})))),
            (std::vector<double>{0, 1, 2, 3, 4, 5}));
  r = eval(make(OpCode::Pad, {input(DType::Float64, {0, 1}, {})}, pad({1, 0}, {1, 1}, 3)));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{3, 3, 3, 3}));
  EXPECT_EQ(values(eval(make(OpCode::Pad, {input(DType::Float64, {}, {4})}, pad({}, {})))),
            (std::vector<double>{4}));
}

TEST(Movement, PadErrors) {
  NodePtr x = placeholder(DType::Float32, {2, 3});
  EXPECT_EQ(make_error(OpCode::Pad, {x}, pad({1}, {1, 1})),
            "pad: before [1] and after [1, 1] need one entry per dim of [2, 3]");
  EXPECT_EQ(make_error(OpCode::Pad, {x}, pad({0, -1}, {0, 0})),
            "pad: before [0, -1] and after [0, 0] of [2, 3] must be >= 0 (negative padding is "
            "a slice)");
  EXPECT_EQ(make_error(OpCode::Pad, {placeholder(DType::Int32, {2})}, pad({1}, {0}, kNaN)),
            "pad: value nan cannot be stored in a i32 tensor");
  EXPECT_EQ(make_error(OpCode::Pad, {placeholder(DType::Int32, {2})}, pad({1}, {0}, 3e9)),
            "pad: value 3e+09 cannot be stored in a i32 tensor");
  EXPECT_EQ(make_error(OpCode::Pad, {placeholder(DType::Int64, {2})}, pad({1}, {0}, 1e19)),
            "pad: value 1e+19 cannot be stored in a i64 tensor");
}

// ---- concat ------------------------------------------------------------------------------------

TEST(Movement, Concat) {
  NodePtr a = iota({2, 1});
  NodePtr b = input(DType::Float64, {2, 2}, {10, 11, 12, 13});
  NodePtr c = input(DType::Float64, {2, 0}, {});
  RefTensor r = eval(make(OpCode::Concat, {a, b, c, a}, {{"dim", int64_t{1}}}));
  EXPECT_EQ(r.shape, (Shape{2, 4}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 10, 11, 0, 1, 12, 13, 1}));
  r = eval(make(OpCode::Concat, {b, iota({1, 2})}, {{"dim", int64_t{0}}}));
  EXPECT_EQ(r.shape, (Shape{3, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{10, 11, 12, 13, 0, 1}));
  // One operand is an identity.
  r = eval(make(OpCode::Concat, {input_int(DType::Int64, {2}, {int64_t{1} << 60, 3})},
                {{"dim", int64_t{0}}}));
  EXPECT_EQ(r.i, (std::vector<int64_t>{int64_t{1} << 60, 3}));
  // A 3-d concat in the middle.
  r = eval(make(OpCode::Concat, {iota({2, 1, 2}), iota({2, 2, 2})}, {{"dim", int64_t{1}}}));
  EXPECT_EQ(r.shape, (Shape{2, 3, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 7}));
}

TEST(Movement, ConcatErrors) {
  NodePtr x = placeholder(DType::Float32, {2, 3});
  EXPECT_EQ(make_error(OpCode::Concat, {}, {{"dim", int64_t{0}}}),
            "concat: takes at least 1 operands, got 0");
  EXPECT_EQ(
      make_error(OpCode::Concat, {x, placeholder(DType::Float32, {3, 3})}, {{"dim", int64_t{1}}}),
      "concat: operand 1 has shape [3, 3], which differs from operand 0's [2, 3] outside "
      "dim 1");
  EXPECT_EQ(make_error(OpCode::Concat, {x, placeholder(DType::Float32, {2, 3, 1})},
                       {{"dim", int64_t{0}}}),
            "concat: operand 1 has shape [2, 3, 1], which differs from operand 0's [2, 3] "
            "outside dim 0");
  EXPECT_EQ(
      make_error(OpCode::Concat, {x, placeholder(DType::Int64, {2, 3})}, {{"dim", int64_t{0}}}),
      "concat: operand 1 has dtype i64, operand 0 has f32 (the IR needs explicit cast)");
  EXPECT_EQ(make_error(OpCode::Concat, {x}, {{"dim", int64_t{2}}}),
            "concat: dim 2 is not a dim of [2, 3] (valid: 0 to 1)");
  EXPECT_EQ(make_error(OpCode::Concat, {placeholder(DType::Float32, {})}, {{"dim", int64_t{0}}}),
            "concat: cannot concatenate 0-d tensors (reshape them first)");
}

TEST(Movement, Kinds) {
  for (OpCode op : {OpCode::Reshape, OpCode::Permute, OpCode::Expand, OpCode::Slice, OpCode::Pad,
                    OpCode::Concat}) {
    EXPECT_EQ(op_def(op).kind, OpKind::Movement);
  }
}

}  // namespace
}  // namespace smelt::ir
