#include "examples.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/node.h"
#include "ir/shape.h"

namespace smelt::irdump {
namespace {

using ir::Attrs;
using ir::NodePtr;
using ir::OpCode;
using ir::Shape;

// Builds through Node::make and keeps the first error, so an example reads as straight-line code:
// after a failure every call returns nullptr and finish() reports what failed.
class Builder {
 public:
  NodePtr input(DType dtype, Shape shape) {
    return op(OpCode::Input, {}, Attrs{{"dtype", dtype}, {"shape", std::move(shape)}});
  }

  // A 0-d f32 literal.
  NodePtr constant(double value) {
    return op(OpCode::Constant, {}, Attrs{{"dtype", DType::Float32}, {"value", value}});
  }

  NodePtr op(OpCode code, std::vector<NodePtr> inputs, Attrs attrs = {}) {
    if (!status_.ok()) return nullptr;
    absl::StatusOr<NodePtr> n = ir::Node::make(code, std::move(inputs), std::move(attrs));
    if (!n.ok()) {
      status_ = n.status();
      return nullptr;
    }
    return *std::move(n);
  }

  NodePtr reshape(NodePtr x, Shape shape) {
    return op(OpCode::Reshape, {std::move(x)}, Attrs{{"shape", std::move(shape)}});
  }

  NodePtr expand(NodePtr x, Shape shape) {
    return op(OpCode::Expand, {std::move(x)}, Attrs{{"shape", std::move(shape)}});
  }

  // NumPy broadcasting made explicit, as the frontend does it: a reshape that prepends dims of
  // 1, then an expand.
  NodePtr broadcast_to(NodePtr x, const Shape& shape) {
    if (x == nullptr) return nullptr;
    Shape padded(shape.size() - std::min(shape.size(), x->shape().size()), 1);
    padded.insert(padded.end(), x->shape().begin(), x->shape().end());
    if (padded != x->shape()) x = reshape(std::move(x), padded);
    return expand(std::move(x), shape);
  }

  // `value` as an f32 tensor of `like`'s shape.
  NodePtr scalar_like(double value, const NodePtr& like) {
    if (like == nullptr) return nullptr;
    return broadcast_to(constant(value), like->shape());
  }

  NodePtr reduce(OpCode code, NodePtr x, ir::IntList axes, bool keepdim) {
    return op(code, {std::move(x)}, Attrs{{"axes", std::move(axes)}, {"keepdim", keepdim}});
  }

  absl::StatusOr<ir::Graph> finish(std::vector<NodePtr> outputs) {
    if (!status_.ok()) return status_;
    return ir::Graph{std::move(outputs)};
  }

 private:
  absl::Status status_;
};

// A two-layer perceptron's forward pass ending in log_softmax, as the frontend would build it.
absl::StatusOr<ir::Graph> build_mlp() {
  Builder b;
  const int64_t batch = 4, in = 8, hidden = 16, classes = 10;
  NodePtr x = b.input(DType::Float32, {batch, in});
  NodePtr w1 = b.input(DType::Float32, {in, hidden});
  NodePtr b1 = b.input(DType::Float32, {hidden});
  NodePtr w2 = b.input(DType::Float32, {hidden, classes});
  NodePtr b2 = b.input(DType::Float32, {classes});
  NodePtr h = b.op(OpCode::Matmul, {x, w1});
  h = b.op(OpCode::Add, {h, b.broadcast_to(b1, {batch, hidden})});
  h = b.op(OpCode::Relu, {h});
  NodePtr logits = b.op(OpCode::Matmul, {h, w2});
  logits = b.op(OpCode::Add, {logits, b.broadcast_to(b2, {batch, classes})});
  // log_softmax(z) = (z - max) - log(sum(exp(z - max))), over the classes.
  NodePtr m = b.reduce(OpCode::Max, logits, {1}, /*keepdim=*/true);
  NodePtr shifted = b.op(OpCode::Sub, {logits, b.expand(m, {batch, classes})});
  NodePtr sum = b.reduce(OpCode::Sum, b.op(OpCode::Exp, {shifted}), {1}, /*keepdim=*/true);
  NodePtr lse = b.op(OpCode::Log, {sum});
  NodePtr out = b.op(OpCode::Sub, {shifted, b.expand(lse, {batch, classes})});
  return b.finish({out});
}

// tanh(x * 0.5 + y) * sigmoid(x) + exp(-x * x): one elementwise chain, a single fused kernel.
absl::StatusOr<ir::Graph> build_chain() {
  Builder b;
  NodePtr x = b.input(DType::Float32, {2, 3});
  NodePtr y = b.input(DType::Float32, {2, 3});
  NodePtr t =
      b.op(OpCode::Tanh, {b.op(OpCode::Add, {b.op(OpCode::Mul, {x, b.scalar_like(0.5, x)}), y})});
  NodePtr s = b.op(OpCode::Sigmoid, {x});
  NodePtr e = b.op(OpCode::Exp, {b.op(OpCode::Mul, {b.op(OpCode::Neg, {x}), x})});
  NodePtr out = b.op(OpCode::Add, {b.op(OpCode::Mul, {t, s}), e});
  return b.finish({out});
}

// Row softmax from max, sub, exp, sum and div, with the broadcasts spelled out.
absl::StatusOr<ir::Graph> build_softmax() {
  Builder b;
  const int64_t rows = 4, cols = 10;
  NodePtr x = b.input(DType::Float32, {rows, cols});
  NodePtr m = b.reshape(b.reduce(OpCode::Max, x, {1}, /*keepdim=*/false), {rows, 1});
  NodePtr e = b.op(OpCode::Exp, {b.op(OpCode::Sub, {x, b.expand(m, {rows, cols})})});
  NodePtr s = b.reshape(b.reduce(OpCode::Sum, e, {1}, /*keepdim=*/false), {rows, 1});
  NodePtr out = b.op(OpCode::Div, {e, b.expand(s, {rows, cols})});
  return b.finish({out});
}

constexpr Example kExamples[] = {
    {"mlp", "two-layer perceptron forward: matmul, add, relu, matmul, add, log_softmax", build_mlp},
    {"chain", "elementwise chain: tanh(x*0.5+y)*sigmoid(x)+exp(-x*x)", build_chain},
    {"softmax", "row softmax from max/sub/exp/sum/div with explicit reshape/expand", build_softmax},
};

}  // namespace

absl::Span<const Example> examples() { return kExamples; }

const Example* find_example(absl::string_view name) {
  for (const Example& e : kExamples) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace smelt::irdump
