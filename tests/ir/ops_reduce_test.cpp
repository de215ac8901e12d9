// Reductions: sum/prod/max/min over axes and argmax/argmin along one axis.
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

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Attrs axes(IntList a, bool keepdim = false) { return {{"axes", a}, {"keepdim", keepdim}}; }
Attrs axis(int64_t a, bool keepdim = false) { return {{"axis", a}, {"keepdim", keepdim}}; }

// [[1, 2, 3], [4, 5, 6]]
NodePtr two_by_three(DType t = DType::Float64) { return input(t, {2, 3}, {1, 2, 3, 4, 5, 6}); }

TEST(Reduce, SumOverAxes) {
  NodePtr x = two_by_three();
  RefTensor r = eval(make(OpCode::Sum, {x}, axes({0})));
  EXPECT_EQ(r.shape, (Shape{3}));
  EXPECT_EQ(values(r), (std::vector<double>{5, 7, 9}));
  r = eval(make(OpCode::Sum, {x}, axes({1})));
  EXPECT_EQ(r.shape, (Shape{2}));
  EXPECT_EQ(values(r), (std::vector<double>{6, 15}));
  r = eval(make(OpCode::Sum, {x}, axes({0, 1})));
  EXPECT_EQ(r.shape, Shape{});
  EXPECT_EQ(values(r), (std::vector<double>{21}));
  r = eval(make(OpCode::Sum, {x}, axes({1}, true)));
  EXPECT_EQ(r.shape, (Shape{2, 1}));
  EXPECT_EQ(values(r), (std::vector<double>{6, 15}));
  r = eval(make(OpCode::Sum, {x}, axes({0, 1}, true)));
  EXPECT_EQ(r.shape, (Shape{1, 1}));
}

TEST(Reduce, NonAdjacentAxesOfA3dTensor) {
  // x[i][j][k] = 100 i + 10 j + k, shape [2, 3, 2].
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) v.push_back(100 * i + 10 * j + k);
  NodePtr x = input(DType::Float64, {2, 3, 2}, v);
  // Sum over i and k: for each j, (0 + 100) * 2 + 10 j * 4 + (0 + 1) * 2 = 202 + 40 j.
  RefTensor r = eval(make(OpCode::Sum, {x}, axes({0, 2})));
  EXPECT_EQ(r.shape, (Shape{3}));
  EXPECT_EQ(values(r), (std::vector<double>{202, 242, 282}));
  r = eval(make(OpCode::Max, {x}, axes({0, 2}, true)));
  EXPECT_EQ(r.shape, (Shape{1, 3, 1}));
  EXPECT_EQ(values(r), (std::vector<double>{101, 111, 121}));
  r = eval(make(OpCode::Min, {x}, axes({1})));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  EXPECT_EQ(values(r), (std::vector<double>{0, 1, 100, 101}));
}

TEST(Reduce, EmptyAxesIsIdentity) {
  NodePtr x = two_by_three();
  for (OpCode op : {OpCode::Sum, OpCode::Prod, OpCode::Max, OpCode::Min}) {
    RefTensor r = eval(make(op, {x}, axes({}, true)));
    EXPECT_EQ(r.shape, (Shape{2, 3}));
    EXPECT_EQ(values(r), (std::vector<double>{1, 2, 3, 4, 5, 6})) << op_name(op);
  }
  NodePtr s = input(DType::Float32, {}, {2.5});
  RefTensor r = eval(make(OpCode::Sum, {s}, axes({})));
  EXPECT_EQ(r.shape, Shape{});
  EXPECT_EQ(values(r), (std::vector<double>{2.5}));
}

TEST(Reduce, ProdMaxMin) {
  NodePtr x = input(DType::Float64, {2, 3}, {1, -2, 3, 4, 5, -6});
  EXPECT_EQ(values(eval(make(OpCode::Prod, {x}, axes({1})))), (std::vector<double>{-6, -120}));
  EXPECT_EQ(values(eval(make(OpCode::Max, {x}, axes({0})))), (std::vector<double>{4, 5, 3}));
  EXPECT_EQ(values(eval(make(OpCode::Min, {x}, axes({0, 1})))), (std::vector<double>{-6}));
}

TEST(Reduce, NaNAndInfinities) {
  NodePtr x = input(DType::Float32, {2, 3}, {1, kNaN, 3, -kInf, kInf, 0});
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Max, {x}, axes({1})))), {kNaN, kInf}));
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Min, {x}, axes({1})))), {kNaN, -kInf}));
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Sum, {x}, axes({1})))), {kNaN, kNaN}));
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Prod, {x}, axes({0})))), {-kInf, kNaN, 0}));
  // A NaN anywhere in the extent wins, also when it is the first element.
  NodePtr y = input(DType::Float64, {3}, {kNaN, 5, -1});
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Max, {y}, axes({0})))), {kNaN}));
  EXPECT_TRUE(same_values(values(eval(make(OpCode::Min, {y}, axes({0})))), {kNaN}));
}

TEST(Reduce, IntegersAreExactAndWrap) {
  const int64_t big = (int64_t{1} << 53) + 1;
  NodePtr x = input_int(DType::Int64, {3}, {big, 1, 1});
  EXPECT_EQ(eval(make(OpCode::Sum, {x}, axes({0}))).i, (std::vector<int64_t>{big + 2}));
  EXPECT_EQ(eval(make(OpCode::Max, {x}, axes({0}))).i, (std::vector<int64_t>{big}));
  const int64_t i64_max = std::numeric_limits<int64_t>::max();
  NodePtr w = input_int(DType::Int64, {2}, {i64_max, 1});
  EXPECT_EQ(eval(make(OpCode::Sum, {w}, axes({0}))).i,
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min()}));
  // Int32 wraps at 32 bits.
  NodePtr y = input(DType::Int32, {2}, {2147483647, 2});
  RefTensor s = eval(make(OpCode::Sum, {y}, axes({0})));
  EXPECT_EQ(s.dtype, DType::Int32);
  EXPECT_EQ(s.i, (std::vector<int64_t>{-2147483647}));
  NodePtr p = input(DType::Int32, {2}, {65536, 65536});
  EXPECT_EQ(eval(make(OpCode::Prod, {p}, axes({0}))).i, (std::vector<int64_t>{0}));
}

TEST(Reduce, BoolMaxMinAreAnyAll) {
  NodePtr b = input(DType::Bool, {2, 2}, {0, 1, 0, 0});
  RefTensor any = eval(make(OpCode::Max, {b}, axes({1})));
  EXPECT_EQ(any.dtype, DType::Bool);
  EXPECT_EQ(any.i, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(eval(make(OpCode::Min, {b}, axes({0}))).i, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(make_error(OpCode::Sum, {b}, axes({0})),
            "sum: cannot reduce a bool tensor (cast it to i64 first, as the frontend does)");
  EXPECT_EQ(make_error(OpCode::Prod, {b}, axes({0})),
            "prod: cannot reduce a bool tensor (cast it to i64 first, as the frontend does)");
}

TEST(Reduce, EmptyExtents) {
  NodePtr e = input(DType::Float32, {0, 3}, {});
  RefTensor s = eval(make(OpCode::Sum, {e}, axes({0})));
  EXPECT_EQ(s.shape, (Shape{3}));
  EXPECT_EQ(values(s), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(values(eval(make(OpCode::Prod, {e}, axes({0})))), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(values(eval(make(OpCode::Sum, {e}, axes({0, 1})))), (std::vector<double>{0}));
  // Reducing the non-empty dim of an empty tensor is fine for every op: the result is empty.
  for (OpCode op : {OpCode::Max, OpCode::Min}) {
    RefTensor r = eval(make(op, {e}, axes({1})));
    EXPECT_EQ(r.shape, (Shape{0}));
  }
  EXPECT_EQ(make_error(OpCode::Max, {e}, axes({0})),
            "max: cannot reduce over dim 0 of size 0 (no identity)");
  EXPECT_EQ(make_error(OpCode::Min, {placeholder(DType::Int64, {2, 0})}, axes({0, 1})),
            "min: cannot reduce over dim 1 of size 0 (no identity)");
  NodePtr ie = input(DType::Int32, {0}, {});
  EXPECT_EQ(eval(make(OpCode::Prod, {ie}, axes({0}))).i, (std::vector<int64_t>{1}));
}

TEST(Reduce, AxesMustBeNormalizedSortedUnique) {
  NodePtr x = placeholder(DType::Float32, {2, 3});
  const char* want = "sum: axes [%s] must be unique, sorted dims of [2, 3] (0 to 1)";
  for (const IntList& bad : {IntList{1, 0}, IntList{0, 0}, IntList{2}, IntList{-1}}) {
    std::string list;
    for (size_t k = 0; k < bad.size(); ++k) list += (k ? ", " : "") + std::to_string(bad[k]);
    std::string expected = want;
    expected.replace(expected.find("%s"), 2, list);
    EXPECT_EQ(make_error(OpCode::Sum, {x}, axes(bad)), expected);
  }
  EXPECT_EQ(make_error(OpCode::Max, {placeholder(DType::Float32, {})}, axes({0})),
            "max: axes [0] must be unique, sorted dims of [] (it has none)");
  EXPECT_EQ(make_error(OpCode::Sum, {x}, {{"axes", IntList{0}}}),
            "sum: missing attribute 'keepdim'");
}

TEST(Reduce, ResultTypes) {
  for (DType t : {DType::Int32, DType::Int64, DType::Float32, DType::Float64}) {
    NodePtr x = placeholder(t, {4, 5, 6});
    EXPECT_EQ(type_of(OpCode::Sum, {x}, axes({0, 2})), (TypeInfo{t, {5}}));
    EXPECT_EQ(type_of(OpCode::Min, {x}, axes({1}, true)), (TypeInfo{t, {4, 1, 6}}));
    EXPECT_EQ(type_of(OpCode::ArgMax, {x}, axis(2)), (TypeInfo{DType::Int64, {4, 5}}));
    EXPECT_EQ(type_of(OpCode::ArgMin, {x}, axis(0, true)), (TypeInfo{DType::Int64, {1, 5, 6}}));
  }
  for (OpCode op :
       {OpCode::Sum, OpCode::Prod, OpCode::Max, OpCode::Min, OpCode::ArgMax, OpCode::ArgMin}) {
    EXPECT_EQ(op_def(op).kind, OpKind::Reduce);
  }
}

// ---- argmax / argmin ---------------------------------------------------------------------------

TEST(Reduce, ArgMaxArgMin) {
  NodePtr x = input(DType::Float64, {2, 3}, {1, 5, 2, 7, -1, 7});
  RefTensor r = eval(make(OpCode::ArgMax, {x}, axis(1)));
  EXPECT_EQ(r.dtype, DType::Int64);
  EXPECT_EQ(r.shape, (Shape{2}));
  EXPECT_EQ(r.i, (std::vector<int64_t>{1, 0}));  // ties: the first
  EXPECT_EQ(eval(make(OpCode::ArgMin, {x}, axis(1))).i, (std::vector<int64_t>{0, 1}));
  r = eval(make(OpCode::ArgMax, {x}, axis(0, true)));
  EXPECT_EQ(r.shape, (Shape{1, 3}));
  EXPECT_EQ(r.i, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(eval(make(OpCode::ArgMin, {x}, axis(0))).i, (std::vector<int64_t>{0, 1, 0}));
}

TEST(Reduce, ArgMaxOfA3dTensorAlongTheMiddle) {
  // x[i][j][k] = (j == 2 - i) ? 9 : k, shape [2, 3, 2]: along j, the max of row i is at 2 - i.
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) v.push_back(j == 2 - i ? 9 : k);
  RefTensor r = eval(make(OpCode::ArgMax, {input(DType::Float32, {2, 3, 2}, v)}, axis(1)));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  EXPECT_EQ(r.i, (std::vector<int64_t>{2, 2, 1, 1}));
}

TEST(Reduce, ArgMaxNaNCountsAsTheExtreme) {
  NodePtr x = input(DType::Float64, {5}, {1, kNaN, kInf, kNaN, -kInf});
  EXPECT_EQ(eval(make(OpCode::ArgMax, {x}, axis(0))).i, (std::vector<int64_t>{1}));
  EXPECT_EQ(eval(make(OpCode::ArgMin, {x}, axis(0))).i, (std::vector<int64_t>{1}));
  NodePtr y = input(DType::Float64, {3}, {kInf, 2, kInf});
  EXPECT_EQ(eval(make(OpCode::ArgMax, {y}, axis(0))).i, (std::vector<int64_t>{0}));
}

TEST(Reduce, ArgMaxOfIntegersBoolsAndScalars) {
  const int64_t big = int64_t{1} << 53;
  NodePtr x = input_int(DType::Int64, {3}, {big, big + 1, big});
  EXPECT_EQ(eval(make(OpCode::ArgMax, {x}, axis(0))).i, (std::vector<int64_t>{1}));
  EXPECT_EQ(eval(make(OpCode::ArgMin, {x}, axis(0))).i, (std::vector<int64_t>{0}));
  NodePtr b = input(DType::Bool, {3}, {0, 1, 1});
  EXPECT_EQ(eval(make(OpCode::ArgMax, {b}, axis(0))).i, (std::vector<int64_t>{1}));
  // A 0-d operand: axis 0, result 0, as in PyTorch.
  RefTensor s = eval(make(OpCode::ArgMax, {input(DType::Float32, {}, {3})}, axis(0, true)));
  EXPECT_EQ(s.shape, Shape{});
  EXPECT_EQ(s.i, (std::vector<int64_t>{0}));
  // Size-1 extent.
  EXPECT_EQ(eval(make(OpCode::ArgMin, {input(DType::Int32, {2, 1}, {4, 5})}, axis(1))).i,
            (std::vector<int64_t>{0, 0}));
}

TEST(Reduce, ArgMaxErrors) {
  EXPECT_EQ(make_error(OpCode::ArgMax, {placeholder(DType::Float32, {2, 3})}, axis(2)),
            "argmax: axis 2 is not a dim of [2, 3] (valid: 0 to 1)");
  EXPECT_EQ(make_error(OpCode::ArgMin, {placeholder(DType::Float32, {2, 3})}, axis(-1)),
            "argmin: axis -1 is not a dim of [2, 3] (valid: 0 to 1)");
  EXPECT_EQ(make_error(OpCode::ArgMax, {placeholder(DType::Float32, {2, 0})}, axis(1)),
            "argmax: cannot reduce over dim 1 of size 0 (no identity)");
  // The other dim may be empty: the result is then empty.
  EXPECT_EQ(eval(make(OpCode::ArgMax, {input(DType::Float32, {0, 2}, {})}, axis(1))).shape,
            (Shape{0}));
}

// ---- cumsum (a scan, ir/ops/scan.cpp) -----------------------------------------------------

Attrs scan(int64_t dim, bool reverse = false) { return {{"dim", dim}, {"reverse", reverse}}; }

TEST(Cumsum, RunningSumsAlongEitherDimAndFromTheEnd) {
  NodePtr x = two_by_three();  // [[1, 2, 3], [4, 5, 6]]
  EXPECT_EQ(values(eval(make(OpCode::Cumsum, {x}, scan(1)))),
            (std::vector<double>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(values(eval(make(OpCode::Cumsum, {x}, scan(0)))),
            (std::vector<double>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(values(eval(make(OpCode::Cumsum, {x}, scan(1, true)))),
            (std::vector<double>{6, 5, 3, 15, 11, 6}));
  EXPECT_EQ(eval(make(OpCode::Cumsum, {x}, scan(1))).shape, (Shape{2, 3}));
}

TEST(Cumsum, FloatSumsRoundOnceIntegersWrap) {
  // 1 + 1e-8 + ... is kept in double and rounded to Float32 per output, as PyTorch's CPU does.
  NodePtr f = input(DType::Float32, {3}, {1.0, 1e-8, 1e-8});
  EXPECT_EQ(values(eval(make(OpCode::Cumsum, {f}, scan(0))))[2],
            static_cast<double>(static_cast<float>(1.0 + 2e-8)));
  const int64_t big = std::numeric_limits<int64_t>::max();
  NodePtr i = input_int(DType::Int64, {2}, {big, 1});
  EXPECT_EQ(eval(make(OpCode::Cumsum, {i}, scan(0))).i,
            (std::vector<int64_t>{big, std::numeric_limits<int64_t>::min()}));
}

TEST(IndexAdd, ScattersSlicesBackAndRepeatsAddUp) {
  NodePtr src = two_by_three();  // [[1, 2, 3], [4, 5, 6]]
  NodePtr idx = input_int(DType::Int64, {3}, {2, 0, 2});
  RefTensor r = eval(make(OpCode::IndexAdd, {src, idx}, {{"dim", 1}, {"size", 4}}));
  EXPECT_EQ(r.shape, (Shape{2, 4}));
  EXPECT_EQ(values(r), (std::vector<double>{2, 0, 4, 0, 5, 0, 10, 0}));
  NodePtr rows = input_int(DType::Int32, {2}, {1, 1});
  EXPECT_EQ(values(eval(make(OpCode::IndexAdd, {src, rows}, {{"dim", 0}, {"size", 2}}))),
            (std::vector<double>{0, 0, 0, 5, 7, 9}));
  NodePtr bad = input_int(DType::Int64, {3}, {0, 4, 1});
  absl::StatusOr<std::vector<RefTensor>> v =
      reference_evaluate({make(OpCode::IndexAdd, {src, bad}, {{"dim", 1}, {"size", 4}})});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "index_add: index 4 is out of range for dim 1 of size 4");
  EXPECT_EQ(make_error(OpCode::IndexAdd, {src, rows}, {{"dim", 1}, {"size", 4}}),
            "index_add: 2 indices for the 3 slices along dim 1 of [2, 3]");
}

TEST(ArgSort, StableWithNaNAboveEveryNumber) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  NodePtr x = input(DType::Float64, {6}, {3, nan, -1, 3, 0, -0.0});
  auto sorted = [&](bool descending) {
    return eval(make(OpCode::ArgSort, {x}, {{"dim", 0}, {"descending", descending}})).i;
  };
  // Ties (3 and 3; 0 and -0) keep their order; NaN is last ascending and first descending.
  EXPECT_EQ(sorted(false), (std::vector<int64_t>{2, 4, 5, 0, 3, 1}));
  EXPECT_EQ(sorted(true), (std::vector<int64_t>{1, 0, 3, 4, 5, 2}));
  NodePtr m = two_by_three(DType::Int32);  // [[1, 2, 3], [4, 5, 6]]
  RefTensor r = eval(make(OpCode::ArgSort, {m}, {{"dim", 0}, {"descending", true}}));
  EXPECT_EQ(r.dtype, DType::Int64);
  EXPECT_EQ(r.i, (std::vector<int64_t>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(make_error(OpCode::ArgSort, {m}, {{"dim", 2}, {"descending", false}}),
            "argsort: dim 2 is not a dim of [2, 3] (valid: 0 to 1)");
  // With k, the first k positions only (topk's): the same ones the full sort starts with.
  RefTensor top = eval(make(OpCode::ArgSort, {x}, {{"dim", 0}, {"descending", true}, {"k", 3}}));
  EXPECT_EQ(top.shape, (Shape{3}));
  EXPECT_EQ(top.i, (std::vector<int64_t>{1, 0, 3}));
  EXPECT_EQ(make_error(OpCode::ArgSort, {x}, {{"dim", 0}, {"descending", true}, {"k", 7}}),
            "argsort: k = 7 is not within 0..6 (dim 0 of [6])");
}

TEST(Cumsum, Errors) {
  EXPECT_EQ(make_error(OpCode::Cumsum, {two_by_three()}, scan(2)),
            "cumsum: dim 2 is not a dim of [2, 3] (valid: 0 to 1)");
  NodePtr b = input_int(DType::Bool, {2}, {1, 0});
  EXPECT_EQ(make_error(OpCode::Cumsum, {b}, scan(0)),
            "cumsum: not defined for bool; cast to an integer first");
  EXPECT_EQ(op_def(OpCode::Cumsum).kind, OpKind::Scan);
}

}  // namespace
}  // namespace smelt::ir
