// The expand-pooling pass: plain 2x2 max pools as elementwise and view ops must give exactly
// what the library call and the reference evaluator give, PyTorch's first-maximum and NaN
// rules included (the gradient, a library call, still finds the same winners), and must leave
// other geometries alone.
#include "compiler/passes/expand_pooling.h"

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/tensor_impl.h"
#include "runtime/program.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::reference_values;

// Values with many ties (small integers) and, when asked, some NaNs and infinities.
Tensor tricky(const std::vector<int64_t>& shape, DType dtype, bool specials, uint32_t seed) {
  std::mt19937 gen(seed);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> v(n);
  for (double& x : v) {
    x = static_cast<double>(static_cast<int>(gen() % 5) - 2);
    if (specials && gen() % 9 == 0) {
      const double s[] = {std::numeric_limits<double>::quiet_NaN(),
                          std::numeric_limits<double>::infinity(),
                          -std::numeric_limits<double>::infinity()};
      x = s[gen() % 3];
    }
  }
  return from_vector(v, shape).to(dtype);
}

// Equal as the reference is, NaN where it is NaN.
void expect_same(const Tensor& t, const std::string& what) {
  const std::vector<double> want = reference_values(t);
  const std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " element " << i;
    } else {
      EXPECT_EQ(got[i], want[i]) << what << " element " << i;
    }
  }
}

TEST(ExpandPooling, ForwardAndGradientMatchTheReferenceWithTiesAndNaNs) {
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {2, 3, 8, 8}, {1, 2, 7, 9}, {3, 1, 2, 2}, {2, 2, 5, 4}, {1, 1, 3, 6}}) {
    for (DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64}) {
      for (bool specials : {false, true}) {
        if (specials && !is_floating(t)) continue;
        const std::string what =
            absl::StrCat(dtype_name(t), " [", shape[0], ",", shape[1], ",", shape[2], ",", shape[3],
                         "]", specials ? " with NaN/inf" : "");
        Tensor x = tricky(shape, t, specials, static_cast<uint32_t>(shape[2] * 31 + shape[3]));
        x.eval();
        expect_same(max_pool2d(x, 2), "forward " + what);
        if (!is_floating(t)) continue;
        Tensor xs = x.detach().requires_grad_();
        Tensor y = max_pool2d(xs, 2);
        Tensor g = tricky(y.shape(), t, false, 7).detach();
        Tensor dx = grad({(y * g).sum()}, {xs})[0];
        expect_same(dx, "gradient " + what);
      }
    }
  }
}

TEST(ExpandPooling, ExpandsOnlyPlainWindows) {
  Tensor x = randn({2, 3, 8, 8});
  auto expanded = [](const Tensor& t) {
    int64_t n = 0;
    (void)compiler::expand_pooling(ir::Graph{{node_of(t)}}, &n);
    return n;
  };
  EXPECT_EQ(expanded(max_pool2d(x, 2)), 1);
  EXPECT_EQ(expanded(max_pool2d(x, 2, 2, 0)), 1);
  EXPECT_EQ(expanded(max_pool2d(x, 3)), 0);
  EXPECT_EQ(expanded(max_pool2d(x, 2, 1)), 0);
  EXPECT_EQ(expanded(max_pool2d(x, 2, 2, 1)), 0);
  Tensor xs = x.detach().requires_grad_();
  Tensor dx = grad({max_pool2d(xs, 2).sum()}, {xs})[0];
  EXPECT_EQ(expanded(dx), 0);  // the gradient stays a library call
  // A pool fused with the ReLU before it runs as one kernel, no library call.
  const runtime::ExecStats before = runtime::exec_stats();
  max_pool2d(relu(x), 2).eval();
  const runtime::ExecStats after = runtime::exec_stats();
  EXPECT_EQ(after.library_calls, before.library_calls);
  EXPECT_EQ(after.kernels_launched - before.kernels_launched, 1u);
}

TEST(ExpandPooling, EmptyInputsStayLibraryCalls) {
  Tensor x = randn({0, 3, 4, 4});
  EXPECT_EQ(max_pool2d(x, 2).shape(), (std::vector<int64_t>{0, 3, 2, 2}));
  Tensor xs = x.detach().requires_grad_();
  EXPECT_EQ(grad({max_pool2d(xs, 2).sum()}, {xs})[0].shape(), xs.shape());
}

}  // namespace
}  // namespace smelt
