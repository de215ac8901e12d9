// Donation planning (compiler/donation.h): a leaf read by the graph may be overwritten by the
// realization when nothing held from outside can read it afterwards. Products of it become extra
// roots (realized with the graph), which cuts the user's lazy values off from it; a held value
// computed elementwise from it, an unknown holder of the leaf, or autograd still needing a
// product keeps it.
#include "compiler/donation.h"

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <vector>

#include "compiler/compile.h"
#include "compiler/realize.h"
#include "ir/graph.h"
#include "runtime/program.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::node_of;

Tensor data(const std::vector<int64_t>& shape) {
  Tensor t = randn(shape);
  t.eval();
  return t;
}

// `w` held by its Tensor alone.
compiler::DonationCandidate candidate(const Tensor& w) {
  compiler::DonationCandidate c{node_of(w).get(), {}};
  c.leaves.emplace_back(node_of(w), 1);
  return c;
}

TEST(Donation, ALeafReadThroughAProductIsDonatedAndTheProductRealized) {
  manual_seed(31);
  Tensor w = data({24, 40}), x = data({8, 40});
  Tensor out = matmul(x, w.t());      // held, lazy: reads w
  Tensor loss = out.sum();            // the graph reads out and w
  Tensor update = w - loss * 0.001f;  // after the product, which reads w first
  const std::vector<float> w_values = w.to_vector<float>();
  const void* w_data = node_of(w)->buffer()->data();
  const compiler::DonationCandidate c = candidate(w);
  std::vector<ir::NodePtr> roots = {node_of(update), node_of(loss)};
  compiler::DonationPlan plan = compiler::plan_donations(roots, absl::MakeConstSpan(&c, 1));
  ASSERT_EQ(plan.donated.size(), 1u);
  EXPECT_EQ(plan.donated[0], node_of(w).get());
  ASSERT_EQ(plan.extra_roots.size(), 1u);
  EXPECT_EQ(plan.extra_roots[0], node_of(out));

  roots.insert(roots.end(), plan.extra_roots.begin(), plan.extra_roots.end());
  ASSERT_TRUE(compiler::realize(roots, compiler::EvalReason::kExplicit, plan.donated).ok());
  EXPECT_EQ(node_of(update)->buffer()->data(), w_data) << "not computed in w's memory";
  EXPECT_TRUE(node_of(out)->realized());
  // The values with the old w, from a copy that never shared its memory.
  Tensor old = from_vector(w_values, {24, 40});
  Tensor want_out = matmul(x, old.t());
  EXPECT_EQ(out.to_vector<float>(), want_out.to_vector<float>());
  EXPECT_EQ(update.to_vector<float>(), (old - want_out.sum() * 0.001f).to_vector<float>());
}

TEST(Donation, AHeldValueComputedElementwiseFromTheLeafKeepsIt) {
  // Held, outside the graph, reading w: it must see the old w whenever it is realized.
  Tensor w = data({16});
  Tensor twice = w * 2.0f;
  Tensor update = w - 1.0f;  // the graph
  EXPECT_TRUE(compiler::plan_donations({node_of(update)}, {candidate(w)}).donated.empty());
}

TEST(Donation, AHeldValueInsideTheGraphKeepsIt) {
  Tensor w = data({16});
  Tensor h = w * 2.0f;  // held, and read by the graph: it stays lazy after the realization
  Tensor update = h + 1.0f;
  compiler::DonationPlan plan = compiler::plan_donations({node_of(update)}, {candidate(w)});
  EXPECT_TRUE(plan.donated.empty());
  EXPECT_TRUE(plan.extra_roots.empty());
}

TEST(Donation, AnUnknownHolderOfTheLeafKeepsIt) {
  Tensor w = data({16});
  const ir::NodePtr other = node_of(w);  // a holder the candidate does not count
  Tensor update = w - 1.0f;
  EXPECT_TRUE(compiler::plan_donations({node_of(update)}, {candidate(w)}).donated.empty());
}

TEST(Donation, AProductAutogradStillNeedsKeepsIt) {
  // backward(retain_graph) leaves the product's operands to autograd: realizing it does not cut
  // the graph from w, since a second backward reads w again. Without retain_graph, it does.
  for (const bool retain : {false, true}) {
    SCOPED_TRACE(retain ? "retain_graph" : "released");
    Tensor w = data({6, 5}).requires_grad_();
    Tensor x = data({3, 5});
    Tensor loss = matmul(x, w.t()).relu().sum();
    loss.backward({}, retain);
    Tensor update;
    {
      NoGradGuard no_grad;
      update = w - w.grad() * 0.1f;
    }
    EXPECT_EQ(
        compiler::plan_donations({node_of(update), node_of(loss)}, {candidate(w)}).donated.empty(),
        retain);
  }
}

// compile_program's `donated`: the kernel that reads a donated leaf last computes an output in
// its memory (unless CompileOptions::in_place is off, SMELT_DISABLE_PASSES=in_place).
TEST(Donation, TheKernelReadingADonatedLeafLastComputesInItsMemory) {
  Tensor w = data({64, 32});
  Tensor update = w * 0.5f + 1.0f;
  ir::Graph g;
  g.outputs.push_back(node_of(update));
  const std::vector<ir::Node*> order = ir::topo_order(g.outputs);
  const ir::Node* donated[] = {node_of(w).get()};
  for (const bool on : {true, false}) {
    compiler::CompileOptions options;
    options.in_place = on;
    auto compiled = compiler::compile_program(g, order, options, donated);
    ASSERT_TRUE(compiled.ok()) << compiled.status();
    int in_place = 0;
    for (const runtime::Call& call : (*compiled)->program.calls) {
      if (const auto* k = std::get_if<runtime::KernelCall>(&call)) {
        in_place += static_cast<int>(k->in_place.size());
      }
    }
    EXPECT_EQ(in_place, on ? 1 : 0);
  }
}

}  // namespace
}  // namespace smelt
