// The op registry: everything an op is, in one OpDef. Passes and backends query an op's kind and
// traits instead of listing ops by name.
#pragma once

#include <smelt/dtype.h>

#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/attrs.h"
#include "ir/ref_tensor.h"
#include "ir/shape.h"

namespace smelt::ir {

enum class OpCode : uint16_t {
#define SMELT_OP(e, name, kind) e,
#include "ir/ops.def"
#undef SMELT_OP
};

inline constexpr int kNumOps = 0
#define SMELT_OP(e, name, kind) +1
#include "ir/ops.def"
#undef SMELT_OP
    ;

// Window: convolution and pooling, library calls like Matmul (see ir/ops/conv.cpp).
// Scan: running reductions along a dim (cumsum), library calls too (see ir/ops/scan.cpp).
enum class OpKind : uint8_t { Source, Elementwise, Reduce, Movement, Gather, Matmul, Window, Scan };

// The static type of a node's value.
struct TypeInfo {
  DType dtype = DType::Float32;
  Shape shape;
  friend bool operator==(const TypeInfo&, const TypeInfo&) = default;
};

struct AttrSpec {
  AttrName name;
  AttrKind kind;
  // May be absent (the op's type rule says what absence means). Used where an attribute was
  // added later, so that text and graphs written without it keep their meaning and hash.
  bool optional = false;
};

class Node;
using NodePtr = std::shared_ptr<Node>;

// A node's operands. Up to three live inside the node (every op but concat and the optimizer's
// gathers has at most three), so building a node allocates nothing for them. Converts from and to
// std::vector<NodePtr>, which the passes use for longer lists.
class NodeList : public absl::InlinedVector<NodePtr, 3> {
  using Base = absl::InlinedVector<NodePtr, 3>;

 public:
  using Base::Base;
  NodeList() = default;
  NodeList(std::vector<NodePtr>&& v)  // NOLINT(google-explicit-constructor)
      : Base(std::make_move_iterator(v.begin()), std::make_move_iterator(v.end())) {}
  NodeList(const std::vector<NodePtr>& v)  // NOLINT(google-explicit-constructor)
      : Base(v.begin(), v.end()) {}
  operator std::vector<NodePtr>() const& {  // NOLINT(google-explicit-constructor)
    return std::vector<NodePtr>(begin(), end());
  }
  operator std::vector<NodePtr>() && {  // NOLINT(google-explicit-constructor)
    return std::vector<NodePtr>(std::make_move_iterator(begin()), std::make_move_iterator(end()));
  }
};

// Type rule: validates the operands and attributes and gives the result type, or an
// InvalidArgument error whose message starts with the op's name.
using InferFn = absl::StatusOr<TypeInfo> (*)(absl::Span<const TypeInfo> inputs, const Attrs& attrs);

// Reference evaluation in double precision (integers exactly), the test oracle of every backend.
// Data-dependent failures (an index out of range) are returned as errors, never UB.
using RefEvalFn = absl::StatusOr<RefTensor> (*)(absl::Span<const RefTensor* const> inputs,
                                                const Attrs& attrs, const TypeInfo& out);

// Vector-Jacobian product: given the node and the gradient of its output, the gradients of its
// inputs (nullptr where an input gets none). Filled in by the autodiff issue.
using VjpFn = absl::StatusOr<std::vector<NodePtr>> (*)(const NodePtr& node, const NodePtr& grad);

struct OpTraits {
  bool commutative = false;      // f(a, b) == f(b, a)
  bool zero_preserving = false;  // f(0) == 0 (unary) / f(0, 0) == 0: safe under zero padding
  bool comparison = false;       // produces Bool from two operands of any one dtype
  // Rough cost of one element relative to an add; fusion recomputes cheap values instead of
  // storing them. Polynomial math (exp, tanh, ...) is ~8, sqrt and division ~3.
  uint8_t cost = 1;
};

struct OpDef {
  OpCode code;
  absl::string_view name;
  OpKind kind;
  int min_inputs = 0;
  int max_inputs = 0;  // -1: variadic
  std::vector<AttrSpec> attrs;
  InferFn infer = nullptr;
  RefEvalFn ref_eval = nullptr;
  VjpFn vjp = nullptr;
  OpTraits traits;
};

// The definition of `op`. Every OpCode has one (checked by the registry's self-test).
const OpDef& op_def(OpCode op);
absl::string_view op_name(OpCode op);
// Looks an op up by its text name (the IR parser's entry point).
const OpDef* find_op(absl::string_view name);

// Each family file (ir/ops/*.cpp) defines its ops through this; the registry calls the families
// once, on first use, so no static-initialization order is involved.
class OpRegistrar {
 public:
  explicit OpRegistrar(absl::Span<OpDef> defs) : defs_(defs) {}
  // The definition of `op` to fill in; its code, name and kind are already set from ops.def.
  OpDef& def(OpCode op) { return defs_[static_cast<size_t>(op)]; }

 private:
  absl::Span<OpDef> defs_;
};

void register_source_ops(OpRegistrar& r);
void register_elementwise_ops(OpRegistrar& r);
void register_reduce_ops(OpRegistrar& r);
void register_movement_ops(OpRegistrar& r);
void register_gather_ops(OpRegistrar& r);
void register_matmul_ops(OpRegistrar& r);
void register_conv_ops(OpRegistrar& r);
void register_scan_ops(OpRegistrar& r);

}  // namespace smelt::ir
