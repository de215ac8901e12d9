// DTypes: names, sizes, categories and the promotion table.
#include <gtest/gtest.h>
#include <smelt/dtype.h>

#include <sstream>

namespace smelt {
namespace {

constexpr DType B = DType::Bool, I32 = DType::Int32, I64 = DType::Int64, F32 = DType::Float32,
                F64 = DType::Float64;

TEST(DType, PromotionTableForAllPairs) {
  // torch.result_type for two tensors: the higher category wins, then the wider type.
  const DType order[] = {B, I32, I64, F32, F64};
  const DType want[5][5] = {
      /*         bool  i32  i64  f32  f64 */
      /* bool */ {B, I32, I64, F32, F64},
      /* i32  */ {I32, I32, I64, F32, F64},
      /* i64  */ {I64, I64, I64, F32, F64},
      /* f32  */ {F32, F32, F32, F32, F64},
      /* f64  */ {F64, F64, F64, F64, F64},
  };
  for (int a = 0; a < 5; ++a) {
    for (int b = 0; b < 5; ++b) {
      EXPECT_EQ(promote_types(order[a], order[b]), want[a][b])
          << dtype_name(order[a]) << " with " << dtype_name(order[b]);
    }
  }
  static_assert(promote_types(I64, F32) == F32);  // usable at compile time
}

TEST(DType, NamesRoundTrip) {
  for (DType t : kAllDTypes) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
    EXPECT_EQ(dtype_from_name(dtype_long_name(t)), t);
  }
  EXPECT_STREQ(dtype_name(F32), "f32");
  EXPECT_STREQ(dtype_name(B), "bool");
  EXPECT_STREQ(dtype_long_name(I64), "int64");
  EXPECT_EQ(dtype_from_name("float16"), std::nullopt);
  EXPECT_EQ(dtype_from_name(""), std::nullopt);
  std::ostringstream os;
  os << F64;
  EXPECT_EQ(os.str(), "float64");
}

TEST(DType, SizesAndCategories) {
  EXPECT_EQ(dtype_size(B), 1u);
  EXPECT_EQ(dtype_size(I32), 4u);
  EXPECT_EQ(dtype_size(I64), 8u);
  EXPECT_EQ(dtype_size(F32), 4u);
  EXPECT_EQ(dtype_size(F64), 8u);
  for (DType t : kAllDTypes) {
    const bool f = t == F32 || t == F64;
    const bool i = t == I32 || t == I64;
    EXPECT_EQ(is_floating(t), f);
    EXPECT_EQ(is_integral(t), i);
  }
}

}  // namespace
}  // namespace smelt
