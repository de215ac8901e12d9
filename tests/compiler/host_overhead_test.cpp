// The realize path's shortcuts (host overhead, session 4): the program key computed from the
// realization walk's node marks equals program_key, so the program cache hits and misses exactly
// as before; and node blocks recycled per thread survive cross-thread frees and deep graphs.
// Session 5: attribute names are indices into a fixed table, with the same order and hash as the
// strings they replaced; tensor handles share a spin lock across threads.
// Session 6: shapes, int lists and operand lists are inline containers that convert from and to
// the std::vector types around them.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "compiler/compile.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/attrs.h"
#include "ir/graph.h"
#include "ir/hash.h"

namespace smelt {
namespace {

ir::NodePtr leaf(ir::Shape shape) {
  std::vector<float> data(static_cast<size_t>(ir::numel(shape)), 1.0f);
  return detail::host_node(DType::Float32, std::move(shape), data.data());
}

ir::NodePtr op(ir::OpCode code, std::vector<ir::NodePtr> inputs) {
  return detail::make_node(code, std::move(inputs));
}

// program_key_marked over `roots`, with the marks set the way the realization walk sets them.
uint64_t marked_key(const ir::Graph& g, uint64_t epoch) {
  const std::vector<ir::Node*> order = ir::topo_order(g.outputs);
  for (size_t i = 0; i < order.size(); ++i) {
    order[i]->set_walk_epoch(epoch);
    order[i]->set_walk_position(static_cast<uint32_t>(i));
  }
  return compiler::program_key_marked(g, order, epoch);
}

TEST(HostOverhead, MarkedProgramKeyEqualsProgramKey) {
  // Test epochs far above the realization walk's, so they never collide with a real walk.
  uint64_t epoch = uint64_t{1} << 60;
  const ir::NodePtr a = leaf({3}), b = leaf({3}), c = leaf({2, 3});
  const std::vector<ir::Graph> graphs = {
      {{op(ir::OpCode::Add, {a, a})}},
      {{op(ir::OpCode::Add, {a, b})}},  // same types, other topology: another key
      {{op(ir::OpCode::Mul, {op(ir::OpCode::Add, {a, b}), b})}},
      {{op(ir::OpCode::Add, {c, c}), op(ir::OpCode::Neg, {a})}},  // two roots
      {{op(ir::OpCode::Neg, {a}), op(ir::OpCode::Add, {c, c})}},  // the same, other root order
  };
  std::vector<uint64_t> keys;
  for (const ir::Graph& g : graphs) {
    const uint64_t key = compiler::program_key(g, ir::topo_order(g.outputs));
    EXPECT_EQ(marked_key(g, ++epoch), key);
    keys.push_back(key);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = i + 1; j < keys.size(); ++j) EXPECT_NE(keys[i], keys[j]) << i << " " << j;
  }
}

TEST(HostOverhead, MarkedProgramKeyRejectsAnUnmarkedOperand) {
  const ir::NodePtr a = leaf({3});
  const ir::Graph g{{op(ir::OpCode::Neg, {a})}};
  const std::vector<ir::Node*> order = ir::topo_order(g.outputs);
  const uint64_t epoch = (uint64_t{1} << 61) + 7;
  order[1]->set_walk_epoch(epoch);
  order[1]->set_walk_position(1);
  // The leaf carries another walk's mark: it is not in `order` for this epoch.
  order[0]->set_walk_epoch(epoch - 1);
  EXPECT_THROW(compiler::program_key_marked(g, order, epoch), std::out_of_range);
}

// The realization walk keys graphs like program_key: a repeated structure hits the program cache,
// a changed topology, shape or leaf set misses.
TEST(HostOverhead, RealizeHitsAndMissesAsBefore) {
  auto misses = [] { return compiler::compile_stats().program_misses; };
  Tensor x = randn({5}), y = randn({5});
  (x * 3.0f + y).eval();
  uint64_t before = misses();
  for (int i = 0; i < 3; ++i) {
    Tensor z = x * 3.0f + y;
    z.eval();
    EXPECT_EQ(z.to_vector<float>()[2], x.to_vector<float>()[2] * 3.0f + y.to_vector<float>()[2]);
  }
  EXPECT_EQ(misses(), before);
  // x twice where y was: one leaf fewer, another program.
  before = misses();
  Tensor same_leaf = x * 3.0f + x;
  same_leaf.eval();
  EXPECT_EQ(misses(), before + 1);
  EXPECT_FLOAT_EQ(same_leaf.to_vector<float>()[0], x.to_vector<float>()[0] * 4.0f);
  // Another shape: another program.
  before = misses();
  Tensor w = randn({6}), v = randn({6});
  (w * 3.0f + v).eval();
  EXPECT_EQ(misses(), before + 1);
}

TEST(HostOverhead, NodesFreedOnAnotherThreadAndDeepGraphs) {
  // Build on one thread, free on another (the freeing thread's list takes the blocks), then
  // build again here; more nodes than one thread's list keeps.
  std::vector<Tensor> kept;
  Tensor x = randn({4});
  Tensor t = x;
  for (int i = 0; i < 6000; ++i) {
    t = t + 1.0f;
    if (i % 1000 == 0) kept.push_back(t);
  }
  std::thread freer([moved = std::move(kept)]() mutable { moved.clear(); });
  freer.join();
  Tensor u = x;
  for (int i = 0; i < 100; ++i) u = u * 1.0f;
  EXPECT_FLOAT_EQ(t.to_vector<float>()[1], x.to_vector<float>()[1] + 6000.0f);
  EXPECT_FLOAT_EQ(u.to_vector<float>()[3], x.to_vector<float>()[3]);
  // Graphs built and realized on threads that then end.
  std::vector<std::thread> threads;
  std::vector<float> results(4);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      Tensor s = x;
      for (int i = 0; i < 50; ++i) s = s + float(k);
      results[k] = s.to_vector<float>()[0];
    });
  }
  for (std::thread& th : threads) th.join();
  for (int k = 0; k < 4; ++k) EXPECT_FLOAT_EQ(results[k], x.to_vector<float>()[0] + 50.0f * k);
}

TEST(HostOverhead, AttributeNamesAreIndices) {
  // Every name spelled at run time (the parser, conv's shared attributes) is the literal's name.
  for (std::string_view s : ir::kAttrNames) {
    const ir::AttrName n{std::string(s)};
    EXPECT_EQ(n.str(), absl::string_view(s.data(), s.size()));
    EXPECT_TRUE(ir::AttrName::exists(s));
  }
  EXPECT_EQ(ir::AttrName("dim"), ir::AttrName(absl::string_view("dim")));
  EXPECT_FALSE(ir::AttrName::exists("dimm"));
  // Set in any order, attributes are kept (and printed) in name order.
  ir::Attrs a;
  a.set("value", 0.5).set("dtype", DType::Float32).set("shape", ir::IntList{2});
  ASSERT_EQ(a.items().size(), 3u);
  EXPECT_EQ(a.items()[0].first.str(), "dtype");
  EXPECT_EQ(a.items()[1].first.str(), "shape");
  EXPECT_EQ(a.items()[2].first.str(), "value");
  EXPECT_EQ(a, (ir::Attrs{{"dtype", DType::Float32}, {"shape", ir::IntList{2}}, {"value", 0.5}}));
  a.set("value", 1.5);  // replaces
  EXPECT_EQ(a.get_float("value"), 1.5);
  EXPECT_EQ(a.items().size(), 3u);
  // The hash is the one the names gave as strings, so program keys did not change.
  using ir::hash_combine;
  uint64_t h = 3;
  h = hash_combine(hash_combine(h, ir::hash_string("dtype")), 4);
  h = hash_combine(h, static_cast<uint64_t>(DType::Float32));
  h = hash_combine(hash_combine(h, ir::hash_string("shape")), 3);
  h = hash_combine(hash_combine(h, 1), 2);
  h = hash_combine(hash_combine(h, ir::hash_string("value")), 2);
  h = hash_combine(h, ir::hash_double(1.5));
  EXPECT_EQ(a.hash(), h);
}

TEST(HostOverhead, TensorHandlesAcrossThreads) {
  // Readers of a handle on several threads while another swaps its value in place: the spin
  // lock hands out whole node pointers, never a torn one.
  Tensor p = zeros({8});
  p.eval();
  std::vector<std::thread> readers;
  std::atomic<bool> stop{false};
  for (int k = 0; k < 2; ++k) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        const ir::NodePtr n = p.impl()->node();
        EXPECT_EQ(n->shape(), (ir::Shape{8}));
      }
    });
  }
  for (int i = 0; i < 200; ++i) p.add_(1.0f);
  stop.store(true);
  for (std::thread& th : readers) th.join();
  EXPECT_FLOAT_EQ(p.to_vector<float>()[5], 200.0f);
}

TEST(HostOverhead, DimsAreInlineUpToSixAndConvert) {
  ir::Dims small = {2, 3, 4};
  EXPECT_EQ(small, (std::vector<int64_t>{2, 3, 4}));  // compares with a vector either way
  EXPECT_EQ((std::vector<int64_t>{2, 3, 4}), small);
  EXPECT_NE(small, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(ir::Dims({1, 2}) < ir::Dims({1, 3}));
  const std::vector<int64_t> back = small;
  EXPECT_EQ(back, (std::vector<int64_t>{2, 3, 4}));
  // Past the inline capacity it grows onto the heap and keeps working.
  ir::Dims big(ir::Dims::kInlineDims, 1);
  big.push_back(7);
  big.push_back(8);
  EXPECT_EQ(big.size(), ir::Dims::kInlineDims + 2);
  EXPECT_EQ(big.back(), 8);
  EXPECT_EQ(ir::numel(big), 56);
  const ir::Dims copy = big;
  EXPECT_EQ(copy, big);
  // A rank-8 tensor goes through the frontend, a type rule and the compiler.
  Tensor t = ones({1, 2, 1, 2, 1, 2, 1, 2});
  Tensor u = (t * 3.0f + t).sum(7);
  EXPECT_EQ(u.shape(), (std::vector<int64_t>{1, 2, 1, 2, 1, 2, 1}));
  EXPECT_EQ(u.to_vector<float>(), std::vector<float>(8, 8.0f));
}

TEST(HostOverhead, NodeListsConvertAndReleasedGraphsAreEmpty) {
  ir::NodePtr a = leaf({3});
  ir::NodePtr b = leaf({3});
  std::vector<ir::NodePtr> v = {a, b};
  ir::NodeList list = v;  // copies: v keeps its nodes
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(v[0], a);
  ir::NodeList moved = std::move(v);
  EXPECT_EQ(moved[1], b);
  const std::vector<ir::NodePtr> back = moved;
  EXPECT_EQ(back, (std::vector<ir::NodePtr>{a, b}));
  // Operand lists longer than the inline three (concat) build and evaluate.
  Tensor x = arange(0, 4, 1, DType::Float32);
  Tensor c = cat({x, x + 1.0f, x * 2.0f, x - 1.0f, x}, 0);
  EXPECT_EQ(c.shape(), (std::vector<int64_t>{20}));
  EXPECT_FLOAT_EQ(c.to_vector<float>()[9], 2.0f);  // (x + 1)[1]
  // After a backward without retain_graph the saved graph is released: a realized interior node
  // must then report no grad inputs (a moved-from inline list would keep null entries).
  Tensor w = ones({3}).requires_grad_();
  Tensor y = w * 2.0f;
  y.eval();  // realized with its inputs kept for autograd
  Tensor s = (y * y).sum();
  ir::NodePtr yn = detail::node_of(y, "test");
  ASSERT_TRUE(yn->realized());
  ASSERT_EQ(yn->grad_inputs().size(), 2u);  // w and the constant 2
  s.backward();
  EXPECT_TRUE(yn->grad_released());
  for (const ir::NodePtr& in : yn->grad_inputs()) EXPECT_NE(in, nullptr);
  EXPECT_TRUE(yn->grad_inputs().empty());
  EXPECT_EQ(w.grad().to_vector<float>(), std::vector<float>(3, 8.0f));  // d(4w^2)/dw
}

}  // namespace
}  // namespace smelt
