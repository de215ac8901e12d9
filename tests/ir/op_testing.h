// Shared pieces of the op tests: build input nodes from literal values, build nodes that must
// (or must not) type-check, and evaluate them with the reference evaluator.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "ir/node.h"
#include "ir/reference.h"

namespace smelt::ir::testing {

// An input node holding `values` (row-major), stored as `dtype` would store them.
inline NodePtr input(DType dtype, Shape shape, const std::vector<double>& values) {
  RefTensor t = RefTensor::zeros(dtype, shape);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel()) << "test bug: wrong value count";
  for (int64_t k = 0; k < t.numel() && k < static_cast<int64_t>(values.size()); ++k) {
    t.set(k, values[k]);
  }
  base::BufferPtr buf = base::Buffer::allocate_host(t.numel() * dtype_size(dtype));
  ref_to_memory(t, buf->data());
  return Node::make_input(dtype, std::move(shape), std::move(buf));
}

// The same for integers that a double cannot hold exactly.
inline NodePtr input_int(DType dtype, Shape shape, const std::vector<int64_t>& values) {
  RefTensor t = RefTensor::zeros(dtype, shape);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel()) << "test bug: wrong value count";
  for (int64_t k = 0; k < t.numel() && k < static_cast<int64_t>(values.size()); ++k) {
    t.set_int(k, values[k]);
  }
  base::BufferPtr buf = base::Buffer::allocate_host(t.numel() * dtype_size(dtype));
  ref_to_memory(t, buf->data());
  return Node::make_input(dtype, std::move(shape), std::move(buf));
}

// An input with a type and no value: enough for type-rule tests.
inline NodePtr placeholder(DType dtype, Shape shape) {
  return Node::make_input(dtype, std::move(shape), nullptr);
}

// A node that must type-check (a test failure and nullptr otherwise).
inline NodePtr make(OpCode op, std::vector<NodePtr> inputs, Attrs attrs = {}) {
  absl::StatusOr<NodePtr> n = Node::make(op, std::move(inputs), std::move(attrs));
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : nullptr;
}

// The message of the InvalidArgument error that building the node must give.
inline std::string make_error(OpCode op, std::vector<NodePtr> inputs, Attrs attrs = {}) {
  absl::StatusOr<NodePtr> n = Node::make(op, std::move(inputs), std::move(attrs));
  if (n.ok()) {
    ADD_FAILURE() << op_name(op) << ": expected a type error, got " << shape_str((*n)->shape());
    return "";
  }
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument) << n.status();
  return std::string(n.status().message());
}

// The type of the node built from `inputs` (a test failure and a default otherwise).
inline TypeInfo type_of(OpCode op, std::vector<NodePtr> inputs, Attrs attrs = {}) {
  NodePtr n = make(op, std::move(inputs), std::move(attrs));
  return n ? n->type() : TypeInfo{};
}

// The reference value of `node`; a test failure and an empty value if evaluation fails.
inline RefTensor eval(const NodePtr& node) {
  if (node == nullptr) return {};
  absl::StatusOr<std::vector<RefTensor>> v = reference_evaluate({node});
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? (*v)[0] : RefTensor{};
}

// The values of `t` as doubles (integers converted), row-major.
inline std::vector<double> values(const RefTensor& t) {
  std::vector<double> out;
  for (int64_t k = 0; k < t.numel(); ++k) out.push_back(t.get(k));
  return out;
}

// The values of `t` as int64 (for integral and Bool values).
inline std::vector<int64_t> ints(const RefTensor& t) { return t.i; }

// Element-wise equality where NaN equals NaN and infinities compare exactly; finite values
// may differ by a relative 1e-12 (libm results). Use as EXPECT_TRUE(same_values(got, want)).
inline ::testing::AssertionResult same_values(const std::vector<double>& got,
                                              const std::vector<double>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << got.size() << " values, expected " << want.size();
  }
  for (size_t k = 0; k < got.size(); ++k) {
    const double a = got[k], b = want[k];
    const bool same = (std::isnan(a) && std::isnan(b)) || a == b ||
                      (std::isfinite(b) && std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(b)));
    if (!same) {
      return ::testing::AssertionFailure() << "element " << k << " is " << a << ", expected " << b;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace smelt::ir::testing
