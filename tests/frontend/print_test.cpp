// Printing: the exact strings PyTorch prints (with smelt's dtype names), and the summary size.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::str;

TEST(Print, Floats) {
  EXPECT_EQ(str(tensor({1.f, 2.f, 3.f})), "tensor([1., 2., 3.])");
  EXPECT_EQ(str(tensor({{1.f, 2.f}, {3.f, 4.f}})), "tensor([[1., 2.],\n        [3., 4.]])");
  EXPECT_EQ(str(tensor({1.5f, 2.25f})), "tensor([1.5000, 2.2500])");
  EXPECT_EQ(str(tensor({0.1f, 0.25f})), "tensor([0.1000, 0.2500])");
  EXPECT_EQ(str(tensor({-1.5f, 2.f})), "tensor([-1.5000,  2.0000])");
  EXPECT_EQ(str(tensor({-1.f, 2.f})), "tensor([-1.,  2.])");
  EXPECT_EQ(str(tensor({0.f, 10.f})), "tensor([ 0., 10.])");
  EXPECT_EQ(str(zeros({2})), "tensor([0., 0.])");
  EXPECT_EQ(str(tensor({1.f, NAN, INFINITY})), "tensor([1., nan, inf])");
  EXPECT_EQ(str(tensor({0.5f, -INFINITY})), "tensor([0.5000,   -inf])");
}

TEST(Print, Scientific) {
  EXPECT_EQ(str(tensor({1e-5f, 1.f})), "tensor([1.0000e-05, 1.0000e+00])");
  EXPECT_EQ(str(tensor({1.f, 1e9f})), "tensor([1.0000e+00, 1.0000e+09])");
  EXPECT_EQ(str(tensor({1.f, 2000.f})), "tensor([1.0000e+00, 2.0000e+03])");
  EXPECT_EQ(str(tensor({1.f, 1000.f})), "tensor([   1., 1000.])");
}

TEST(Print, IntegersAndBools) {
  EXPECT_EQ(str(tensor({1, 2, 3})), "tensor([1, 2, 3])");
  EXPECT_EQ(str(tensor({1, -10})), "tensor([  1, -10])");
  EXPECT_EQ(str(tensor({true, false})), "tensor([ True, False])");  // PyTorch pads True too
  EXPECT_EQ(str(tensor({{true}, {true}})), "tensor([[True],\n        [True]])");
}

TEST(Print, DtypeSuffix) {
  EXPECT_EQ(str(tensor({1.0, 2.0})), "tensor([1., 2.], dtype=float64)");
  EXPECT_EQ(str(from_vector(std::vector<int32_t>{1, 2})), "tensor([1, 2], dtype=int32)");
  EXPECT_EQ(str(scalar_tensor(2, DType::Int32)), "tensor(2, dtype=int32)");
}

TEST(Print, ZeroDim) {
  EXPECT_EQ(str(scalar_tensor(3.5f)), "tensor(3.5000)");
  EXPECT_EQ(str(scalar_tensor(3.f)), "tensor(3.)");
  EXPECT_EQ(str(scalar_tensor(3)), "tensor(3)");
  EXPECT_EQ(str(scalar_tensor(false)), "tensor(False)");
  EXPECT_EQ(str(tensor({1.f, 2.f, 3.f, 4.f}).mean()), "tensor(2.5000)");
}

TEST(Print, HigherRanks) {
  EXPECT_EQ(str(arange(8).reshape({2, 2, 2})),
            "tensor([[[0, 1],\n"
            "         [2, 3]],\n"
            "\n"
            "        [[4, 5],\n"
            "         [6, 7]]])");
}

TEST(Print, WrapsAt80Columns) {
  EXPECT_EQ(str(arange(30)),
            "tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n"
            "        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29])");
}

TEST(Print, SummarizesLargeTensorsAndGivesTheirSize) {
  EXPECT_EQ(str(arange(2000)), "tensor([   0,    1,    2,  ..., 1997, 1998, 1999], size=[2000])");
  EXPECT_EQ(str(zeros({1000, 2})),
            "tensor([[0., 0.],\n"
            "        [0., 0.],\n"
            "        [0., 0.],\n"
            "        ...,\n"
            "        [0., 0.],\n"
            "        [0., 0.],\n"
            "        [0., 0.]], size=[1000, 2])");
  EXPECT_EQ(str(arange(2000).reshape({2, 1000})),
            "tensor([[   0,    1,    2,  ...,  997,  998,  999],\n"
            "        [1000, 1001, 1002,  ..., 1997, 1998, 1999]], size=[2, 1000])");
  // 1000 elements is not summarized (PyTorch's threshold is "more than 1000").
  EXPECT_EQ(str(zeros({1000})).find("..."), std::string::npos);
}

TEST(Print, Empty) {
  EXPECT_EQ(str(zeros({0})), "tensor([])");
  EXPECT_EQ(str(zeros({0, 3})), "tensor([], size=[0, 3])");
  EXPECT_EQ(str(zeros({0}, DType::Int64)), "tensor([], dtype=int64)");
}

TEST(Print, Undefined) { EXPECT_EQ(str(Tensor()), "tensor(undefined)"); }

}  // namespace
}  // namespace smelt
