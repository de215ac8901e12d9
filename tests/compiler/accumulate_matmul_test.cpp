// The accumulate-matmul pass: a scaled buffer plus a product nothing else reads becomes one
// addmm (one BLAS call, no kernel), with the values of the unfused graph; sums it must not touch
// (a product read elsewhere, a broadcast or computed addend, integers) stay as they were.
#include "compiler/passes/accumulate_matmul.h"

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <string>
#include <vector>

#include "compiler/passes/simplify.h"
#include "runtime/program.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::reference_values;

// Realized random data.
Tensor data(const std::vector<int64_t>& shape, DType dtype = DType::Float32) {
  Tensor t = randn(shape).to(dtype);
  t.eval();
  return t;
}

// How many of `outputs`' sums the pass rewrites (after simplify, as the compiler runs it).
int64_t rewrites(const std::vector<Tensor>& outputs) {
  ir::Graph g;
  for (const Tensor& t : outputs) g.outputs.push_back(node_of(t));
  int64_t count = 0;
  compiler::accumulate_matmul(compiler::simplify(g), &count);
  return count;
}

struct Calls {
  uint64_t kernels, library;
};

// Realizes `outputs` together, returning the kernels and library calls that took.
Calls realize(std::vector<Tensor> outputs) {
  const runtime::ExecStats before = runtime::exec_stats();
  eval(outputs);
  const runtime::ExecStats after = runtime::exec_stats();
  return {after.kernels_launched - before.kernels_launched,
          after.library_calls - before.library_calls};
}

TEST(AccumulateMatmul, MomentumUpdateIsOneBlasCallWithTheUnfusedValues) {
  manual_seed(11);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    // SGD's momentum step for a weight whose gradient is g^T x, as the optimizer builds it.
    Tensor buf = data({24, 40}, dtype), g = data({16, 24}, dtype), x = data({16, 40}, dtype);
    Tensor grad = matmul(g.t(), x);
    Tensor next = buf * 0.9 + grad;
    EXPECT_EQ(rewrites({next}), 1);
    const std::vector<double> want = reference_values(next);
    const Calls calls = realize({next});
    EXPECT_EQ(calls.kernels, 0u);
    EXPECT_EQ(calls.library, 1u);
    expect_close(next.to_vector<double>(), want, "buf * 0.9 + g^T x");
  }
}

TEST(AccumulateMatmul, EitherOrderAndBothScales) {
  manual_seed(12);
  Tensor c = data({8, 6}), a = data({8, 5}), b = data({5, 6});
  const std::vector<Tensor> sums = {
      matmul(a, b) + c,                // beta 1
      c + matmul(a, b),                // the product second
      0.25 * c + matmul(a, b) * -2.0,  // scales on both terms, constants first and last
      matmul(a, b) * 3.0 + c * 0.5,    // the product scaled and first
  };
  for (size_t k = 0; k < sums.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(rewrites({sums[k]}), 1);
    const std::vector<double> want = reference_values(sums[k]);
    const Calls calls = realize({sums[k]});
    EXPECT_EQ(calls.kernels, 0u);
    expect_close(sums[k].to_vector<double>(), want, "sum " + std::to_string(k));
  }
}

TEST(AccumulateMatmul, BatchedProducts) {
  manual_seed(13);
  Tensor c = data({3, 4, 6}), a = data({3, 4, 5}), b = data({3, 5, 6});
  Tensor sum = c * -1.5 + matmul(a, b);
  EXPECT_EQ(rewrites({sum}), 1);
  const std::vector<double> want = reference_values(sum);
  realize({sum});
  expect_close(sum.to_vector<double>(), want, "batched");
}

TEST(AccumulateMatmul, TheAddendIsCopiedSoItKeepsItsValue) {
  manual_seed(14);
  Tensor c = data({4, 4}), a = data({4, 3}), b = data({3, 4});
  const std::vector<float> before = c.to_vector<float>();
  Tensor sum = c * 0.5 + matmul(a, b);
  realize({sum});
  EXPECT_EQ(c.to_vector<float>(), before);
  // And the addend can be an operand of the product itself.
  Tensor sq = c * 2.0 + matmul(c, c);
  EXPECT_EQ(rewrites({sq}), 1);
  const std::vector<double> want = reference_values(sq);
  realize({sq});
  expect_close(sq.to_vector<double>(), want, "c * 2 + c c");
  EXPECT_EQ(c.to_vector<float>(), before);
}

TEST(AccumulateMatmul, LeavesOtherSumsAlone) {
  manual_seed(15);
  Tensor c = data({8, 6}), a = data({8, 5}), b = data({5, 6}), bias = data({6});
  Tensor product = matmul(a, b);
  // The product is read by something else too: it is computed once, as a product.
  Tensor shared = c * 0.9 + product;
  EXPECT_EQ(rewrites({shared, product}), 0);
  // A broadcast addend (a bias), a computed addend, a zero scale, a difference.
  Tensor biased = matmul(a, b) + bias;
  Tensor computed = exp(c) + matmul(a, b);
  Tensor zero_scale = c * 0.0 + matmul(a, b);
  Tensor difference = c - matmul(a, b);
  for (const Tensor& t : {biased, computed, zero_scale, difference}) {
    EXPECT_EQ(rewrites({t}), 0);
  }
  // Realized terms keep their ops but are leaves: a realized product is data, not a product,
  // and a realized scaled buffer is a plain addend (beta 1), not a mul to look into.
  Tensor done = matmul(a, b), scaled_done = c * 0.5;
  eval({done, scaled_done});
  EXPECT_EQ(rewrites({c * 0.9 + done}), 0);
  Tensor plain = scaled_done + matmul(a, b);
  EXPECT_EQ(rewrites({plain}), 1);
  const std::vector<double> want_plain = reference_values(plain);
  realize({plain});
  expect_close(plain.to_vector<double>(), want_plain, "realized addend");
  // Integers have no BLAS product.
  Tensor ci = randint(0, 5, {3, 3}), ai = randint(0, 5, {3, 3});
  eval({ci, ai});
  EXPECT_EQ(rewrites({ci * 2 + matmul(ai, ai)}), 0);
  // All still right.
  for (const Tensor& t : {shared, product, biased, computed, zero_scale, difference}) {
    const std::vector<double> want = reference_values(t);
    realize({t});
    expect_close(t.to_vector<double>(), want, "untouched sum");
  }
}

TEST(AccumulateMatmul, SgdMomentumOnALinearLayerMatchesTheReference) {
  // A weight large enough to be updated alone at its shape (the optimizer's flat buckets are for
  // small ones): its momentum buffer update is the addmm. Two steps, so the buffer is read.
  manual_seed(16);
  nn::Linear layer(64, 96);
  optim::SGD opt(layer->parameters(), optim::SGDOptions(0.05).momentum(0.9));
  Tensor x = data({32, 64}), y = data({32, 96});
  Tensor w0 = layer->weight.detach().clone();
  w0.eval();
  std::vector<Tensor> grads;
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    Tensor loss = nn::functional::mse_loss(layer(x), y);
    loss.backward();
    // The gradient on its own, through the reference evaluator: g = 2/N (x W^T + b - y)^T x.
    Tensor g = layer->weight.grad().detach();
    grads.push_back(from_vector(reference_values(g), g.shape()).to(DType::Float32));
    opt.step();
  }
  // buf1 = g0, w1 = w0 - lr g0; buf2 = 0.9 g0 + g1, w2 = w1 - lr buf2.
  const std::vector<double> g0 = grads[0].to_vector<double>(), g1 = grads[1].to_vector<double>();
  std::vector<double> want = w0.to_vector<double>();
  for (size_t k = 0; k < want.size(); ++k) want[k] -= 0.05 * g0[k] + 0.05 * (0.9 * g0[k] + g1[k]);
  expect_close(layer->weight.to_vector<double>(), want, "weight after two steps", 1e-5);
}

}  // namespace
}  // namespace smelt
