// The introduction's first training program: a tiny MLP (Linear(10, 50) - ReLU - Linear(50, 1))
// learns a noisy linear function of 10 inputs with mean-squared error and SGD.
#include <smelt/smelt.h>

#include <cstdio>

using namespace smelt;

int main() {
  manual_seed(0);
  // Synthetic data: y = x . w_true + 0.5 + noise.
  const int64_t n = 1024;
  Tensor w_true = randn({10, 1});
  Tensor x = randn({n, 10});
  Tensor y = matmul(x, w_true) + 0.5f + 0.1f * randn({n, 1});

  nn::Sequential model(nn::Linear(10, 50), nn::ReLU(), nn::Linear(50, 1));
  optim::SGD opt(model->parameters(), optim::SGDOptions(0.05).momentum(0.9));
  nn::MSELoss mse;

  const int64_t batch = 64;
  for (int epoch = 1; epoch <= 20; ++epoch) {
    double total = 0;
    for (int64_t start = 0; start < n; start += batch) {
      Tensor xb = x.slice(0, start, start + batch), yb = y.slice(0, start, start + batch);
      opt.zero_grad();
      Tensor loss = mse(model(xb), yb);
      loss.backward();
      opt.step();
      total += loss.item<float>();
    }
    if (epoch % 5 == 0 || epoch == 1) {
      std::printf("epoch %2d  mean loss %.4f\n", epoch, total / (n / batch));
    }
  }
  NoGradGuard no_grad;
  std::printf("final loss on all data: %.4f (the noise alone gives about 0.01)\n",
              mse(model(x), y).item<float>());
  return 0;
}
