// The "nn" and "save / load" lines of API.md, verbatim where they are statements: they must
// compile and behave as described.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <functional>
#include <vector>

namespace api_contract {
namespace {

using namespace smelt;  // as a user writes it

TEST(ApiContract, NnAndSaveLoad) {
  Tensor x = randn({8, 10});
  nn::Sequential model(nn::Linear(10, 50), nn::ReLU(), nn::Linear(50, 1));
  Tensor out = model->forward(x);  // also model(x)
  EXPECT_EQ(model(x).to_vector<float>(), out.to_vector<float>());
  EXPECT_EQ(model->parameters().size(), 4u);                  // std::vector<Tensor>
  EXPECT_EQ(model->named_parameters()[0].first, "0.weight");  // ordered (name, Tensor) pairs
  model->train();
  model->eval();
  EXPECT_FALSE(model->is_training());
  eval(model->parameters());

  nn::Linear lin(784, 256);
  EXPECT_EQ(lin->weight.shape(), (std::vector<int64_t>{256, 784}));  // [out, in]
  EXPECT_EQ(lin->bias.shape(), (std::vector<int64_t>{256}));         // [out]
  nn::Sequential cnn(nn::Conv2d(1, 32, /*kernel=*/3), nn::MaxPool2d(2), nn::Flatten(), nn::Tanh(),
                     nn::Sigmoid(), nn::Dropout(0.5));
  EXPECT_EQ(cnn(randn({2, 1, 28, 28})).shape(), (std::vector<int64_t>{2, 32 * 13 * 13}));

  nn::MSELoss mse;
  nn::CrossEntropyLoss ce;
  Tensor logits = randn({4, 3});
  Tensor targets = from_vector(std::vector<int64_t>{0, 2, 1, 2});
  EXPECT_TRUE(std::isfinite(ce(logits, targets).item<float>()));  // logits [N,C], Int64 [N]
  Tensor pred = randn({4, 1});
  Tensor target = randn({4, 1});
  EXPECT_GE(mse(pred, target).item<float>(), 0.f);

  const std::string path = ::testing::TempDir() + "model.smelt";
  save(model, path);
  nn::Sequential other(nn::Linear(10, 50), nn::ReLU(), nn::Linear(50, 1));
  load(other, path);
  other->eval();
  EXPECT_EQ(other(x).to_vector<float>(), model(x).to_vector<float>());
}

// custom modules: derive from nn::Module, register_parameter/register_module
struct TwoLayerImpl : nn::Module {
  explicit TwoLayerImpl(int64_t hidden)
      : fc1(register_module("fc1", nn::Linear(4, hidden))),
        fc2(register_module("fc2", nn::Linear(hidden, 2))) {
    gain = register_parameter("gain", ones({1}));
  }
  Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))) * gain; }
  nn::Linear fc1, fc2;
  Tensor gain;
};
SMELT_MODULE(TwoLayer);

TEST(ApiContract, CustomModuleInSequential) {
  nn::Sequential model(TwoLayer(8), nn::Sigmoid());
  EXPECT_EQ(model->named_parameters().size(), 5u);
  EXPECT_EQ(model->named_parameters()[0].first, "0.gain");
  EXPECT_EQ(model(randn({3, 4})).shape(), (std::vector<int64_t>{3, 2}));
}

}  // namespace
}  // namespace api_contract
