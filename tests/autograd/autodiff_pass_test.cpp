// The autodiff pass on IR graphs: every differentiable op has a VJP, IR-level gradient checks
// against the reference evaluator (ops the frontend does not expose, like prod and pad with a
// value), and the pass's structural guarantees: dead branches build nothing, gradients that meet
// are summed once by a balanced tree, integer operands get none, deep chains do not recurse.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "compiler/passes/autodiff.h"
#include "ir/grad_builder.h"
#include "ir/graph.h"
#include "ir/reference.h"

namespace smelt {
namespace {

using ir::NodePtr;
using ir::OpCode;

NodePtr input(DType dtype, ir::Shape shape, const std::vector<double>& values) {
  ir::RefTensor t = ir::RefTensor::zeros(dtype, shape);
  for (int64_t k = 0; k < t.numel(); ++k) t.set(k, values[k]);
  base::BufferPtr buf = base::Buffer::allocate_host(t.numel() * dtype_size(dtype));
  ir::ref_to_memory(t, buf->data());
  return ir::Node::make_input(dtype, std::move(shape), std::move(buf));
}

NodePtr make(OpCode op, std::vector<NodePtr> in, ir::Attrs attrs = {}) {
  absl::StatusOr<NodePtr> n = ir::Node::make(op, std::move(in), std::move(attrs));
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : nullptr;
}

std::vector<double> eval(const NodePtr& n) {
  absl::StatusOr<std::vector<ir::RefTensor>> v = ir::reference_evaluate({n});
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? (*v)[0].f : std::vector<double>{};
}

// sum(f(xs) * w) as a node, for fixed weights w.
NodePtr weighted_sum(const NodePtr& out, const std::vector<double>& w) {
  NodePtr prod = make(OpCode::Mul, {out, input(DType::Float64, out->shape(), w)});
  ir::IntList axes(out->rank());
  for (size_t d = 0; d < axes.size(); ++d) axes[d] = static_cast<int64_t>(d);
  return make(OpCode::Sum, {prod}, {{"axes", axes}, {"keepdim", false}});
}

using IrFn = std::function<NodePtr(const std::vector<NodePtr>&)>;

// The pass's gradient (evaluated by the reference evaluator) against central differences.
void ir_gradcheck(const std::string& what, const IrFn& f,
                  const std::vector<std::vector<double>>& values,
                  const std::vector<ir::Shape>& shapes) {
  SCOPED_TRACE(what);
  std::vector<NodePtr> xs;
  for (size_t i = 0; i < values.size(); ++i) {
    xs.push_back(input(DType::Float64, shapes[i], values[i]));
  }
  const NodePtr out = f(xs);
  std::vector<double> w(static_cast<size_t>(out->numel()));
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (double& x : w) x = dist(rng);
  const NodePtr loss = weighted_sum(out, w);
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> grads =
      compiler::autodiff({loss}, {b.fill_like(loss, 1.0)}, xs);
  ASSERT_TRUE(grads.ok()) << grads.status();
  for (size_t i = 0; i < xs.size(); ++i) {
    ASSERT_NE((*grads)[i], nullptr) << "input " << i;
    const std::vector<double> analytic = eval((*grads)[i]);
    for (size_t k = 0; k < values[i].size(); ++k) {
      auto at = [&](double delta) {
        std::vector<NodePtr> ys;
        for (size_t j = 0; j < values.size(); ++j) {
          std::vector<double> v = values[j];
          if (j == i) v[k] += delta;
          ys.push_back(input(DType::Float64, shapes[j], v));
        }
        return eval(weighted_sum(f(ys), w))[0];
      };
      const double numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
      EXPECT_NEAR(analytic[k], numeric, 1e-6 + 1e-5 * std::fabs(numeric))
          << "input " << i << " element " << k;
    }
  }
}

TEST(AutodiffPass, EveryDifferentiableOpHasAVjp) {
  for (int i = 0; i < ir::kNumOps; ++i) {
    const ir::OpDef& d = ir::op_def(static_cast<OpCode>(i));
    const bool differentiable = d.kind != ir::OpKind::Source && !d.traits.comparison &&
                                d.code != OpCode::LogicalNot && d.code != OpCode::LogicalAnd &&
                                d.code != OpCode::LogicalOr && d.code != OpCode::ArgMax &&
                                d.code != OpCode::ArgMin && d.code != OpCode::ArgSort;
    EXPECT_EQ(d.vjp != nullptr, differentiable) << d.name;
  }
}

TEST(AutodiffPass, ProdIncludingZeros) {
  // No zero; one zero in a slice (its gradient is the product of the others); two zeros.
  ir_gradcheck("prod",
               [](auto& x) {
                 return make(OpCode::Prod, {x[0]}, {{"axes", ir::IntList{1}}, {"keepdim", false}});
               },
               {{0.5, -2.0, 1.5, 3.0, 0.0, 2.0, 0.0, 0.0, 4.0}}, {{3, 3}});
  ir_gradcheck(
      "prod all",
      [](auto& x) {
        return make(OpCode::Prod, {x[0]}, {{"axes", ir::IntList{0, 1}}, {"keepdim", true}});
      },
      {{0.5, -2.0, 1.5, 3.0}}, {{2, 2}});
}

TEST(AutodiffPass, ScansAndScatters) {
  // cumsum's VJP is the reverse scan; index_add's is index_select at the same (repeated) indices.
  for (bool reverse : {false, true}) {
    ir_gradcheck(reverse ? "cumsum reverse" : "cumsum",
                 [reverse](auto& x) {
                   return make(OpCode::Cumsum, {x[0]}, {{"dim", int64_t{1}}, {"reverse", reverse}});
                 },
                 {{0.5, -2.0, 1.5, 3.0, 0.25, 2.0}}, {{2, 3}});
  }
  ir_gradcheck("index_add",
               [](auto& x) {
                 NodePtr idx = input(DType::Int64, {3}, {1, 1, 0});
                 return make(OpCode::IndexAdd, {x[0], idx}, {{"dim", int64_t{0}}, {"size", 4}});
               },
               {{0.5, -2.0, 1.5, 3.0, 0.25, 2.0}}, {{3, 2}});
}

TEST(AutodiffPass, Addmm) {
  // Built by the compiler, not the frontend, but differentiable like every op.
  ir_gradcheck("addmm",
               [](auto& x) {
                 return make(OpCode::Addmm, {x[0], x[1], x[2]}, {{"alpha", 1.5}, {"beta", -0.5}});
               },
               {{1, 2, 3, 4, 5, 6}, {0.5, -1, 2, 0.25, -3, 1}, {1, -2, 3, -4}},
               {{2, 3}, {3, 2}, {2, 2}});
}

TEST(AutodiffPass, PadSliceConcatCast) {
  ir_gradcheck("pad with a value",
               [](auto& x) {
                 return make(
                     OpCode::Pad, {x[0]},
                     {{"before", ir::IntList{1, 0}}, {"after", ir::IntList{2, 1}}, {"value", 3.0}});
               },
               {{1, 2, 3, 4, 5, 6}}, {{2, 3}});
  ir_gradcheck("slice step 3",
               [](auto& x) {
                 return make(OpCode::Slice, {x[0]},
                             {{"dim", int64_t{1}},
                              {"start", int64_t{1}},
                              {"end", int64_t{8}},
                              {"step", int64_t{3}}});
               },
               {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}, {{2, 8}});
  ir_gradcheck("concat",
               [](auto& x) {
                 return make(OpCode::Concat, {x[0], x[1], x[0]}, {{"dim", int64_t{0}}});
               },
               {{1, 2}, {3, 4, 5, 6}}, {{1, 2}, {2, 2}});
  // f64 -> f32 -> f64: the gradient is cast back through both (values exact in f32).
  NodePtr x = input(DType::Float64, {2}, {1.5, -2.0});
  NodePtr y = make(OpCode::Cast, {make(OpCode::Cast, {x}, {{"dtype", DType::Float32}})},
                   {{"dtype", DType::Float64}});
  NodePtr three = input(DType::Float64, {2}, {3.0, 3.0});
  NodePtr loss = make(OpCode::Sum, {make(OpCode::Mul, {y, three})},
                      {{"axes", ir::IntList{0}}, {"keepdim", false}});
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> g =
      compiler::autodiff({loss}, {b.fill_like(loss, 1.0)}, {x});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(eval((*g)[0]), (std::vector<double>{3.0, 3.0}));
}

TEST(AutodiffPass, DeadBranchesBuildNothing) {
  NodePtr a = input(DType::Float64, {3}, {1, 2, 3});
  NodePtr c = input(DType::Float64, {3}, {1, 2, 3});
  NodePtr out = make(OpCode::Add, {make(OpCode::Mul, {a, a}), make(OpCode::Exp, {c})});
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> g = compiler::autodiff({out}, {b.fill_like(out, 1.0)}, {a});
  ASSERT_TRUE(g.ok()) << g.status();
  for (const ir::Node* n : ir::topo_order({(*g)[0]})) {
    EXPECT_NE(n, c.get()) << "the gradient of a reads c";
    EXPECT_NE(n->op(), OpCode::Exp);
  }
}

TEST(AutodiffPass, GradientsThatMeetAreSummedOnceByABalancedTree) {
  NodePtr x = input(DType::Float64, {2}, {1, 2});
  // x feeds 8 users, whose results are combined by muls (so the adds we count are the pass's).
  std::vector<NodePtr> uses;
  for (int k = 0; k < 8; ++k) uses.push_back(make(OpCode::Sin, {x}));
  NodePtr out = uses[0];
  for (int k = 1; k < 8; ++k) out = make(OpCode::Mul, {out, uses[k]});
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> g = compiler::autodiff({out}, {b.fill_like(out, 1.0)}, {x});
  ASSERT_TRUE(g.ok()) << g.status();
  // 8 contributions: 7 adds, at most 3 deep.
  int adds = 0;
  for (const ir::Node* n : ir::topo_order({(*g)[0]})) adds += n->op() == OpCode::Add;
  EXPECT_EQ(adds, 7);
  int depth = 0;
  for (const ir::Node* n = (*g)[0].get(); n->op() == OpCode::Add; n = n->inputs()[0].get()) {
    ++depth;
  }
  EXPECT_EQ(depth, 3);
}

TEST(AutodiffPass, IntegerAndBoolOperandsGetNoGradient) {
  NodePtr x = input(DType::Float64, {3}, {1, 2, 3});
  NodePtr idx = input(DType::Int64, {2}, {2, 0});
  NodePtr cond = input(DType::Bool, {2}, {1, 0});
  NodePtr picked = make(OpCode::IndexSelect, {x, idx}, {{"dim", int64_t{0}}});
  NodePtr out = make(OpCode::Where, {cond, picked, picked});
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> g =
      compiler::autodiff({out}, {b.fill_like(out, 1.0)}, {x, idx, cond});
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_NE((*g)[0], nullptr);
  EXPECT_EQ(eval((*g)[0]), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ((*g)[1], nullptr);
  EXPECT_EQ((*g)[2], nullptr);
}

TEST(AutodiffPass, ARealizedNodeWithoutItsInputsIsAnError) {
  NodePtr x = input(DType::Float64, {1}, {2});
  NodePtr y = make(OpCode::Exp, {x});
  NodePtr z = make(OpCode::Neg, {y});
  y->set_realized(base::Buffer::allocate_host(8));  // drops its inputs
  compiler::AutodiffOptions opts;
  opts.flows_through = [](const ir::Node& n) { return n.op() != OpCode::Input; };
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> g =
      compiler::autodiff({z}, {b.fill_like(z, 1.0)}, {x}, opts);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(g.status())) << g.status();
  EXPECT_NE(g.status().message().find("second time"), std::string::npos) << g.status();
  // Kept inputs (as autograd keeps them) are followed.
  NodePtr y2 = make(OpCode::Exp, {x});
  NodePtr z2 = make(OpCode::Neg, {y2});
  y2->set_realized(base::Buffer::allocate_host(8), /*keep_inputs=*/true);
  EXPECT_TRUE(y2->inputs().empty());  // compiler walks still stop at it
  g = compiler::autodiff({z2}, {b.fill_like(z2, 1.0)}, {x}, opts);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_NE((*g)[0], nullptr);
}

TEST(AutodiffPass, HundredThousandDeepChainDoesNotRecurse) {
  NodePtr x = input(DType::Float64, {2}, {1.5, -0.5});
  NodePtr y = x;
  for (int k = 0; k < 100000; ++k) y = make(OpCode::Neg, {y});
  ir::GradBuilder b;
  absl::StatusOr<std::vector<NodePtr>> g = compiler::autodiff({y}, {b.fill_like(y, 1.0)}, {x});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(eval((*g)[0]), (std::vector<double>{1, 1}));  // (-1)^100000
}

}  // namespace
}  // namespace smelt
