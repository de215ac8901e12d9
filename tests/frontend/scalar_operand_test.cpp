// Scalar operands and filled tensors are one `constant` node at their shape (not a 0-d constant
// behind reshape + expand): the graph, compiled kernels, library calls and eager mode.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <string>

#include "frontend/tensor_impl.h"
#include "ir/node.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_tensor;

class EagerScope {
 public:
  explicit EagerScope(bool eager) { set_eager(eager); }
  ~EagerScope() { set_eager(false); }
};

const ir::Node& node(const Tensor& t) { return *t.impl()->node(); }

TEST(ScalarOperand, IsOneShapedConstantNode) {
  EagerScope lazy(false);
  Tensor x = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  Tensor y = x * 2.f;
  const ir::Node& c = *node(y).inputs()[1];
  EXPECT_EQ(c.op(), ir::OpCode::Constant);
  EXPECT_EQ(c.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(c.attrs().get_float("value"), 2.0);
  expect_tensor(y, {2, 3}, {2, 4, 6, 8, 10, 12});
  // 0-d results keep the 0-d constant (no shape attribute).
  Tensor s = tensor({3.f}).reshape({}) + 1.f;
  EXPECT_FALSE(node(s).inputs()[1]->attrs().has("shape"));
  expect_tensor(s, {}, {4});
  // A chain with many scalars is still one kernel's worth of nodes: op + constant per step.
  Tensor t = x;
  for (int i = 0; i < 5; ++i) t = t * 1.5f + x;
  expect_tensor(t, {2, 3}, {20.78125, 41.5625, 62.34375, 83.125, 103.90625, 124.6875});
}

TEST(ScalarOperand, FilledTensorsAreConstants) {
  EagerScope lazy(false);
  Tensor f = full({2, 2}, 7.f);
  EXPECT_EQ(node(f).op(), ir::OpCode::Constant);
  expect_tensor(f, {2, 2}, {7, 7, 7, 7});  // a requested constant gets a buffer
  expect_tensor(zeros({3}, DType::Int64) + 2, {3}, {2, 2, 2});
  expect_tensor(logical_and(ones({2}, DType::Bool), tensor({true, false})), {2}, {1, 0});
}

TEST(ScalarOperand, LibraryCallsReadConstantsFromMemory) {
  // matmul, index_select and conv2d read buffers: a constant operand is materialized for them
  // (it used to reach them as a pending expand).
  for (bool eager : {false, true}) {
    EagerScope scope(eager);
    Tensor x = tensor({{1.f, 2.f}, {3.f, 4.f}});
    expect_tensor(matmul(x, ones({2, 3})), {2, 3}, {3, 3, 3, 7, 7, 7});
    expect_tensor(matmul(ones({1, 2}), x), {1, 2}, {4, 6});
    expect_tensor(matmul(x, ones({3, 2}).t()), {2, 3}, {3, 3, 3, 7, 7, 7});
    // The same constant read inline by an elementwise op and from memory by matmul.
    Tensor w = full({2, 2}, 0.5f);
    expect_tensor(matmul(x, w) + w, {2, 2}, {2, 2, 4, 4});
    expect_tensor(full({4}, 2.5f).index_select(0, tensor({int64_t{3}, int64_t{0}})), {2},
                  {2.5, 2.5});
  }
}

TEST(ScalarOperand, GradientsFlowThroughAndIntoConstants) {
  EagerScope lazy(false);
  Tensor x = tensor({1.f, -2.f, 3.f});
  x.requires_grad_();
  ((x * 3.f + 1.f) * x).sum().backward();  // d/dx (3x^2 + x) = 6x + 1
  expect_tensor(x.grad(), {3}, {7, -11, 19});
  // A filled tensor can be a leaf that requires grad.
  Tensor w = ones({3});
  w.requires_grad_();
  (w * x.detach() * 2.f).sum().backward();
  expect_tensor(w.grad(), {3}, {2, -4, 6});
}

}  // namespace
}  // namespace smelt
