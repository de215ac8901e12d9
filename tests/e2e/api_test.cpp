// End-to-end: the API contract (docs: API.md, sections tensors, operations, evaluation, devices,
// autograd)
// written the way a user writes it, against <smelt/smelt.h> only.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace smelt;  // NOLINT: as user code does

void expect_near_all(const Tensor& t, const std::vector<double>& expected, double tol = 1e-5) {
  const std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tol) << i;
}

std::string printed(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

TEST(Contract, Tensors) {
  Tensor a = tensor({1.f, 2.f, 3.f});
  EXPECT_EQ(a.shape(), (std::vector<int64_t>{3}));
  EXPECT_EQ(a.dtype(), DType::Float32);
  Tensor m = tensor({{1.f, 2.f}, {3.f, 4.f}});
  EXPECT_EQ(m.shape(), (std::vector<int64_t>{2, 2}));
  Tensor v = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(from_vector(std::vector<double>{1, 2}, {2}).dtype(), DType::Float64);
  EXPECT_EQ(from_vector(std::vector<int64_t>{1, 2}, {2}).dtype(), DType::Int64);
  Tensor z = zeros({2, 3});
  ones({2, 3});
  full({2, 3}, 7.f);
  Tensor r = arange(0, 10);
  eye(3);
  manual_seed(42);
  randn({64, 10});
  rand({3});
  randint(0, 10, {5});
  EXPECT_EQ(zeros({2, 3}, DType::Float64).dtype(), DType::Float64);
  EXPECT_EQ(v.dim(), 2);
  EXPECT_EQ(v.numel(), 6);
  EXPECT_EQ(v.device(), Device::cpu());
  EXPECT_FLOAT_EQ(a.sum().item<float>(), 6.f);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(printed(m), "tensor([[1., 2.],\n        [3., 4.]])");
  EXPECT_EQ(r.to_vector<int64_t>().back(), 9);
}

TEST(Contract, Operations) {
  Tensor a = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  Tensor b = tensor({1.f, 0.f, -1.f});
  expect_near_all(a + b, {2, 2, 2, 5, 5, 5});
  expect_near_all(a - b, {0, 2, 4, 3, 5, 7});
  expect_near_all(a * b, {1, 0, -3, 4, 0, -6});
  expect_near_all(b / a, {1, 0, -1. / 3, 0.25, 0, -1. / 6});
  expect_near_all(-b, {-1, 0, 1});
  expect_near_all(a + 1.f, {2, 3, 4, 5, 6, 7});
  expect_near_all(2.f * b, {2, 0, -2});
  EXPECT_EQ((b == b).to_vector<bool>(), (std::vector<bool>{true, true, true}));
  EXPECT_EQ((b < 0.f).to_vector<bool>(), (std::vector<bool>{false, false, true}));
  EXPECT_EQ((b > 0.f).dtype(), DType::Bool);
  expect_near_all(1.f - b, {0, 1, 2});
  a <= b;
  a >= b;
  a != b;

  Tensor w = tensor({{1.f, 0.f}, {0.f, 1.f}, {1.f, 1.f}});
  expect_near_all(matmul(a, w), {4, 5, 10, 11});
  expect_near_all(a.matmul(w), {4, 5, 10, 11});
  for (const Tensor& t : {exp(a), log(a), sqrt(a), rsqrt(a), abs(a), tanh(a), sigmoid(a), relu(a),
                          sin(a), cos(a), pow(a, 2.f)}) {
    EXPECT_EQ(t.shape(), a.shape());
  }
  expect_near_all(maximum(b, 0.f * b), {1, 0, 0});
  expect_near_all(minimum(b, 0.f * b), {0, 0, -1});
  expect_near_all(where(b > 0.f, b, -b), {1, 0, 1});
  expect_near_all(clamp(a, 2.f, 5.f), {2, 2, 3, 4, 5, 5});

  expect_near_all(a.sum(), {21});
  expect_near_all(a.sum(1, /*keepdim=*/false), {6, 15});
  EXPECT_EQ(arange(24).reshape({2, 3, 4}).sum({0, 2}, true).shape(),
            (std::vector<int64_t>{1, 3, 1}));
  expect_near_all(a.mean(0), {2.5, 3.5, 4.5});
  expect_near_all(a.max(1), {3, 6});
  expect_near_all(a.min(), {1});
  EXPECT_EQ(a.argmax(1).to_vector<int64_t>(), (std::vector<int64_t>{2, 2}));
  expect_near_all(a.var(1), {1, 1});
  expect_near_all(softmax(b, 0).sum(), {1});
  expect_near_all(log_softmax(b, 0).exp().sum(), {1});

  EXPECT_EQ(a.reshape({-1, 3}).shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.view({3, 2}).shape(), (std::vector<int64_t>{3, 2}));
  expect_near_all(a.permute({1, 0}), {1, 4, 2, 5, 3, 6});
  expect_near_all(a.transpose(0, 1), {1, 4, 2, 5, 3, 6});
  expect_near_all(a.t(), {1, 4, 2, 5, 3, 6});
  EXPECT_EQ(a.unsqueeze(0).shape(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(a.unsqueeze(0).squeeze(0).shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b.expand({4, 3}).shape(), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(arange(24).reshape({2, 3, 4}).flatten(1).shape(), (std::vector<int64_t>{2, 12}));
  expect_near_all(a.slice(1, 0, 3, 2), {1, 3, 4, 6});
  expect_near_all(a.index_select(0, tensor({1, 0})), {4, 5, 6, 1, 2, 3});
  EXPECT_EQ(cat({a, a}, 0).shape(), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(stack({a, a}, 0).shape(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(a.to(DType::Float64).dtype(), DType::Float64);
  expect_near_all(a.contiguous(), {1, 2, 3, 4, 5, 6});
  expect_near_all(a.clone(), {1, 2, 3, 4, 5, 6});
}

TEST(Contract, Evaluation) {
  Tensor a = tensor({1.f, 2.f}) * 3.f;
  Tensor b = a + 1.f;
  eval({a, b});
  std::vector<Tensor> params = {a * 2.f, b * 2.f};
  eval(params);
  a.eval();
  const bool was = is_eager();
  set_eager(true);
  EXPECT_TRUE(is_eager());
  expect_near_all(a + b, {7, 13});
  set_eager(was);
}

TEST(Contract, Devices) {
  Tensor a = tensor({1.f, 2.f});
  EXPECT_EQ(a.cpu().device(), Device::cpu());
  if (!cuda_is_available()) {
    EXPECT_THROW(a.cuda(), Error);
    EXPECT_THROW(a.to(Device::cuda()), Error);
    return;
  }
  Tensor g = a.cuda();
  EXPECT_EQ(g.device(), Device::cuda());
  EXPECT_EQ(a.to(Device::cuda()).device(), Device::cuda());
  EXPECT_EQ((g * 2.f).cpu().to_vector<float>(), (std::vector<float>{2.f, 4.f}));
  EXPECT_THROW(a + g, Error);  // ops between devices throw
}

TEST(Contract, Autograd) {
  Tensor x = tensor({1.f, 2.f, 3.f}).requires_grad_();
  EXPECT_FALSE(x.grad().defined());
  Tensor y = (x * x).sum();
  y.backward();
  expect_near_all(x.grad(), {2, 4, 6});
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.requires_grad());
  EXPECT_FALSE(x.detach().requires_grad());
  {
    NoGradGuard guard;
    EXPECT_FALSE((x * 2.f).requires_grad());
  }
  Tensor w = tensor({0.5f, -1.f}).requires_grad_();
  Tensor out = (tanh(w) * w).sum();
  std::vector<Tensor> gs = grad({out}, {w}, /*create_graph=*/true);
  std::vector<Tensor> second = grad({gs[0].sum()}, {w});
  for (int k = 0; k < 2; ++k) {
    const double v = k == 0 ? 0.5 : -1.0, t = std::tanh(v), s = 1 - t * t;
    EXPECT_NEAR(gs[0].to_vector<double>()[k], t + v * s, 1e-5);
    EXPECT_NEAR(second[0].to_vector<double>()[k], 2 * s - 2 * v * t * s, 1e-5);
  }
  (x * 3.f).sum().backward();  // gradients accumulate across backward() calls
  expect_near_all(x.grad(), {5, 7, 9});
  EXPECT_THROW((x * 2.f).backward(), Error);  // non-scalar without a gradient
}

TEST(Contract, ErrorsNameTheOpAndShapes) {
  try {
    matmul(zeros({2, 3}), zeros({4, 5}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "matmul: cannot multiply [2, 3] by [4, 5]: inner dimensions 3 and 4 differ");
  }
  // smelt::Error is a std::runtime_error.
  EXPECT_THROW(zeros({2, 3}) + zeros({4}), std::runtime_error);
}

// A two-layer classifier's forward pass and loss, computed by hand:
//   h = relu(x @ w.t() + b) = [[0, 3], [0, 6]]
//   loss = mean(-log_softmax(h)[target]) = (log(1 + e^3) - 3 + log(1 + e^6)) / 2
TEST(Program, ClassifierForward) {
  Tensor x = tensor({{1.f, 2.f}, {3.f, 4.f}});
  Tensor w = tensor({{0.5f, -1.f}, {1.f, 0.5f}});
  Tensor b = tensor({0.f, 1.f});
  Tensor h = relu(matmul(x, w.t()) + b);
  expect_near_all(h, {0, 3, 0, 6});
  Tensor probs = softmax(h, 1);
  expect_near_all(
      probs, {0.04742587317756678, 0.9525741268224334, 0.0024726231566347743, 0.9975273768433653});
  Tensor onehot = tensor({{0.f, 1.f}, {1.f, 0.f}});
  Tensor loss = -(log_softmax(h, 1) * onehot).sum(1).mean();
  EXPECT_NEAR(loss.item<double>(), 3.0255314151, 1e-5);
  EXPECT_EQ(probs.argmax(1).to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
}

TEST(Program, HundredThousandOpChain) {
  Tensor t = zeros({2});
  for (int i = 0; i < 100000; ++i) t = t * 1.f + 1.f;
  expect_near_all(t, {100000, 100000});
}

TEST(Program, GraphTextOfThePendingGraph) {
  Tensor a = tensor({1.f, 2.f});
  const std::string text = graph_text({softmax(a, 0)});
  EXPECT_NE(text.find("exp"), std::string::npos);
  EXPECT_NE(text.find("max"), std::string::npos);
}

}  // namespace
