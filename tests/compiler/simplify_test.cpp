// The simplify pass: each rule on small graphs, the values it leaves unchanged, and the outputs
// it turns into leaves, constants or shared nodes.
#include "compiler/passes/simplify.h"

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <vector>

#include "compiler/compile.h"
#include "frontend/tensor_impl.h"
#include "ir/graph.h"
#include "ir/reference.h"

namespace smelt {
namespace {

ir::Graph graph_of(const std::vector<Tensor>& ts) {
  ir::Graph g;
  for (const Tensor& t : ts) g.outputs.push_back(t.impl()->node());
  return g;
}

int count_op(const ir::Graph& g, ir::OpCode op) {
  int n = 0;
  for (const ir::Node* node : ir::topo_order(g.outputs)) n += node->op() == op;
  return n;
}

// The simplified graph evaluates (reference evaluator) to what the original does.
void expect_same_values(const ir::Graph& a, const ir::Graph& b) {
  auto va = ir::reference_evaluate(a.outputs);
  auto vb = ir::reference_evaluate(b.outputs);
  ASSERT_TRUE(va.ok() && vb.ok());
  ASSERT_EQ(va->size(), vb->size());
  for (size_t i = 0; i < va->size(); ++i) {
    ASSERT_EQ((*va)[i].shape, (*vb)[i].shape);
    for (int64_t k = 0; k < (*va)[i].numel(); ++k) {
      EXPECT_DOUBLE_EQ((*va)[i].get(k), (*vb)[i].get(k)) << "output " << i << " element " << k;
    }
  }
}

TEST(Simplify, MergesCommonSubexpressions) {
  Tensor x = randn({4, 5}), y = randn({4, 5});
  Tensor out = exp(x * y) + exp(x * y) * (x * y);
  const ir::Graph g = graph_of({out});
  compiler::SimplifyStats stats;
  const ir::Graph s = compiler::simplify(g, &stats);
  EXPECT_EQ(count_op(g, ir::OpCode::Mul), 4);
  EXPECT_EQ(count_op(s, ir::OpCode::Mul), 2);  // x*y once, and the product
  EXPECT_EQ(count_op(s, ir::OpCode::Exp), 1);
  EXPECT_GE(stats.merged, 3);
  expect_same_values(g, s);
}

TEST(Simplify, FoldsConstantsSeenThroughBroadcasts) {
  Tensor x = randn({3, 2});
  Tensor c = (full({3, 2}, 2.f) * 3.f + 1.f);  // one value, 7, broadcast
  Tensor out = x * c;
  const ir::Graph g = graph_of({out});
  compiler::SimplifyStats stats;
  const ir::Graph s = compiler::simplify(g, &stats);
  EXPECT_EQ(stats.folded, 2);
  EXPECT_EQ(count_op(s, ir::OpCode::Add), 0);
  EXPECT_EQ(count_op(s, ir::OpCode::Mul), 1);
  expect_same_values(g, s);
}

TEST(Simplify, RemovesIdentities) {
  Tensor x = randn({6});
  Tensor out = -(-(((x * 1.f) + 0.f - 0.f) / 1.f));
  const ir::Graph g = graph_of({out});
  compiler::SimplifyStats stats;
  const ir::Graph s = compiler::simplify(g, &stats);
  EXPECT_EQ(s.outputs[0], x.impl()->node());  // nothing left but x
  EXPECT_GE(stats.identities, 5);
  expect_same_values(g, s);
  // A multiplication by one of another dtype is a promotion, not an identity.
  Tensor i = arange(4);
  EXPECT_EQ(compiler::simplify(graph_of({i * 1.f})).outputs[0]->dtype(), DType::Float32);
}

TEST(Simplify, MergesViewChains) {
  Tensor x = randn({2, 3, 4});
  Tensor a = x.reshape({6, 4}).reshape({24}).reshape({4, 6});
  Tensor b = x.permute({2, 0, 1}).permute({1, 2, 0});  // the identity
  Tensor c = x.transpose(0, 2).transpose(1, 2);
  const ir::Graph g = graph_of({a, b, c});
  const ir::Graph s = compiler::simplify(g);
  EXPECT_EQ(count_op(s, ir::OpCode::Reshape), 1);
  EXPECT_EQ(s.outputs[1], x.impl()->node());
  EXPECT_EQ(count_op(graph_of({c}), ir::OpCode::Permute), 2);
  EXPECT_EQ(count_op(ir::Graph{{s.outputs[2]}}, ir::OpCode::Permute), 1);
  expect_same_values(g, s);
}

TEST(Simplify, OutputsThatBecomeLeavesOrRepeatStillRealize) {
  Tensor x = randn({5});
  Tensor same = x * 1.f;               // becomes x itself
  Tensor constant = zeros({5}) + 2.f;  // becomes a broadcast constant
  Tensor p = x * x, q = x * x;         // two outputs, one node
  eval({same, constant, p, q});
  EXPECT_EQ(same.to_vector<float>(), x.to_vector<float>());
  EXPECT_EQ(constant.to_vector<float>(), std::vector<float>(5, 2.f));
  EXPECT_EQ(p.to_vector<float>(), q.to_vector<float>());
}

TEST(Simplify, GradientsOfRepeatedFactorsShareWork) {
  Tensor x = randn({64, 64}).requires_grad_();
  Tensor d = tanh(x);
  std::vector<Tensor> g = grad({(d * d).sum()}, {x});
  const ir::Graph before = graph_of(g);
  const ir::Graph after = compiler::simplify(before);
  EXPECT_LT(ir::topo_order(after.outputs).size(), ir::topo_order(before.outputs).size());
  expect_same_values(before, after);
}

TEST(Simplify, TransposedProductsAreComputedTransposed) {
  Tensor a = randn({5, 3}), b = randn({3, 4});
  a.eval();
  b.eval();
  // (a b)^T read once: becomes b^T a^T, no permute of a product left.
  const ir::Graph g = graph_of({matmul(a, b).t()});
  compiler::SimplifyStats stats;
  const ir::Graph s = compiler::simplify(g, &stats);
  EXPECT_EQ(stats.transposed_products, 1);
  ASSERT_EQ(s.outputs[0]->op(), ir::OpCode::Matmul);
  EXPECT_EQ(s.outputs[0]->shape(), (ir::Shape{4, 5}));
  expect_same_values(g, s);
  // Batched: only a swap of the last two dims qualifies.
  Tensor ba = randn({2, 5, 3}), bb = randn({2, 3, 4});
  const ir::Graph batched = graph_of({matmul(ba, bb).transpose(1, 2)});
  compiler::SimplifyStats bstats;
  expect_same_values(batched, compiler::simplify(batched, &bstats));
  EXPECT_EQ(bstats.transposed_products, 1);
  const ir::Graph other = graph_of({matmul(ba, bb).permute({1, 0, 2})});
  compiler::SimplifyStats ostats;
  compiler::simplify(other, &ostats);
  EXPECT_EQ(ostats.transposed_products, 0);
  // A product something else reads too stays one product (not computed twice).
  Tensor p = matmul(a, b);
  const ir::Graph shared = graph_of({p.t(), p.sum()});
  compiler::SimplifyStats sstats;
  const ir::Graph ss = compiler::simplify(shared, &sstats);
  EXPECT_EQ(sstats.transposed_products, 0);
  EXPECT_EQ(count_op(ss, ir::OpCode::Matmul), 1);
  // The weight gradient of a linear layer comes out of its matmul in place: one fewer kernel.
  Tensor x = randn({8, 6}), w = randn({4, 6}).requires_grad_();
  const std::vector<Tensor> gw = grad({matmul(x, w.t()).tanh().sum()}, {w});
  const ir::Graph wg = graph_of(gw);
  compiler::SimplifyStats wstats;
  const ir::Graph ws = compiler::simplify(wg, &wstats);
  EXPECT_EQ(wstats.transposed_products, 1);
  EXPECT_EQ(ws.outputs[0]->op(), ir::OpCode::Matmul);
  expect_same_values(wg, ws);
}

TEST(Simplify, CanBeSwitchedOff) {
  compiler::CompileOptions options;
  options.simplify = false;
  Tensor x = randn({3});
  const ir::Graph g = graph_of({x * 1.f});
  EXPECT_EQ(compiler::prepare_graph(g, options).outputs[0], g.outputs[0]);
  options.simplify = true;
  EXPECT_NE(compiler::prepare_graph(g, options).outputs[0], g.outputs[0]);
}

}  // namespace
}  // namespace smelt
