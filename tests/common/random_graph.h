// Random graphs and value comparison shared by the compiled-path tests (tests/compiler) and the
// CUDA tests (tests/cuda): the same seed builds the same graph on any device.
#pragma once

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "frontend/tensor_impl.h"
#include "ir/reference.h"

namespace smelt::testing {

inline ir::NodePtr node_of(const Tensor& t) { return t.impl()->node(); }

// Values of a pending tensor from the reference evaluator (double precision), as doubles.
inline std::vector<double> reference_values(const Tensor& t) {
  auto values = ir::reference_evaluate({node_of(t)});
  EXPECT_TRUE(values.ok()) << values.status();
  std::vector<double> out;
  for (int64_t k = 0; k < (*values)[0].numel(); ++k) out.push_back((*values)[0].get(k));
  return out;
}

// Float32 kernels round at every op and use polynomial math; the reference does not. Compare
// with a tolerance relative to the magnitude of the values involved.
inline void expect_close(const std::vector<double>& got, const std::vector<double>& want,
                         const std::string& what, double rel = 2e-4) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1;
  for (double w : want) {
    if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " element " << i;
    } else if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << what << " element " << i;
    } else {
      EXPECT_NEAR(got[i], want[i], rel * scale) << what << " element " << i;
    }
  }
}

// ---- differential fuzzer ---------------------------------------------------------------------

// Builds a random graph from a seed: a pool of tensors of broadcast-compatible shapes, grown by
// random elementwise ops, reductions and views. The same seed builds the same graph, so the
// fused, eager and reference runs see identical work.
class RandomGraph {
 public:
  // Leaves are made on the CPU (the same random values for every device) and moved to `device`.
  explicit RandomGraph(uint64_t seed, Device device = Device::cpu())
      : rng_(seed), device_(device) {}

  Tensor build(int num_ops) {
    manual_seed(rng_());
    std::vector<int64_t> shape;
    const int rank = pick(1, 3);
    for (int d = 0; d < rank; ++d) shape.push_back(pick_dim());
    pool_.push_back(randn(shape).to(device_));
    pool_.push_back(randn(shape).to(device_));
    // A broadcast partner: some dims set to 1, possibly fewer leading dims.
    std::vector<int64_t> b = shape;
    for (auto& d : b) {
      if (pick(0, 2) == 0) d = 1;
    }
    if (b.size() > 1 && pick(0, 1)) b.erase(b.begin());
    pool_.push_back(randn(b).to(device_));
    for (int i = 0; i < num_ops; ++i) pool_.push_back(step());
    return pool_.back();
  }

  // Every value built so far: the three leaves, then one per op, in order.
  const std::vector<Tensor>& values() const { return pool_; }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int64_t pick_dim() {
    static const int64_t dims[] = {1, 2, 3, 5, 7, 8, 16, 17, 33};
    return dims[pick(0, 8)];
  }
  const Tensor& any() { return pool_[pick(0, static_cast<int>(pool_.size()) - 1)]; }
  // The last few tensors, so chains grow deep rather than wide.
  const Tensor& recent() {
    const int n = static_cast<int>(pool_.size());
    return pool_[std::max(0, n - 1 - pick(0, 2))];
  }

  Tensor binary(const Tensor& a, const Tensor& b) {
    // Only combine tensors whose shapes broadcast; otherwise fall back to a unary op.
    try {
      switch (pick(0, 5)) {
        case 0:
          return a + b;
        case 1:
          return a - b;
        case 2:
          return a * b;
        case 3:
          return maximum(a, b);
        case 4:
          return where(a > b, a, b * 0.5f);
        default:
          return a / (b * b + 1.f);
      }
    } catch (const Error&) {
      return unary(a);
    }
  }

  Tensor unary(const Tensor& a) {
    switch (pick(0, 8)) {
      case 0:
        return tanh(a);
      case 1:
        return sigmoid(a);
      case 2:
        return exp(a * 0.25f);
      case 3:
        return relu(a);
      case 4:
        return log(abs(a) + 1.f);
      case 5:
        return -a;
      case 6: {
        // vecmath's sin and cos hold their accuracy for |x| <= 1e6 (vecmath.h); a chain of
        // exps can reach 1e30 (seed 558 of a long run did), where no float sin means anything.
        const Tensor bounded = clamp(a, -1e4f, 1e4f);
        return sin(bounded) + cos(bounded);
      }
      case 7:
        return sqrt(a * a + 0.5f);
      default:
        return clamp(a, -1.f, 1.f);
    }
  }

  Tensor view(const Tensor& a) {
    const int64_t r = a.dim();
    if (r == 0) return unary(a);
    switch (pick(0, 4)) {
      case 0:
        if (r >= 2) return a.transpose(0, r - 1);
        return a.unsqueeze(0);
      case 1:
        return a.reshape({-1});
      case 2: {
        const int64_t d = pick(0, static_cast<int>(r) - 1);
        const int64_t size = a.size(d);
        if (size >= 2) return a.slice(d, 1, size, pick(1, 2));
        return a;
      }
      case 3:
        return cat({a, a * 2.f}, static_cast<int64_t>(pick(0, static_cast<int>(r) - 1)));
      default: {
        // pad by slicing a concatenation with zeros is covered by cat; flip via permute.
        std::vector<int64_t> perm(r);
        for (int64_t i = 0; i < r; ++i) perm[i] = r - 1 - i;
        return a.permute(perm);
      }
    }
  }

  Tensor reduce(const Tensor& a) {
    const int64_t r = a.dim();
    if (r == 0) return unary(a);
    const int64_t d = pick(0, static_cast<int>(r) - 1);
    const bool keep = pick(0, 1);
    switch (pick(0, 3)) {
      case 0:
        return a.sum(d, keep);
      case 1:
        return a.max(d, keep);
      case 2:
        return a.mean(d, keep);
      default:
        return softmax(a, d);
    }
  }

  Tensor step() {
    switch (pick(0, 9)) {
      case 0:
      case 1:
      case 2:
        return binary(recent(), any());
      case 3:
      case 4:
      case 5:
        return unary(recent());
      case 6:
      case 7:
        return view(recent());
      default:
        return recent().dim() > 0 ? reduce(recent()) : unary(recent());
    }
  }

  std::mt19937_64 rng_;
  Device device_;
  std::vector<Tensor> pool_;
};

}  // namespace smelt::testing
