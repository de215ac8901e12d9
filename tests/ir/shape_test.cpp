// Shapes: numel, printing, strides, NumPy broadcasting and dim normalization.
#include "ir/shape.h"

#include <gtest/gtest.h>

namespace smelt::ir {
namespace {

TEST(Shape, NumelAndPrinting) {
  EXPECT_EQ(numel({}), 1);
  EXPECT_EQ(numel({2, 3, 4}), 24);
  EXPECT_EQ(numel({2, 0, 4}), 0);
  EXPECT_EQ(shape_str({}), "[]");
  EXPECT_EQ(shape_str({5}), "[5]");
  EXPECT_EQ(shape_str({2, 3}), "[2, 3]");
}

TEST(Shape, ContiguousStrides) {
  EXPECT_EQ(contiguous_strides({}), Strides{});
  EXPECT_EQ(contiguous_strides({7}), (Strides{1}));
  EXPECT_EQ(contiguous_strides({2, 3, 4}), (Strides{12, 4, 1}));
  EXPECT_EQ(contiguous_strides({2, 0, 4}), (Strides{0, 4, 1}));
}

Shape bcast(Shape a, Shape b) {
  absl::StatusOr<Shape> s = broadcast_shapes("add", a, b);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : Shape{-1};
}

TEST(Shape, BroadcastLikeNumPy) {
  EXPECT_EQ(bcast({2, 3}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(bcast({2, 3}, {3}), (Shape{2, 3}));
  EXPECT_EQ(bcast({3}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(bcast({2, 1}, {1, 3}), (Shape{2, 3}));
  EXPECT_EQ(bcast({}, {4, 5}), (Shape{4, 5}));
  EXPECT_EQ(bcast({4, 5}, {}), (Shape{4, 5}));
  EXPECT_EQ(bcast({}, {}), Shape{});
  EXPECT_EQ(bcast({5, 1, 4}, {3, 1}), (Shape{5, 3, 4}));
  // Size 0 broadcasts against 1 (to 0) and against itself, as in NumPy.
  EXPECT_EQ(bcast({0, 3}, {1, 3}), (Shape{0, 3}));
  EXPECT_EQ(bcast({0}, {1}), (Shape{0}));
  EXPECT_EQ(bcast({1}, {0}), (Shape{0}));
  EXPECT_EQ(bcast({2, 0}, {0}), (Shape{2, 0}));
}

TEST(Shape, BroadcastErrors) {
  absl::StatusOr<Shape> s = broadcast_shapes("add", {2, 3}, {4});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(),
            "add: shapes [2, 3] and [4] cannot be broadcast: dim -1 is 3 vs 4 (sizes must match "
            "or one of them must be 1)");
  s = broadcast_shapes("mul", {2, 3, 4}, {5, 4});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "mul: shapes [2, 3, 4] and [5, 4] cannot be broadcast: dim -2 is 3 vs 5 (sizes must "
            "match or one of them must be 1)");
  // 0 does not stretch to 2.
  EXPECT_FALSE(broadcast_shapes("add", {0}, {2}).ok());
}

TEST(Shape, NormalizeDim) {
  EXPECT_EQ(*normalize_dim("sum", 0, 3), 0);
  EXPECT_EQ(*normalize_dim("sum", 2, 3), 2);
  EXPECT_EQ(*normalize_dim("sum", -1, 3), 2);
  EXPECT_EQ(*normalize_dim("sum", -3, 3), 0);
  // A scalar accepts 0 and -1, as in PyTorch.
  EXPECT_EQ(*normalize_dim("sum", 0, 0), 0);
  EXPECT_EQ(*normalize_dim("sum", -1, 0), 0);
  absl::StatusOr<int64_t> d = normalize_dim("softmax", 3, 3);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(),
            "softmax: dim 3 is out of range for a 3-d tensor (valid: -3 to 2)");
  d = normalize_dim("softmax", -4, 3);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            "softmax: dim -4 is out of range for a 3-d tensor (valid: -3 to 2)");
  EXPECT_FALSE(normalize_dim("sum", 1, 0).ok());
  EXPECT_FALSE(normalize_dim("sum", -2, 0).ok());
}

}  // namespace
}  // namespace smelt::ir
