// matmul with torch.matmul's rank rules, broadcasting batch dims, and its errors.
#include <gtest/gtest.h>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

using Shape = std::vector<int64_t>;

TEST(Matmul, Matrices) {
  Tensor a = tensor({{1.f, 2.f}, {3.f, 4.f}});
  Tensor b = tensor({{5.f, 6.f}, {7.f, 8.f}});
  expect_tensor(matmul(a, b), {2, 2}, {19, 22, 43, 50});
  expect_tensor(a.matmul(b), {2, 2}, {19, 22, 43, 50});
  // [2, 3] x [3, 1]
  Tensor c = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  expect_tensor(matmul(c, tensor({{1.f}, {0.f}, {-1.f}})), {2, 1}, {-2, -2});
}

TEST(Matmul, Vectors) {
  Tensor v = tensor({1.f, 2.f, 3.f});
  Tensor w = tensor({4.f, 5.f, 6.f});
  expect_tensor(matmul(v, w), {}, {32});  // dot product, 0-d
  Tensor a = tensor({{1.f, 2.f}, {3.f, 4.f}});
  expect_tensor(matmul(a, tensor({1.f, 1.f})), {2}, {3, 7});
  expect_tensor(matmul(tensor({1.f, 1.f}), a), {2}, {4, 6});
}

TEST(Matmul, Batched) {
  Tensor a = arange(8).reshape({2, 2, 2}).to(DType::Float32);  // [[0,1],[2,3]], [[4,5],[6,7]]
  Tensor b = tensor({{1.f, 2.f}, {3.f, 4.f}});
  expect_tensor(matmul(a, b), {2, 2, 2}, {3, 4, 11, 16, 19, 28, 27, 40});
  expect_tensor(matmul(a, stack({b, b})), {2, 2, 2}, {3, 4, 11, 16, 19, 28, 27, 40});
  expect_tensor(matmul(tensor({1.f, 1.f}), a), {2, 2}, {2, 4, 10, 12});
  expect_tensor(matmul(a, tensor({1.f, 1.f})), {2, 2}, {1, 5, 9, 13});
  // Batch dims broadcast: [2, 1, 2, 3] x [3, 3, 4] -> [2, 3, 2, 4].
  Tensor x = ones({2, 1, 2, 3});
  Tensor y = ones({3, 3, 4});
  Tensor r = matmul(x, y);
  EXPECT_EQ(r.shape(), (Shape{2, 3, 2, 4}));
  EXPECT_DOUBLE_EQ(r.sum().item<double>(), 2 * 3 * 2 * 4 * 3);
}

TEST(Matmul, Dtypes) {
  Tensor i = tensor({{1, 2}, {3, 4}});
  Tensor r = matmul(i, i);
  EXPECT_EQ(r.dtype(), DType::Int64);
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{7, 10, 15, 22}));
  EXPECT_EQ(matmul(tensor({{1.f}}), tensor({{2.0}})).dtype(), DType::Float64);
}

TEST(Matmul, Errors) {
  expect_error(
      [] {
        matmul(zeros({2, 3}), zeros({4, 5}));
      },
      {"matmul: cannot multiply [2, 3] by [4, 5]: inner dimensions 3 and 4 differ"});
  expect_error([] { matmul(zeros({3}), zeros({4})); },
               {"matmul: cannot multiply [3] by [4]: inner dimensions 3 and 4 differ"});
  expect_error([] { matmul(scalar_tensor(1.f), zeros({2})); },
               {"matmul: cannot multiply [] by [2]", "at least 1 dim"});
  expect_error(
      [] {
        matmul(zeros({2, 2, 3}), zeros({3, 3, 4}));
      },
      {"matmul: cannot multiply [2, 2, 3] by [3, 3, 4]", "batch dims [2] and [3]"});
  expect_error([] { matmul(tensor({{true}}), tensor({{true}})); }, {"matmul:", "bool"});
}

}  // namespace
}  // namespace smelt
