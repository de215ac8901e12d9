// index_select: type rule, values, and out-of-range indices caught at evaluation.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ir/op_registry.h"
#include "ir/reference.h"
#include "tests/ir/op_testing.h"

namespace smelt::ir {
namespace {

using testing::eval;
using testing::input;
using testing::input_int;
using testing::make;
using testing::make_error;
using testing::placeholder;
using testing::type_of;
using testing::values;

Attrs dim(int64_t d) { return {{"dim", d}}; }

// [[0, 1, 2], [3, 4, 5]]
NodePtr two_by_three() { return input(DType::Float64, {2, 3}, {0, 1, 2, 3, 4, 5}); }

TEST(Gather, IndexSelectAlongEachDim) {
  NodePtr x = two_by_three();
  RefTensor r = eval(make(OpCode::IndexSelect, {x, input(DType::Int64, {3}, {1, 0, 1})}, dim(0)));
  EXPECT_EQ(r.shape, (Shape{3, 3}));
  EXPECT_EQ(values(r), (std::vector<double>{3, 4, 5, 0, 1, 2, 3, 4, 5}));
  r = eval(make(OpCode::IndexSelect, {x, input(DType::Int32, {2}, {2, 2})}, dim(1)));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{2, 2, 5, 5}));
}

TEST(Gather, IndexSelectOfA3dTensorAndIntegers) {
  // x[i][j][k] = 100 i + 10 j + k, shape [2, 3, 2], picked along the middle dim.
  std::vector<int64_t> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) v.push_back(100 * i + 10 * j + k);
  NodePtr x = input_int(DType::Int64, {2, 3, 2}, v);
  RefTensor r = eval(make(OpCode::IndexSelect, {x, input(DType::Int64, {2}, {2, 0})}, dim(1)));
  EXPECT_EQ(r.dtype, DType::Int64);
  EXPECT_EQ(r.shape, (Shape{2, 2, 2}));
  EXPECT_EQ(r.i, (std::vector<int64_t>{20, 21, 0, 1, 120, 121, 100, 101}));
}

TEST(Gather, ZeroDimAndEmptyIndices) {
  NodePtr x = two_by_three();
  // A 0-d index keeps the dim, with size 1 (PyTorch).
  RefTensor r = eval(make(OpCode::IndexSelect, {x, input(DType::Int64, {}, {1})}, dim(1)));
  EXPECT_EQ(r.shape, (Shape{2, 1}));
  EXPECT_EQ(values(r), (std::vector<double>{1, 4}));
  r = eval(make(OpCode::IndexSelect, {x, input(DType::Int32, {0}, {})}, dim(0)));
  EXPECT_EQ(r.shape, (Shape{0, 3}));
  // An empty dim may be indexed by an empty index.
  r = eval(make(OpCode::IndexSelect, {input(DType::Bool, {0, 2}, {}), input(DType::Int64, {0}, {})},
                dim(0)));
  EXPECT_EQ(r.shape, (Shape{0, 2}));
  EXPECT_EQ(r.dtype, DType::Bool);
}

TEST(Gather, OutOfRangeIndicesFailAtEvaluation) {
  NodePtr x = input(DType::Float32, {5}, {1, 2, 3, 4, 5});
  for (auto [bad, text] :
       {std::pair{int64_t{7}, "7"}, std::pair{int64_t{5}, "5"}, std::pair{int64_t{-1}, "-1"}}) {
    NodePtr n = make(OpCode::IndexSelect, {x, input_int(DType::Int64, {2}, {0, bad})}, dim(0));
    absl::StatusOr<std::vector<RefTensor>> v = reference_evaluate({n});
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(v.status().message(),
              std::string("index_select: index ") + text + " is out of range for dim 0 of size 5");
  }
  // Even when nothing would be read (the other dim is empty), a bad index is an error.
  NodePtr empty = input(DType::Float32, {0, 2}, {});
  NodePtr n = make(OpCode::IndexSelect, {empty, input(DType::Int32, {1}, {2})}, dim(1));
  EXPECT_FALSE(reference_evaluate({n}).ok());
}

TEST(Gather, TypeErrors) {
  NodePtr x = placeholder(DType::Float32, {5, 2});
  EXPECT_EQ(make_error(OpCode::IndexSelect, {x, placeholder(DType::Float32, {3})}, dim(0)),
            "index_select: index must be an integer tensor (i32 or i64), got f32");
  EXPECT_EQ(make_error(OpCode::IndexSelect, {x, placeholder(DType::Bool, {3})}, dim(0)),
            "index_select: index must be an integer tensor (i32 or i64), got bool");
  EXPECT_EQ(make_error(OpCode::IndexSelect, {x, placeholder(DType::Int64, {3, 1})}, dim(0)),
            "index_select: index must be 0-d or 1-d, got shape [3, 1]");
  EXPECT_EQ(make_error(OpCode::IndexSelect, {x, placeholder(DType::Int64, {3})}, dim(2)),
            "index_select: dim 2 is not a dim of [5, 2] (valid: 0 to 1)");
  EXPECT_EQ(make_error(OpCode::IndexSelect, {x, placeholder(DType::Int64, {3})}, dim(-1)),
            "index_select: dim -1 is not a dim of [5, 2] (valid: 0 to 1)");
  EXPECT_EQ(make_error(OpCode::IndexSelect,
                       {placeholder(DType::Float32, {}), placeholder(DType::Int64, {1})}, dim(0)),
            "index_select: dim 0 is not a dim of [] (it has none)");
  EXPECT_EQ(make_error(OpCode::IndexSelect, {x}, dim(0)), "index_select: takes 2 operands, got 1");
  EXPECT_EQ(type_of(OpCode::IndexSelect, {x, placeholder(DType::Int32, {7})}, dim(0)),
            (TypeInfo{DType::Float32, {7, 2}}));
  EXPECT_EQ(op_def(OpCode::IndexSelect).kind, OpKind::Gather);
}

}  // namespace
}  // namespace smelt::ir
