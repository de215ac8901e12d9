#include "frontend/data/host_tensor.h"

#include <smelt/error.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/status.h"
#include "ir/node.h"
#include "runtime/memory_pool.h"

namespace smelt::data::detail {

void realize_all(absl::Span<const Tensor> tensors, absl::string_view op) {
  std::vector<ir::NodePtr> pending;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    ir::NodePtr n = smelt::detail::node_of(t, op);
    if (!n->realized()) pending.push_back(std::move(n));
  }
  if (!pending.empty()) {
    smelt::detail::realize_nodes(smelt::detail::with_companions(tensors, std::move(pending)),
                                 compiler::EvalReason::kToVector);
  }
}

HostData host_data(const Tensor& t, absl::string_view op) {
  ir::NodePtr n = smelt::detail::node_of(t, op);
  if (!n->realized()) {
    smelt::detail::realize_nodes(smelt::detail::with_companions({t}, {n}),
                                 compiler::EvalReason::kToVector);
  }
  HostData h;
  h.buffer = smelt::detail::host_buffer(n, op);
  h.data = static_cast<const uint8_t*>(h.buffer->data());
  h.dtype = n->dtype();
  h.shape = n->shape();
  h.device = n->device();
  return h;
}

base::BufferPtr allocate_host(size_t nbytes, absl::string_view op) {
  absl::StatusOr<base::BufferPtr> buffer = runtime::cpu_pool().allocate(nbytes);
  if (!buffer.ok()) throw Error(absl::StrCat(op, ": ", buffer.status().message()));
  return *std::move(buffer);
}

Tensor make_tensor(DType dtype, std::vector<int64_t> shape, base::BufferPtr buffer, Device device) {
  Tensor t = smelt::detail::wrap(ir::Node::make_input(dtype, std::move(shape), std::move(buffer)));
  return device.is_cpu() ? t : t.to(device);
}

}  // namespace smelt::data::detail
