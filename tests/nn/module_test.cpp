// nn::Module, the holder and Sequential: registration, naming, traversal, state and printing.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "frontend/tensor_impl.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;
using testing::expect_tensor;

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

// A custom module the way the docs write one.
struct NetImpl : nn::Module {
  NetImpl()
      : fc1(register_module("fc1", nn::Linear(4, 3))),
        fc2(register_module("fc2", nn::Linear(3, 2))) {
    scale = register_parameter("scale", ones({2}));
    register_buffer("steps", zeros({1}, DType::Int64));
  }
  Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))) * scale; }
  nn::Linear fc1, fc2;
  Tensor scale;
};
SMELT_MODULE(Net);

TEST(Module, RegistersParametersBuffersAndChildrenInOrder) {
  Net net;
  EXPECT_EQ(
      names_of(net->named_parameters()),
      (std::vector<std::string>{"scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_EQ(names_of(net->named_parameters(/*recurse=*/false)), std::vector<std::string>{"scale"});
  EXPECT_EQ(names_of(net->named_buffers()), std::vector<std::string>{"steps"});
  EXPECT_EQ(net->parameters().size(), 5u);
  EXPECT_EQ(net->buffers().size(), 1u);
  const auto children = net->named_children();
  ASSERT_EQ(children.size(), 2u);
  EXPECT_EQ(children[0].first, "fc1");
  EXPECT_EQ(children[0].second, net->fc1.ptr());
  EXPECT_EQ(net->children().size(), 2u);
  const auto modules = net->named_modules();
  ASSERT_EQ(modules.size(), 3u);
  EXPECT_EQ(modules[0].first, "");
  EXPECT_EQ(modules[0].second, net.ptr());
  EXPECT_EQ(modules[2].first, "fc2");
  EXPECT_EQ(net->modules(/*include_self=*/false).size(), 2u);
  // Parameters require grad and are leaves; the handles are the module's own.
  for (const Tensor& p : net->parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
  EXPECT_EQ(net->parameters()[1].impl(), net->fc1->weight.impl());
  EXPECT_EQ(net->name(), "Net");
}

TEST(Module, ForwardThroughCustomModuleAndBackward) {
  Net net;
  Tensor y = net(randn({5, 4}));
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{5, 2}));
  y.sum().backward();
  for (const auto& [name, p] : net->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().shape(), p.shape()) << name;
  }
}

TEST(Module, RejectsBadRegistrations) {
  nn::Module m;
  m.register_parameter("w", zeros({2}));
  expect_error([&] { m.register_parameter("w", zeros({2})); },
               {"register_parameter", "'w' is already registered"});
  expect_error([&] { m.register_buffer("w", zeros({2})); }, {"register_buffer", "'w'"});
  expect_error([&] { m.register_parameter("a.b", zeros({2})); }, {"contains '.'"});
  expect_error([&] { m.register_parameter("", zeros({2})); }, {"must not be empty"});
  expect_error([&] { m.register_parameter("i", zeros({2}, DType::Int64)); },
               {"register_parameter", "i64 [2]", "only floating"});
  expect_error([&] { m.register_module("c", std::shared_ptr<nn::LinearImpl>()); }, {"is null"});
  // Integer parameters are fine when frozen.
  Tensor& frozen = m.register_parameter("i", zeros({2}, DType::Int64), /*requires_grad=*/false);
  EXPECT_FALSE(frozen.requires_grad());
}

TEST(Module, ParameterFromComputedTensorIsDetachedLeaf) {
  Tensor x = ones({3}).requires_grad_();
  nn::Module m;
  Tensor& p = m.register_parameter("p", x * 2.f);
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(p.requires_grad());
  expect_tensor(p, {3}, {2, 2, 2});
}

TEST(Module, SharedSubmoduleIsListedOnce) {
  nn::Linear shared(2, 2);
  nn::Module m;
  m.register_module("a", shared);
  m.register_module("b", shared);
  EXPECT_EQ(names_of(m.named_parameters()), (std::vector<std::string>{"a.weight", "a.bias"}));
  EXPECT_EQ(m.modules(false).size(), 1u);
}

TEST(Module, TrainEvalCascades) {
  nn::Sequential seq(nn::Linear(2, 2), nn::Dropout(0.5), nn::Sequential(nn::Dropout(0.1)));
  EXPECT_TRUE(seq->is_training());
  seq->eval();
  for (const auto& m : seq->modules()) EXPECT_FALSE(m->is_training()) << m->name();
  seq->train();
  for (const auto& m : seq->modules()) EXPECT_TRUE(m->is_training()) << m->name();
}

TEST(Module, ZeroGradResetsToUndefined) {
  nn::Linear lin(3, 2);
  lin(ones({1, 3})).sum().backward();
  ASSERT_TRUE(lin->weight.grad().defined());
  Tensor weight_handle = lin->parameters()[0];
  lin->zero_grad();
  EXPECT_FALSE(lin->weight.grad().defined());
  EXPECT_FALSE(weight_handle.grad().defined());
  // The next backward starts afresh instead of accumulating.
  lin(ones({1, 3})).sum().backward();
  expect_tensor(lin->bias.grad(), {2}, {1, 1});
}

TEST(Module, ToCpuKeepsHandlesAndRequiresGrad) {
  nn::Linear lin(3, 2);
  Tensor w = lin->parameters()[0];
  const std::vector<float> before = w.to_vector<float>();
  lin->to(Device::cpu());
  EXPECT_EQ(w.impl(), lin->weight.impl());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_EQ(w.to_vector<float>(), before);
  EXPECT_TRUE(lin->weight.device().is_cpu());
}

TEST(Module, ToDTypeConvertsInPlace) {
  nn::Linear lin(3, 2);
  Tensor w = lin->weight;
  const std::vector<double> before = w.to_vector<double>();
  lin->to(DType::Float64);
  EXPECT_EQ(w.dtype(), DType::Float64);
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
  const std::vector<double> after = w.to_vector<double>();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], before[i]);
  Tensor y = lin(ones({1, 3}, DType::Float64));
  EXPECT_EQ(y.dtype(), DType::Float64);
  expect_error([&] { lin->to(DType::Int32); }, {"floating"});
}

TEST(Module, ToCudaWhenAvailable) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  nn::Sequential model(nn::Linear(4, 8), nn::ReLU(), nn::BatchNorm1d(8), nn::Linear(8, 2));
  Tensor w = model->parameters()[0];
  const std::vector<float> before = w.to_vector<float>();
  model->to(Device::cuda());
  EXPECT_TRUE(w.device().is_cuda());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_EQ(w.to_vector<float>(), before);
  for (const Tensor& b : model->buffers()) EXPECT_TRUE(b.device().is_cuda());
  Tensor loss = nn::functional::cross_entropy(
      model(randn({6, 4}).cuda()), from_vector(std::vector<int64_t>{0, 1, 0, 1, 1, 0}).cuda());
  loss.backward();
  EXPECT_TRUE(w.grad().device().is_cuda());
  EXPECT_TRUE(std::isfinite(loss.item<float>()));
}

TEST(Module, CudaTrainingSaveAndLoad) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  manual_seed(8);
  nn::Sequential model(nn::Conv2d(1, 4, 3, 1, 1), nn::BatchNorm2d(4), nn::ReLU(), nn::MaxPool2d(2),
                       nn::Flatten(), nn::Dropout(0.2), nn::Linear(4 * 4 * 4, 3));
  model->to(Device::cuda());
  Tensor x = randn({6, 1, 8, 8}).cuda();
  Tensor y = from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2}).cuda();
  const std::vector<Tensor> params = model->parameters();
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    model->zero_grad();
    Tensor loss = nn::functional::cross_entropy(model(x), y);
    loss.backward();
    std::vector<Tensor> next;
    {
      NoGradGuard no_grad;
      for (const Tensor& p : params) next.push_back(p - p.grad() * 0.1f);
    }
    eval(next);
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].impl()->set_node(next[i].impl()->node());
    }
    last = loss.item<float>();
    if (step == 0) first = last;
  }
  EXPECT_LT(last, first * 0.7f) << first << " -> " << last;
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.device().is_cuda());
  for (const Tensor& b : model->buffers()) EXPECT_TRUE(b.device().is_cuda());
  // Saved from the GPU, loaded into a CPU copy: the same outputs in eval mode.
  const std::string path = ::testing::TempDir() + "nn_cuda_model.smelt";
  save(model, path);
  nn::Sequential cpu(nn::Conv2d(1, 4, 3, 1, 1), nn::BatchNorm2d(4), nn::ReLU(), nn::MaxPool2d(2),
                     nn::Flatten(), nn::Dropout(0.2), nn::Linear(4 * 4 * 4, 3));
  load(cpu, path);
  model->eval();
  cpu->eval();
  const std::vector<float> want = model(x).to_vector<float>();
  const std::vector<float> got = cpu(x.cpu()).to_vector<float>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4);
  // And back onto a GPU model: values land on the device each tensor lives on.
  nn::init::zeros_(model->ptr<nn::LinearImpl>(6)->weight);
  load(model, path);
  EXPECT_TRUE(model->ptr<nn::LinearImpl>(6)->weight.device().is_cuda());
  const std::vector<float> again = model(x).to_vector<float>();
  for (size_t i = 0; i < again.size(); ++i) EXPECT_NEAR(again[i], want[i], 1e-5);
}

// ---- holder ------------------------------------------------------------------------------------

TEST(Holder, SharesTheModuleAndForwards) {
  nn::Linear a(3, 2);
  nn::Linear b = a;  // a copy shares the module
  EXPECT_EQ(a.ptr(), b.ptr());
  EXPECT_EQ(&*a, a.get());
  Tensor x = ones({1, 3});
  expect_tensor(a(x), {1, 2}, b->forward(x).to_vector<double>());
  std::shared_ptr<nn::LinearImpl> impl = std::make_shared<nn::LinearImpl>(2, 2);
  nn::Linear from_impl(impl);
  EXPECT_EQ(from_impl.ptr(), impl);
}

TEST(Holder, EmptyHolderThrowsOnUse) {
  nn::Linear empty{nullptr};
  EXPECT_TRUE(empty.is_empty());
  EXPECT_FALSE(static_cast<bool>(empty));
  expect_error([&] { empty->forward(ones({1})); }, {"holder is empty"});
  empty = nn::Linear(2, 2);
  EXPECT_FALSE(empty.is_empty());
}

// ---- Sequential --------------------------------------------------------------------------------

TEST(Sequential, AppliesModulesInOrderAndNamesThem) {
  manual_seed(1);
  nn::Sequential model(nn::Linear(10, 50), nn::ReLU(), nn::Linear(50, 1));
  EXPECT_EQ(model->size(), 3u);
  EXPECT_EQ(names_of(model->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  Tensor x = randn({4, 10});
  Tensor out = model->forward(x);
  Tensor out2 = model(x);
  EXPECT_EQ(out.shape(), (std::vector<int64_t>{4, 1}));
  auto l0 = model->ptr<nn::LinearImpl>(0);
  auto l2 = model->ptr<nn::LinearImpl>(2);
  Tensor want = matmul(relu(matmul(x, l0->weight.t()) + l0->bias), l2->weight.t()) + l2->bias;
  expect_tensor(out, {4, 1}, want.to_vector<double>());
  expect_tensor(out2, {4, 1}, want.to_vector<double>());
  EXPECT_EQ((*model)[1].name(), "ReLU");
  expect_error([&] { model->ptr<nn::ReLUImpl>(0); }, {"module 0 is a Linear, not a"});
  expect_error([&] { model->ptr(3); }, {"index 3 is out of range", "3 modules"});
}

TEST(Sequential, EmptyIsIdentity) {
  nn::Sequential empty;
  EXPECT_EQ(empty->size(), 0u);
  Tensor x = tensor({1.f, -2.f});
  expect_tensor(empty(x), {2}, {1, -2});
  EXPECT_TRUE(empty->parameters().empty());
}

TEST(Sequential, NestsAndTakesImplPointersAndNames) {
  nn::Sequential inner(nn::Linear(2, 3), nn::Tanh());
  nn::Sequential outer(inner, std::make_shared<nn::SigmoidImpl>());
  outer->push_back("head", nn::Linear(3, 1));
  outer->push_back(nn::Flatten());
  EXPECT_EQ(names_of(outer->named_parameters()),
            (std::vector<std::string>{"0.0.weight", "0.0.bias", "head.weight", "head.bias"}));
  Tensor y = outer(ones({5, 2}));
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{5, 1}));
  // A single Sequential argument copies the holder (shares the module), like LibTorch.
  nn::Sequential same(inner);
  EXPECT_EQ(same.ptr(), inner.ptr());
}

TEST(Sequential, PrintsTheTree) {
  nn::Sequential model(nn::Conv2d(1, 4, 3, 1, 1), nn::MaxPool2d(2), nn::Flatten(),
                       nn::Sequential(nn::Linear(16, 2, /*bias=*/false), nn::Dropout(0.25)));
  std::ostringstream os;
  os << model;
  EXPECT_EQ(os.str(),
            "Sequential(\n"
            "  (0): Conv2d(1, 4, kernel_size=3, stride=1, padding=1)\n"
            "  (1): MaxPool2d(kernel_size=2, stride=2)\n"
            "  (2): Flatten(start_dim=1, end_dim=-1)\n"
            "  (3): Sequential(\n"
            "    (0): Linear(in_features=16, out_features=2, bias=false)\n"
            "    (1): Dropout(p=0.25)\n"
            "  )\n"
            ")");
  std::ostringstream custom;
  custom << nn::ReLU();
  EXPECT_EQ(custom.str(), "ReLU()");
}

}  // namespace
}  // namespace smelt
