// Reductions and softmax: values as PyTorch computes them, dims (negative, lists, keepdim),
// result dtypes, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <sstream>

#include "runtime/program.h"
#include "tests/common/gradcheck.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

Tensor matrix() { return tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}); }

TEST(Sum, Dims) {
  Tensor x = matrix();
  expect_tensor(x.sum(), {}, {21});
  expect_tensor(x.sum(0), {3}, {5, 7, 9});
  expect_tensor(x.sum(1), {2}, {6, 15});
  expect_tensor(x.sum(-1), {2}, {6, 15});
  expect_tensor(x.sum(1, true), {2, 1}, {6, 15});
  expect_tensor(x.sum({0, 1}), {}, {21});
  expect_tensor(x.sum({0, -1}, true), {1, 1}, {21});
  expect_tensor(x.sum(std::vector<int64_t>{}), {}, {21});  // an empty list means all dims
  // [2, 3, 4] with value 12i + 4j + k, summed over i and k: 60 + 32j.
  Tensor y = arange(24).reshape({2, 3, 4});
  Tensor s = y.sum({0, 2});
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EQ(s.to_vector<int64_t>(), (std::vector<int64_t>{60, 92, 124}));
  EXPECT_EQ(y.sum({2, 0}, true).shape(), (std::vector<int64_t>{1, 3, 1}));
}

TEST(Sum, BoolAndInt32GiveInt64) {
  Tensor b = tensor({true, false, true});
  EXPECT_EQ(b.sum().dtype(), DType::Int64);
  EXPECT_EQ(b.sum().item<int64_t>(), 2);
  Tensor i = from_vector(std::vector<int32_t>{2000000000, 2000000000});
  EXPECT_EQ(i.sum().dtype(), DType::Int64);
  EXPECT_EQ(i.sum().item<int64_t>(), 4000000000);
  EXPECT_EQ(tensor({1.0, 2.0}).sum().dtype(), DType::Float64);
}

TEST(Sum, ZeroDimAndEmpty) {
  expect_tensor(scalar_tensor(2.5f).sum(), {}, {2.5});
  expect_tensor(scalar_tensor(2.5f).sum(0), {}, {2.5});
  expect_tensor(zeros({0, 3}).sum(0), {3}, {0, 0, 0});
}

TEST(Sum, Errors) {
  Tensor x = matrix();
  expect_error([&] { x.sum(2); }, {"sum: dim 2 is out of range for a 2-d tensor"});
  expect_error([&] { x.sum({1, -1}); }, {"sum: dim 1 appears more than once in [1, -1]"});
}

TEST(Mean, Values) {
  Tensor x = matrix();
  expect_tensor(x.mean(), {}, {3.5});
  expect_tensor(x.mean(0), {3}, {2.5, 3.5, 4.5});
  expect_tensor(x.mean(-1, true), {2, 1}, {2, 5});
  expect_tensor(x.mean({0, 1}), {}, {3.5});
  EXPECT_EQ(tensor({1.0, 2.0}).mean().dtype(), DType::Float64);
}

TEST(Mean, NeedsFloating) {
  expect_error(
      [] {
        tensor({1, 2}).mean();
      },
      {"mean: needs a floating dtype, got i64; call .to(DType::Float32) first"});
  expect_error([] { tensor({true}).mean(0); }, {"mean:", "bool"});
  expect_error([] { tensor({1, 2}).var(); }, {"var: needs a floating dtype, got i64"});
  expect_error([] { tensor({1, 2}).std(); }, {"std: needs a floating dtype, got i64"});
}

TEST(MaxMin, Values) {
  Tensor x = tensor({{1.f, 5.f, 3.f}, {4.f, 2.f, 6.f}});
  expect_tensor(x.max(), {}, {6});
  expect_tensor(x.min(), {}, {1});
  expect_tensor(x.max(0), {3}, {4, 5, 6});
  expect_tensor(x.max(1), {2}, {5, 6});
  expect_tensor(x.min(-1), {2}, {1, 2});
  expect_tensor(x.min(0, true), {1, 3}, {1, 2, 3});
  expect_tensor(x.max({0, 1}, true), {1, 1}, {6});
  Tensor i = tensor({3, -7, 2});
  EXPECT_EQ(i.min().dtype(), DType::Int64);
  EXPECT_EQ(i.min().item<int64_t>(), -7);
  EXPECT_TRUE(tensor({false, true}).max().item<bool>());
  // NaN propagates.
  EXPECT_TRUE(std::isnan(tensor({1.f, NAN}).max().item<float>()));
}

TEST(MaxMin, EmptyHasNoAnswer) {
  expect_error([] { zeros({0}).max(); }, {"max:", "empty", "[0]"});
  expect_error([] { zeros({2, 0}).min(1); }, {"min: cannot reduce dim 1 of [2, 0]"});
  // Reducing a non-empty dim of an empty tensor is fine: the result is empty.
  EXPECT_EQ(zeros({2, 0}).max(0).shape(), (std::vector<int64_t>{0}));
}

TEST(ArgMaxMin, Values) {
  Tensor x = tensor({{1.f, 5.f, 3.f}, {4.f, 2.f, 6.f}});
  Tensor a = x.argmax();
  EXPECT_EQ(a.dtype(), DType::Int64);
  EXPECT_EQ(a.shape(), std::vector<int64_t>{});
  EXPECT_EQ(a.item<int64_t>(), 5);
  EXPECT_EQ(x.argmin().item<int64_t>(), 0);
  EXPECT_EQ(x.argmax(1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(x.argmin(0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(x.argmax(-1, true).shape(), (std::vector<int64_t>{2, 1}));
  // Ties give the first index.
  EXPECT_EQ(tensor({1.f, 3.f, 3.f}).argmax().item<int64_t>(), 1);
  EXPECT_EQ(tensor({true, false, true}).argmin().item<int64_t>(), 1);
  EXPECT_EQ(scalar_tensor(4.f).argmax(0).item<int64_t>(), 0);
  expect_error([&] { x.argmax(3); }, {"argmax: dim 3 is out of range"});
  expect_error([] { zeros({0}).argmax(); }, {"argmax:", "empty"});
}

TEST(Var, UnbiasedByDefault) {
  Tensor x = matrix();
  // 1..6: mean 3.5, squared deviations sum to 17.5.
  expect_tensor(x.var(), {}, {3.5});
  expect_tensor(x.var(false), {}, {17.5 / 6});
  expect_tensor(x.var(1), {2}, {1, 1});
  expect_tensor(x.var(0), {3}, {4.5, 4.5, 4.5});
  expect_tensor(x.var(0, false), {3}, {2.25, 2.25, 2.25});
  expect_tensor(x.var(0, true, true), {1, 3}, {4.5, 4.5, 4.5});
  expect_tensor(x.var({0, 1}), {}, {3.5});
  expect_tensor(x.std(), {}, {1.8708286933869707});
  expect_tensor(x.std(1), {2}, {1, 1});
  expect_tensor(x.std(0, false), {3}, {1.5, 1.5, 1.5});
  expect_tensor(x.std({-1}, true, true), {2, 1}, {1, 1});
  // One element: N - 1 = 0, so NaN (PyTorch).
  EXPECT_TRUE(std::isnan(tensor({1.f}).var().item<float>()));
  EXPECT_FLOAT_EQ(tensor({1.f}).var(false).item<float>(), 0.f);
}

TEST(Softmax, Values) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  const std::vector<double> expected = {0.09003057317038046, 0.24472847105479764,
                                        0.6652409557748219};
  expect_tensor(softmax(a, 0), {3}, expected);
  expect_tensor(a.softmax(-1), {3}, expected);
  // Stable: a shift by 1000 changes nothing (a naive exp would overflow to inf/inf).
  expect_tensor(softmax(a + 1000.f, 0), {3}, expected);
  expect_tensor(log_softmax(a, 0), {3},
                {-2.4076059644443806, -1.4076059644443804, -0.4076059644443803});
  expect_tensor(log_softmax(a * 1000.f, 0), {3}, {-2000, -1000, 0}, 1e-3);
  Tensor m = tensor({{1.f, 2.f, 3.f}, {1.f, 1.f, 1.f}});
  expect_tensor(softmax(m, 1), {2, 3},
                {expected[0], expected[1], expected[2], 1. / 3, 1. / 3, 1. / 3});
  expect_tensor(
      softmax(m, 0), {2, 3},
      {0.5, 0.7310585786300049, 0.8807970779778823, 0.5, 0.2689414213699951, 0.11920292202211755});
  expect_tensor(m.log_softmax(0).exp(), {2, 3}, softmax(m, 0).to_vector<double>());
}

TEST(Softmax, Errors) {
  expect_error([] { softmax(tensor({1, 2}), 0); }, {"softmax: needs a floating dtype, got i64"});
  expect_error([] { log_softmax(zeros({2, 3}), 2); }, {"log_softmax: dim 2 is out of range"});
  EXPECT_EQ(softmax(zeros({0, 3}), 1).shape(), (std::vector<int64_t>{0, 3}));
}

TEST(Prod, ValuesDimsAndDtypes) {
  Tensor x = tensor({1.f, 2.f, 3.f, -4.f, 0.5f, 2.f}).reshape({2, 3});
  expect_tensor(x.prod(), {}, {-24});
  expect_tensor(x.prod(0), {3}, {-4, 1, 6});
  expect_tensor(x.prod(-1, true), {2, 1}, {6, -4});
  // PyTorch multiplies Bool and Int32 in Int64; an empty product is 1.
  Tensor i = tensor<int64_t>({100000, 100000, 3}).to(DType::Int32);
  EXPECT_EQ(i.prod().dtype(), DType::Int64);
  EXPECT_EQ(i.prod().item<int64_t>(), int64_t{30000000000});
  EXPECT_EQ(tensor<int64_t>({1, 0}).to(DType::Bool).prod().item<int64_t>(), 0);
  expect_tensor(zeros({2, 0}).prod(1), {2}, {1, 1});
  expect_error([&] { x.prod(2); }, {"prod", "dim"});
  expect_error([&] { Tensor().prod(); }, {"prod", "undefined"});
}

TEST(Prod, GradientIsExactWithZeros) {
  // d prod / d x_k is the product of the others, also where x_k or another element is 0.
  testing::gradcheck([](const auto& in) { return in[0].prod(1).sum(); },
                     {tensor({2.0, 0.0, 3.0, 0.0, 0.0, 5.0, 1.5, -2.0, 4.0}).reshape({3, 3})});
  testing::gradcheck([](const auto& in) { return in[0].prod(); }, {randn({2, 3})});
}

// A plain loop over a [outer, n, inner] view, in double: what cumsum along the middle must give.
std::vector<double> cumsum_loop(const std::vector<double>& x, int64_t outer, int64_t n,
                                int64_t inner) {
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t e = 0; e < inner; ++e) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t k = (o * n + j) * inner + e;
        acc += x[k];
        y[k] = acc;
      }
    }
  }
  return y;
}

TEST(Cumsum, ValuesAlongEveryDim) {
  Tensor x = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  expect_tensor(x.cumsum(1), {2, 3}, {1, 3, 6, 4, 9, 15});
  expect_tensor(x.cumsum(0), {2, 3}, {1, 2, 3, 5, 7, 9});
  expect_tensor(cumsum(x, -1), {2, 3}, {1, 3, 6, 4, 9, 15});
  Tensor y = randn({3, 4, 5}, DType::Float64);
  const std::vector<double> v = y.to_vector<double>();
  expect_tensor(y.cumsum(0), {3, 4, 5}, cumsum_loop(v, 1, 3, 20), 1e-12);
  expect_tensor(y.cumsum(1), {3, 4, 5}, cumsum_loop(v, 3, 4, 5), 1e-12);
  expect_tensor(y.cumsum(2), {3, 4, 5}, cumsum_loop(v, 12, 5, 1), 1e-12);
}

TEST(Cumsum, LargeInputsTakeEveryParallelPath) {
  // Long rows (one line per unit), tall columns (blocks of columns) and a wide last-dim scan.
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{3, 100000}, {2000, 700}, {7, 300, 513}}) {
    Tensor x = rand(shape, DType::Float64);
    const std::vector<double> v = x.to_vector<double>();
    for (int64_t dim = 0; dim < static_cast<int64_t>(shape.size()); ++dim) {
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
      for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
      const std::vector<double> want = cumsum_loop(v, outer, shape[dim], inner);
      const std::vector<double> got = x.cumsum(dim).to_vector<double>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < got.size(); k += 97) ASSERT_EQ(got[k], want[k]) << k << " dim " << dim;
    }
  }
}

TEST(Cumsum, DtypesLikePyTorch) {
  EXPECT_EQ(tensor<int64_t>({1, 2, 3}).to(DType::Int32).cumsum(0).dtype(), DType::Int64);
  Tensor b = tensor<int64_t>({1, 0, 1, 1}).to(DType::Bool).cumsum(0);
  EXPECT_EQ(b.dtype(), DType::Int64);
  EXPECT_EQ(b.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 2, 3}));
  // Float32 sums are kept in double: adding 1e-8 to 1 a million times moves it.
  Tensor small = full({1000001}, 1e-8f);
  Tensor first = tensor({1.f});
  Tensor run = cat({first, small.slice(0, 0, 1000000)}).cumsum(0);
  EXPECT_NEAR(run.to_vector<float>().back(), 1.01f, 1e-6);
}

TEST(Cumsum, ZeroDimEmptyAndErrors) {
  expect_tensor(scalar_tensor(2.5).cumsum(0), {}, {2.5});
  expect_tensor(scalar_tensor(2.5).cumsum(-1), {}, {2.5});
  EXPECT_EQ(zeros({0, 3}).cumsum(0).shape(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(zeros({2, 0}).cumsum(1).shape(), (std::vector<int64_t>{2, 0}));
  expect_error([] { zeros({2, 3}).cumsum(2); }, {"cumsum", "dim 2", "2-d"});
  expect_error([] { Tensor().cumsum(0); }, {"cumsum", "undefined"});
}

TEST(Cumsum, FusesAroundTheLibraryCallAndDifferentiates) {
  Tensor x = randn({4, 6});
  const std::vector<float> in = x.to_vector<float>();
  Tensor y = exp((x * 2.f + 1.f).cumsum(1) * 0.1f);
  const std::string plan = compiled_text({y}, "fusion");
  EXPECT_NE(plan.find("cumsum is a library call"), std::string::npos) << plan;
  const std::vector<float> got = y.to_vector<float>();
  for (int64_t r = 0; r < 4; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < 6; ++c) {
      acc += static_cast<double>(in[r * 6 + c] * 2.f + 1.f);
      EXPECT_NEAR(got[r * 6 + c], std::exp(static_cast<float>(acc) * 0.1f), 1e-5);
    }
  }
  // d/dx of sum(w * cumsum(x)) is the reversed running sum of w.
  testing::gradcheck([](const auto& in) { return (in[1] * in[0].cumsum(1)).sum(); },
                     {randn({3, 5}), randn({3, 5})});
  testing::gradcheck([](const auto& in) { return (in[0].cumsum(0) * in[0].cumsum(0)).sum(); },
                     {randn({4, 2})});
  // Twice: the gradient of the gradient goes through cumsum's reverse form.
  Tensor a = randn({5}, DType::Float64).requires_grad_();
  Tensor w = randn({5}, DType::Float64);
  Tensor g = grad({(a.cumsum(0).pow(2.0) * w).sum()}, {a}, /*create_graph=*/true)[0];
  g.sum().backward();
  const std::vector<double> av = a.to_vector<double>(), wv = w.to_vector<double>();
  // g_i = sum_{j>=i} 2 w_j c_j with c = cumsum(a); d(sum g)/da_k = sum_i sum_{j>=i, j>=k} 2 w_j.
  std::vector<double> want(5, 0.0);
  for (int k = 0; k < 5; ++k)
    for (int i = 0; i < 5; ++i)
      for (int j = std::max(i, k); j < 5; ++j) want[k] += 2 * wv[j];
  expect_tensor(a.grad(), {5}, want, 1e-9);
}

// Every line of `x` (a [outer, n, inner] view) sorted by std::stable_sort: the positions.
std::vector<int64_t> argsort_loop(const std::vector<double>& x, int64_t outer, int64_t n,
                                  int64_t inner, bool descending) {
  std::vector<int64_t> out(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t e = 0; e < inner; ++e) {
      std::vector<int64_t> order(n);
      for (int64_t j = 0; j < n; ++j) order[j] = j;
      auto at = [&](int64_t j) { return x[(o * n + j) * inner + e]; };
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return descending ? at(a) > at(b) : at(a) < at(b);
      });
      for (int64_t s = 0; s < n; ++s) out[(o * n + s) * inner + e] = order[s];
    }
  }
  return out;
}

TEST(Sort, MatchesAStableSortAlongEveryDim) {
  // Few distinct values, so ties are common and stability shows.
  Tensor x = randint(0, 7, {5, 40, 3}).to(DType::Float32);
  const std::vector<double> v = x.to_vector<double>();
  const std::vector<int64_t> shape = {5, 40, 3};
  for (int64_t dim = 0; dim < 3; ++dim) {
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
    for (int64_t d = dim + 1; d < 3; ++d) inner *= shape[d];
    for (bool descending : {false, true}) {
      const std::vector<int64_t> want = argsort_loop(v, outer, shape[dim], inner, descending);
      EXPECT_EQ(x.argsort(dim, descending).to_vector<int64_t>(), want) << dim << descending;
      auto [values, positions] = x.sort(dim, descending);
      EXPECT_EQ(positions.to_vector<int64_t>(), want);
      EXPECT_EQ(values.to_vector<double>(), x.gather(dim, positions).to_vector<double>());
      std::vector<double> sorted = values.to_vector<double>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t e = 0; e < inner; ++e)
          for (int64_t j = 1; j < shape[dim]; ++j) {
            const double a = sorted[(o * shape[dim] + j - 1) * inner + e];
            const double b = sorted[(o * shape[dim] + j) * inner + e];
            EXPECT_TRUE(descending ? a >= b : a <= b);
          }
    }
  }
  // Long lines take the parallel path too.
  Tensor big = randn({3, 20000}, DType::Float64);
  EXPECT_EQ(big.argsort().to_vector<int64_t>(),
            argsort_loop(big.to_vector<double>(), 3, 20000, 1, false));
}

TEST(Sort, RadixKeysOrderLikeTheComparator) {
  // float and int32 lines sort by radix keys: negative and positive zeros tie, infinities sit
  // at the ends, NaNs rank above everything, and ties keep their positions, in either order and
  // for a first k too.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> pool = {0.f, -0.f, 1.5f, -1.5f, inf, -inf, nan, 3e-39f, -3e-39f, 7.f};
  std::vector<float> v(2 * 3000);
  std::vector<int64_t> picks =
      randint(0, static_cast<int64_t>(pool.size()), {6000}).to_vector<int64_t>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = pool[picks[i]];
  const Tensor x = from_vector(v, {2, 3000});
  auto rank = [](float a) { return std::isnan(a) ? std::numeric_limits<double>::infinity() : a; };
  for (bool descending : {false, true}) {
    std::vector<int64_t> want;
    for (int64_t line = 0; line < 2; ++line) {
      std::vector<int64_t> order(3000);
      std::iota(order.begin(), order.end(), int64_t{0});
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        const float u = v[line * 3000 + a], w = v[line * 3000 + b];
        if (std::isnan(u) || std::isnan(w)) return descending ? !std::isnan(w) : !std::isnan(u);
        return descending ? rank(u) > rank(w) : rank(u) < rank(w);
      });
      want.insert(want.end(), order.begin(), order.end());
    }
    EXPECT_EQ(x.argsort(1, descending).to_vector<int64_t>(), want) << descending;
    EXPECT_EQ(x.to(DType::Float64).argsort(1, descending).to_vector<int64_t>(), want) << descending;
    std::vector<int64_t> first;
    for (int64_t line = 0; line < 2; ++line) {
      first.insert(first.end(), want.begin() + line * 3000, want.begin() + line * 3000 + 100);
    }
    EXPECT_EQ(std::get<1>(x.topk(100, 1, descending)).to_vector<int64_t>(), first) << descending;
  }
  for (DType dtype : {DType::Int32, DType::Int64, DType::Bool}) {
    const Tensor ints =
        randint(dtype == DType::Bool ? 0 : -1000, dtype == DType::Bool ? 2 : 1000, {3, 500})
            .to(dtype);
    std::vector<double> iv;
    for (int64_t i : ints.to(DType::Int64).to_vector<int64_t>())
      iv.push_back(static_cast<double>(i));
    for (bool descending : {false, true}) {
      EXPECT_EQ(ints.argsort(1, descending).to_vector<int64_t>(),
                argsort_loop(iv, 3, 500, 1, descending))
          << dtype << descending;
    }
  }
  EXPECT_EQ(zeros({3, 0}).argsort(1).numel(), 0);
}

TEST(Sort, ValuesAndPositionsReadApartShareOneSort) {
  // The two results of sort and topk are companions: reading one realizes the other, so the
  // selection or sort runs once however they are read (a library call each).
  Tensor x = randn({64, 100});
  x.eval();
  auto library_calls = [] { return runtime::exec_stats().library_calls; };
  {
    auto [values, positions] = x.topk(5);
    const uint64_t before = library_calls();
    values.eval();
    const uint64_t after_values = library_calls();
    EXPECT_EQ(after_values - before, 2u);  // the selection and the gather
    EXPECT_EQ(positions.to_vector<int64_t>(),
              x.argsort(1, true).slice(1, 0, 5).to_vector<int64_t>());
    EXPECT_EQ(library_calls() - after_values, 1u);  // only the argsort of the check
  }
  {
    auto [values, positions] = x.sort(0);
    const uint64_t before = library_calls();
    std::ostringstream printed;
    printed << positions;
    printed << values;
    EXPECT_EQ(library_calls() - before, 2u);  // one sort, one gather
    EXPECT_EQ(values.to_vector<float>(), x.gather(0, positions).to_vector<float>());
  }
  // A dropped companion is not computed.
  const uint64_t before = library_calls();
  Tensor only = std::get<1>(x.topk(3));
  only.eval();
  EXPECT_EQ(library_calls() - before, 1u);
}

TEST(Sort, DtypesNaNAndZeroDim) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = tensor({2.f, nan, -1.f, 5.f});
  EXPECT_EQ(x.argsort().to_vector<int64_t>(), (std::vector<int64_t>{2, 0, 3, 1}));
  EXPECT_EQ(x.argsort(0, true).to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0, 2}));
  EXPECT_EQ(tensor<int64_t>({1, 0, 1, 0}).to(DType::Bool).argsort().to_vector<int64_t>(),
            (std::vector<int64_t>{1, 3, 0, 2}));
  auto [iv, ip] = tensor<int64_t>({30, -2, 7}).sort(0, true);
  EXPECT_EQ(iv.to_vector<int64_t>(), (std::vector<int64_t>{30, 7, -2}));
  EXPECT_EQ(iv.dtype(), DType::Int64);
  EXPECT_EQ(ip.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 1}));
  auto [sv, sp] = scalar_tensor(4.5).sort();
  EXPECT_EQ(sv.item<double>(), 4.5);
  EXPECT_EQ(sp.item<int64_t>(), 0);
  EXPECT_EQ(zeros({0}).argsort().numel(), 0);
  expect_error([] { zeros({2, 3}).argsort(2); }, {"argsort", "dim 2"});
  expect_error([] { Tensor().sort(); }, {"sort", "undefined"});
}

TEST(TopK, LargestOrSmallestInOrderAndDifferentiable) {
  Tensor x = tensor({{1.f, 9.f, 3.f, 7.f}, {4.f, 4.f, 8.f, 0.f}});
  auto [values, positions] = x.topk(2);
  expect_tensor(values, {2, 2}, {9, 7, 8, 4});
  EXPECT_EQ(positions.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 2, 0}));
  auto [low, low_pos] = x.topk(3, 1, /*largest=*/false);
  expect_tensor(low, {2, 3}, {1, 3, 7, 0, 4, 4});
  EXPECT_EQ(low_pos.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 3, 3, 0, 1}));
  auto [col, col_pos] = x.topk(1, 0);
  expect_tensor(col, {1, 4}, {4, 9, 8, 7});
  EXPECT_EQ(std::get<0>(x.topk(0)).shape(), (std::vector<int64_t>{2, 0}));
  // The gradient of the top values lands where they were.
  Tensor p = tensor({{1.f, 9.f, 3.f, 7.f}, {4.f, 5.f, 8.f, 0.f}}).requires_grad_();
  (std::get<0>(p.topk(2)) * tensor({{10.f, 1.f}, {100.f, 1000.f}})).sum().backward();
  expect_tensor(p.grad(), {2, 4}, {0, 10, 0, 1, 0, 1000, 100, 0});
  testing::gradcheck(
      [](const auto& in) { return std::get<0>(in[0].sort(0)).pow(2.0).cumsum(0).sum(); },
      {randn({5, 3})});
  // Small k (a selection pass) and large k (a partial sort) give the stable sort's first k,
  // ties and NaN included, along either dim.
  Tensor many = randint(0, 6, {9, 300}).to(DType::Float32);
  many = where(many == 5.f, std::numeric_limits<float>::quiet_NaN(), many);
  for (int64_t dim : {0, 1}) {
    for (bool largest : {true, false}) {
      const Tensor full = many.argsort(dim, largest);
      for (int64_t k : {int64_t{1}, int64_t{7}, int64_t{9}, int64_t{100}}) {
        if (k > many.size(dim)) continue;
        EXPECT_EQ(std::get<1>(many.topk(k, dim, largest)).to_vector<int64_t>(),
                  full.slice(dim, 0, k).to_vector<int64_t>())
            << dim << largest << k;
      }
    }
  }
  // Long lines, where the selection skips blocks with nothing better than its k-th: rare NaNs
  // anywhere (they rank above every number), negative zeros, and an integer dtype.
  Tensor wide = randn({4, 1000});
  wide = where(rand({4, 1000}) < 0.01, std::numeric_limits<float>::quiet_NaN(), wide);
  wide = where(wide.abs() < 0.01, -0.0, wide);
  for (const Tensor& line : {wide, randint(-500, 500, {4, 1000})}) {
    for (bool largest : {true, false}) {
      const Tensor full = line.argsort(1, largest);
      for (int64_t k : {int64_t{1}, int64_t{5}, int64_t{64}}) {
        EXPECT_EQ(std::get<1>(line.topk(k, 1, largest)).to_vector<int64_t>(),
                  full.slice(1, 0, k).to_vector<int64_t>())
            << line.dtype() << largest << k;
      }
    }
  }
  expect_error([&] { x.topk(5); }, {"topk", "k = 5", "dim 1", "[2, 4]", "0 to 4"});
  expect_error([&] { x.topk(-1); }, {"topk", "k = -1"});
}

TEST(Gather, ReadsItsSourceInPlace) {
  // gather is an index_select of the flattened source: a source with a buffer is read where it
  // lies, not copied flat first; a pending one is computed into a buffer of its own.
  Tensor x = randn({64, 100});
  Tensor idx = randint(0, 100, {64, 3});
  eval({x, idx});
  const std::vector<float> xv = x.to_vector<float>();
  const std::vector<int64_t> iv = idx.to_vector<int64_t>();
  auto expect_picks = [&](const Tensor& got, float scale) {
    const std::vector<float> gv = got.to_vector<float>();
    ASSERT_EQ(gv.size(), iv.size());
    for (size_t k = 0; k < gv.size(); ++k) {
      EXPECT_EQ(gv[k], scale * xv[(k / 3) * 100 + iv[k]]) << k;
    }
  };
  const runtime::ExecStats before = runtime::exec_stats();
  Tensor g = x.gather(1, idx);
  g.eval();
  const runtime::ExecStats after = runtime::exec_stats();
  // The flat positions and the result's reshape; no 6400-element copy of the source.
  EXPECT_LE(after.kernels_launched - before.kernels_launched, 2u);
  EXPECT_EQ(after.library_calls - before.library_calls, 1u);
  expect_picks(g, 1.f);
  // A pending source, alone and with its flattened view requested too (which then has a
  // buffer of its own, read instead).
  expect_picks((x * 2.f).gather(1, idx), 2.f);
  Tensor doubled = x * 2.f;
  Tensor flat = doubled.reshape({-1});
  Tensor g2 = doubled.gather(1, idx);
  eval({flat, g2});
  expect_picks(g2, 2.f);
  EXPECT_EQ(flat.to_vector<float>()[5], 2.f * xv[5]);
  // One reshape as both the source and the index.
  Tensor ids = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2}) + 0;
  Tensor flat_ids = ids.reshape({-1});
  expect_tensor(flat_ids.index_select(0, flat_ids), {4}, {1, 2, 0, 0});
}

TEST(Gather, PicksAlongADimLikeTorchGather) {
  Tensor x = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  Tensor idx = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
  expect_tensor(x.gather(1, idx), {2, 2}, {3, 1, 5, 5});
  expect_tensor(x.gather(0, from_vector(std::vector<int64_t>{1, 0, 1}, {1, 3})), {1, 3}, {4, 2, 6});
  expect_tensor(x.gather(-1, from_vector(std::vector<int32_t>{0}, {1, 1})), {1, 1}, {1});
  // 3-d against a loop, index smaller than self in the other dims.
  Tensor y = randn({4, 5, 6}, DType::Float64);
  Tensor i3 = randint(0, 5, {3, 7, 2});
  const std::vector<double> yv = y.to_vector<double>();
  const std::vector<int64_t> iv = i3.to_vector<int64_t>();
  const std::vector<double> got = y.gather(1, i3).to_vector<double>();
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 7; ++b)
      for (int64_t c = 0; c < 2; ++c) {
        const int64_t k = (a * 7 + b) * 2 + c;
        EXPECT_EQ(got[k], yv[(a * 5 + iv[k]) * 6 + c]) << k;
      }
  // Repeated positions add their gradients.
  testing::gradcheck([&](const auto& in) { return (in[0].gather(1, i3) * in[1]).sum(); },
                     {randn({4, 5, 6}), randn({3, 7, 2})});
  expect_tensor(scalar_tensor(3.f).gather(0, scalar_tensor(int64_t{0})), {}, {3});
}

TEST(Gather, Errors) {
  Tensor x = zeros({2, 3});
  expect_error(
      [&] {
        x.gather(1, from_vector(std::vector<int64_t>{0, 3}, {1, 2}));
      },
      {"gather", "index 3", "position 1", "dim 1 of size 3"});
  expect_error(
      [&] {
        x.gather(1, from_vector(std::vector<int64_t>{0, 1}, {2}));
      },
      {"gather", "rank (2)", "[2]"});
  expect_error(
      [&] {
        x.gather(1, zeros({3, 1}, DType::Int64));
      },
      {"gather", "larger than self", "dim 0"});
  expect_error([&] { x.gather(1, zeros({2, 1})); }, {"gather", "Int64 or Int32", "f32"});
  // An index computed lazily is checked when the result is realized.
  Tensor lazy = from_vector(std::vector<int64_t>{0, 1}, {1, 2}) * 5;
  expect_error([&] { x.gather(1, lazy).eval(); }, {"index_select", "out of range"});
}

}  // namespace
}  // namespace smelt
