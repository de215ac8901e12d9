// The image transforms: values, shapes, randomness and errors.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tests/frontend/frontend_testing.h"

namespace smelt::data::transforms {
namespace {

using smelt::testing::expect_error;
using smelt::testing::expect_tensor;

// [C, H, W] with element (c, h, w) = 100 c + 10 h + w.
Tensor image(int64_t c, int64_t h, int64_t w, DType dtype = DType::Float32) {
  std::vector<double> v;
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t j = 0; j < h; ++j) {
      for (int64_t k = 0; k < w; ++k) v.push_back(static_cast<double>(100 * i + 10 * j + k));
    }
  }
  return from_vector(v, {c, h, w}).to(dtype);
}

TEST(Normalize, ScalarMeanAndStd) {
  const Tensor x = tensor({{0.f, 0.5f}, {1.f, 0.25f}});
  expect_tensor(Normalize(0.5f, 0.5f)(x), {2, 2}, {-1, 0, 1, -0.5});
  // Float64 stays Float64; a pending input is computed first.
  const Tensor y = Normalize(1.0, 4.0)(tensor({5.0, 9.0}) * 1.0);
  EXPECT_EQ(y.dtype(), DType::Float64);
  expect_tensor(y, {2}, {1, 2});
}

TEST(Normalize, PerChannelOnImagesAndBatches) {
  const Normalize norm({1.0, 100.0}, {2.0, 10.0});
  expect_tensor(norm(image(2, 1, 2)), {2, 1, 2}, {-0.5, 0, 0, 0.1});
  // A batch [N, C, H, W] is normalized per channel too.
  const Tensor batch = stack({image(2, 1, 2), image(2, 1, 2) + 1.f}, 0);
  expect_tensor(norm(batch), {2, 2, 1, 2}, {-0.5, 0, 0, 0.1, 0, 0.5, 0.1, 0.2});
}

TEST(Normalize, MatchesTheArithmeticInFloat32) {
  const Tensor x = rand({3, 8, 8});
  const Tensor ref = (x - 0.2860f) / 0.3530f;
  const std::vector<float> got = Normalize(0.2860, 0.3530)(x).to_vector<float>();
  const std::vector<float> want = ref.to_vector<float>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]);
}

TEST(Normalize, Errors) {
  expect_error([] { Normalize(0.5, 0.0); }, {"Normalize:", "nonzero", "std 0"});
  expect_error([] { Normalize({0.5, 0.5}, {0.5}); }, {"as many means as stds", "2 and 1"});
  expect_error(
      [] {
        Normalize({0.5, 0.5}, {1.0, 1.0})(image(3, 2, 2));
      },
      {"[3, 2, 2] has 3 channels", "2 means"});
  expect_error([] { Normalize({0.5, 0.5}, {1.0, 1.0})(zeros({2, 2})); }, {"[..., C, H, W]"});
  expect_error([] { Normalize(0.5, 0.5)(arange(0, 4)); }, {"needs a floating image", "i64"});
}

TEST(RandomHorizontalFlip, AlwaysAndNever) {
  const Tensor x = image(2, 2, 3);
  expect_tensor(RandomHorizontalFlip(1.0)(x), {2, 2, 3},
                {2, 1, 0, 12, 11, 10, 102, 101, 100, 112, 111, 110});
  expect_tensor(RandomHorizontalFlip(0.0)(x), {2, 2, 3}, x.to_vector<double>());
  // Any dtype: the bytes move as elements.
  expect_tensor(RandomHorizontalFlip(1.0)(image(1, 1, 3, DType::Int64)), {1, 1, 3}, {2, 1, 0});
  expect_tensor(RandomVerticalFlip(1.0)(image(1, 3, 2)), {1, 3, 2}, {20, 21, 10, 11, 0, 1});
}

TEST(RandomHorizontalFlip, FlipsAboutHalfTheTimeAndFollowsTheSeed) {
  const Tensor x = tensor({{1.f, 2.f}});
  auto draws = [&] {
    std::vector<bool> flipped;
    const RandomHorizontalFlip flip;
    for (int i = 0; i < 400; ++i) flipped.push_back(flip(x).to_vector<float>()[0] == 2.f);
    return flipped;
  };
  manual_seed(11);
  const std::vector<bool> a = draws();
  manual_seed(11);
  EXPECT_EQ(draws(), a);
  const int64_t n = std::count(a.begin(), a.end(), true);
  EXPECT_GT(n, 150);
  EXPECT_LT(n, 250);
  expect_error([] { RandomHorizontalFlip(1.5); }, {"probability must be in [0, 1]", "1.5"});
  expect_error([] { RandomHorizontalFlip()(tensor({1.f})); }, {"[..., H, W]", "[1]"});
}

TEST(RandomCrop, ShapeAndContentWithoutPadding) {
  const Tensor x = image(2, 5, 6);
  manual_seed(3);
  for (int i = 0; i < 20; ++i) {
    const Tensor y = RandomCrop({3, 4})(x);
    ASSERT_EQ(y.shape(), (std::vector<int64_t>{2, 3, 4}));
    const std::vector<double> v = y.to_vector<double>();
    // A window: element (c, i, j) = 100 c + 10 (top + i) + (left + j).
    const int64_t top = static_cast<int64_t>(v[0]) / 10, left = static_cast<int64_t>(v[0]) % 10;
    ASSERT_LE(top, 2);
    ASSERT_LE(left, 2);
    for (int64_t c = 0; c < 2; ++c) {
      for (int64_t r = 0; r < 3; ++r) {
        for (int64_t k = 0; k < 4; ++k) {
          ASSERT_EQ(v[static_cast<size_t>((c * 3 + r) * 4 + k)],
                    100 * c + 10 * (top + r) + (left + k));
        }
      }
    }
  }
  // The full size is the image itself.
  expect_tensor(RandomCrop(5, 0)(image(1, 5, 5)), {1, 5, 5}, image(1, 5, 5).to_vector<double>());
}

TEST(RandomCrop, PaddingIsZerosAndEveryOffsetOccurs) {
  const Tensor x = image(1, 2, 2) + 1.f;  // values 1, 2, 11, 12: nonzero
  std::set<std::vector<double>> seen;
  manual_seed(5);
  for (int i = 0; i < 300; ++i) seen.insert(RandomCrop(2, 1)(x).to_vector<double>());
  // A 2 x 2 window on the 4 x 4 padded image: 9 offsets, each a distinct crop.
  EXPECT_EQ(seen.size(), 9u);
  EXPECT_TRUE(seen.count({0, 0, 0, 1}));    // top-left corner: the image's first pixel
  EXPECT_TRUE(seen.count({12, 0, 0, 0}));   // bottom-right corner
  EXPECT_TRUE(seen.count({1, 2, 11, 12}));  // the image itself
  EXPECT_TRUE(seen.count({0, 0, 1, 2}));    // top row of padding
  // Padding of 4 around 28 x 28 then a 28 x 28 crop (the CIFAR recipe) keeps the shape.
  EXPECT_EQ(RandomCrop(28, 4)(zeros({1, 28, 28})).shape(), (std::vector<int64_t>{1, 28, 28}));
  // A crop as large as the padded image is the padded image.
  expect_tensor(RandomCrop(4, 1)(x), {1, 4, 4}, {0, 0, 0, 0, 0, 1, 2, 0, 0, 11, 12, 0, 0, 0, 0, 0});
}

TEST(RandomCrop, Errors) {
  expect_error(
      [] {
        RandomCrop(5)(zeros({1, 4, 4}));
      },
      {"RandomCrop: the image [1, 4, 4] padded by 0 is 4 x 4", "smaller than the crop 5 x 5"});
  expect_error([] { RandomCrop({1, 2, 3}); }, {"one number or {height, width}"});
  expect_error([] { RandomCrop(0); }, {"size of at least 1"});
  expect_error([] { RandomCrop(2, -1); }, {"padding of at least 0"});
}

TEST(Compose, AppliesInOrder) {
  const Tensor x = tensor({{1.f, 2.f, 3.f}});
  // Flip, then subtract 1, then double: (3, 2, 1) -> (2, 1, 0) -> (4, 2, 0).
  const Compose pipeline({RandomHorizontalFlip(1.0), Normalize(1.0, 1.0),
                          Lambda([](const Tensor& t) { return t * 2.f; })});
  expect_tensor(pipeline(x), {1, 3}, {4, 2, 0});
  // The other order gives another answer: (2, 4, 6) -> (1, 3, 5) -> (5, 3, 1).
  const Compose other(
      {[](const Tensor& t) { return t * 2.f; }, Normalize(1.0, 1.0), RandomHorizontalFlip(1.0)});
  expect_tensor(other(x), {1, 3}, {5, 3, 1});
  expect_tensor(Compose(std::vector<Transform>{})(x), {1, 3}, {1, 2, 3});
  expect_error([] { Compose({Transform()}); }, {"Compose: transform 0 is empty"});
  expect_error([] { Lambda(nullptr); }, {"Lambda: the function is empty"});
}

TEST(Transforms, RunInTheLoaderWithTheDataset) {
  // TransformDataset applies the transform per example; the loader batches the results.
  const TensorDataset base(image(1, 2, 2).unsqueeze(0).expand({4, 1, 2, 2}) * 1.f, arange(0, 4));
  const TransformDataset ds(base, Compose({RandomHorizontalFlip(1.0), Normalize(1.0, 2.0)}),
                            [](const Tensor& y) { return y * int64_t{10}; });
  DataLoader loader(ds, DataLoaderOptions(3));
  std::vector<Example> batches;
  for (auto& b : loader) batches.push_back(b);
  ASSERT_EQ(batches.size(), 2u);
  // (1, 0, 11, 10) - 1 then / 2.
  expect_tensor(batches[0].data, {3, 1, 2, 2}, {0, -0.5, 5, 4.5, 0, -0.5, 5, 4.5, 0, -0.5, 5, 4.5});
  EXPECT_EQ(batches[1].target.to_vector<int64_t>(), (std::vector<int64_t>{30}));
}

}  // namespace
}  // namespace smelt::data::transforms
