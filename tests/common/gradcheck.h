// Gradients from backward() against central finite differences, for tests of ops and layers.
#pragma once

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace smelt::testing {

// Compares d f / d inputs from backward() with (f(x + h) - f(x - h)) / 2h for every element of
// every input, all in Float64. `f` must return a one-element tensor.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      std::vector<Tensor> inputs, double tol = 1e-6) {
  for (Tensor& t : inputs) t = t.to(DType::Float64).detach().requires_grad_();
  f(inputs).backward();
  const double h = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<double> analytic = inputs[i].grad().to_vector<double>();
    const std::vector<double> base = inputs[i].to_vector<double>();
    const std::vector<int64_t> shape = inputs[i].shape();
    for (size_t k = 0; k < base.size(); ++k) {
      auto value_at = [&](double delta) {
        std::vector<Tensor> moved = inputs;
        std::vector<double> v = base;
        v[k] += delta;
        moved[i] = from_vector(v, shape);
        NoGradGuard no_grad;
        return f(moved).item<double>();
      };
      const double numeric = (value_at(h) - value_at(-h)) / (2 * h);
      EXPECT_NEAR(analytic[k], numeric, tol) << "input " << i << " element " << k;
    }
  }
}

}  // namespace smelt::testing
