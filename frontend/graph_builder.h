// The frontend's one way to read a Tensor's node, build IR nodes and hand results back as
// Tensors. Every public op goes through these, so eager mode, error conversion and the no-op
// shortcuts live in one place.
#pragma once

#include <smelt/device.h>
#include <smelt/dtype.h>
#include <smelt/scalar.h>
#include <smelt/tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "compiler/donation.h"
#include "compiler/realize.h"
#include "ir/attrs.h"
#include "ir/node.h"
#include "ir/shape.h"

namespace smelt::detail {

// The node behind `t`; throws "<op>: the tensor is undefined ..." for a default-constructed one.
ir::NodePtr node_of(const Tensor& t, absl::string_view op);

// Builds a node; an IR validation error becomes smelt::Error. The frontend validates first, with
// its own messages; this is the backstop.
ir::NodePtr make_node(ir::OpCode op, ir::NodeList&& inputs, ir::Attrs&& attrs = {},
                      Device device = Device::cpu());
inline ir::NodePtr make_node(ir::OpCode op, ir::NodeList&& inputs, const ir::Attrs& attrs,
                             Device device = Device::cpu()) {
  return make_node(op, std::move(inputs), ir::Attrs(attrs), device);
}

// Autograd's mark on a node the frontend just built: kInterior if grad mode is on, the node is
// floating and an operand requires grad (frontend/autograd.cpp). make_node calls it.
void record_grad(const ir::NodePtr& node);

// A pending graph deeper than this is realized where it stands (wrap, and backward's gradient
// chain; ArrayFire does the same at depth 100): a loop that never reads a value runs in bounded
// memory, and each realization stays a few kernels long.
inline constexpr int64_t kMaxPendingDepth = 512;

// A new Tensor handle on `node`. In eager mode the node is realized first, so each public op is
// one realization (the nodes a composite op builds inside are realized together).
Tensor wrap(ir::NodePtr node);

// Realizes `nodes` in one call; failure becomes smelt::Error and changes nothing. `donated`:
// leaves whose memory the caller gives up (compiler::realize). `candidates`: leaves the caller
// would give up if nothing outside the realization can read them afterwards
// (compiler::plan_donations decides, and may realize more nodes to make it so).
void realize_nodes(absl::Span<const ir::NodePtr> nodes, compiler::EvalReason reason,
                   absl::Span<const ir::Node* const> donated = {},
                   absl::Span<const compiler::DonationCandidate> candidates = {});

// Makes `a` and `b` companions (TensorImpl::set_companion): the two results of one call.
void pair_results(const Tensor& a, const Tensor& b);

// `nodes` (the nodes of `tensors`, in order) and after them the pending node of each tensor's
// companion that is still held: what a read of `tensors` realizes.
std::vector<ir::NodePtr> with_companions(absl::Span<const Tensor> tensors,
                                         std::vector<ir::NodePtr> nodes);

// ---- node builders used by many ops; each returns its input when there is nothing to do -----

// `node` reshaped (same element count).
ir::NodePtr reshape_node(ir::NodePtr node, const ir::Shape& shape);
// `node` broadcast to `shape`: leading 1-dims are added by a reshape, then size-1 dims stretch.
// The caller has checked that the shapes broadcast.
ir::NodePtr broadcast_node(ir::NodePtr node, const ir::Shape& shape);
ir::NodePtr cast_node(ir::NodePtr node, DType dtype);
// `value` as `dtype` at `shape`: one constant node (every element `value`), never a buffer.
ir::NodePtr constant_node(Scalar value, DType dtype, const ir::Shape& shape,
                          Device device = Device::cpu());
// Writes `v` at `p` as one element of `dtype` (a C++ conversion; Bool is v != 0).
template <typename V>
void store_as(DType dtype, V v, void* p) {
  switch (dtype) {
    case DType::Bool:
      *static_cast<uint8_t*>(p) = v != 0;
      break;
    case DType::Int32:
      *static_cast<int32_t*>(p) = static_cast<int32_t>(v);
      break;
    case DType::Int64:
      *static_cast<int64_t*>(p) = static_cast<int64_t>(v);
      break;
    case DType::Float32:
      *static_cast<float*>(p) = static_cast<float>(v);
      break;
    case DType::Float64:
      *static_cast<double*>(p) = static_cast<double>(v);
      break;
  }
}

// A realized leaf holding a copy of `numel(shape)` row-major elements of `dtype` at `data`.
ir::NodePtr host_node(DType dtype, ir::Shape shape, const void* data);

// The data of a realized node in host memory: its own buffer on the CPU, else a host copy
// (frontend/device_ops.cpp). Failures throw smelt::Error naming `op`.
base::BufferPtr host_buffer(const ir::NodePtr& realized, absl::string_view op);

// "f32", "i64", ...: the names errors use for dtypes.
inline const char* dname(DType t) { return dtype_name(t); }

// Normalizes a possibly negative dim against `rank`, or throws naming `op`.
int64_t normalize_dim(absl::string_view op, int64_t dim, int64_t rank);

// An index tensor's first entry outside [0, size), as {position, value}, when its values are
// already on the host (checking costs no compute then, and the error can name the call); nullopt
// when all are in range or the values are not there yet (the library call checks them).
struct BadIndex {
  size_t position;
  int64_t value;
};
std::optional<BadIndex> first_bad_index(const Tensor& index, int64_t size);

}  // namespace smelt::detail
