// Moving tensors between devices, and the public CUDA queries. A move realizes the value and
// copies its buffer: every graph runs on one device, so a move is a graph boundary (like a
// read), and the copy is a leaf of the graphs built on it.
#include <smelt/cuda.h>
#include <smelt/error.h>
#include <smelt/tensor.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "runtime/cuda_api.h"
#include "runtime/memory_pool.h"

namespace smelt {
namespace {

template <typename T>
T value_or_throw(absl::StatusOr<T> v, absl::string_view op) {
  if (!v.ok()) throw Error(absl::StrCat(op, ": ", v.status().message()));
  return *std::move(v);
}
void ok_or_throw(const absl::Status& s, absl::string_view op) {
  if (!s.ok()) throw Error(absl::StrCat(op, ": ", s.message()));
}

void check_cuda(Device device, absl::string_view op) {
  if (!runtime::cuda::available()) {
    throw Error(absl::StrCat(op, ": no CUDA device is available (cuda_is_available() is false: ",
                             runtime::cuda::availability().message(), ")"));
  }
  if (device.index() < 0 || device.index() >= runtime::cuda::device_count()) {
    throw Error(absl::StrCat(op, ": ", device.str(), " does not exist (",
                             runtime::cuda::device_count(), " CUDA device(s))"));
  }
}

}  // namespace

bool cuda_is_available() { return runtime::cuda::available(); }

namespace cuda {
bool is_available() { return runtime::cuda::available(); }
int device_count() { return runtime::cuda::available() ? runtime::cuda::device_count() : 0; }
void synchronize() {
  if (runtime::cuda::available()) ok_or_throw(runtime::cuda::synchronize(), "cuda::synchronize");
}
size_t memory_allocated(int device) { return runtime::cuda::memory_stats(device).allocated_bytes; }
size_t max_memory_allocated(int device) {
  return runtime::cuda::memory_stats(device).peak_allocated_bytes;
}
size_t memory_reserved(int device) { return runtime::cuda::memory_stats(device).reserved_bytes; }
void reset_peak_memory_stats(int device) { runtime::cuda::reset_peak_stats(device); }
void empty_cache(int device) { runtime::cuda::empty_cache(device); }
}  // namespace cuda

namespace detail {

base::BufferPtr host_buffer(const ir::NodePtr& realized, absl::string_view op) {
  base::BufferPtr buf = realized->buffer();
  if (buf->device().is_cpu()) return buf;
  base::BufferPtr host = value_or_throw(runtime::cpu_pool().allocate(buf->nbytes()),
                                        absl::StrCat(op, ": copy to cpu"));
  ok_or_throw(runtime::cuda::copy_to_host(host->data(), buf->data(), buf->nbytes()), op);
  return host;
}

}  // namespace detail

Tensor Tensor::to(Device device) const {
  ir::NodePtr n = detail::node_of(*this, "to");
  if (n->device() == device) return *this;
  if (device.is_cuda()) check_cuda(device, "to");
  detail::realize_nodes(detail::with_companions({*this}, {n}), compiler::EvalReason::kDeviceCopy);
  const base::BufferPtr src = n->buffer();
  const size_t nbytes = static_cast<size_t>(n->numel()) * dtype_size(n->dtype());
  base::BufferPtr dst;
  if (device.is_cuda()) {
    dst = value_or_throw(runtime::cuda::allocate(nbytes, device.index()), "to");
    if (src->device().is_cpu()) {
      ok_or_throw(runtime::cuda::copy_to_device(dst->data(), src->data(), nbytes), "to");
    } else {
      // Another CUDA device (or the same one under another index): through the host.
      base::BufferPtr host = detail::host_buffer(n, "to");
      ok_or_throw(runtime::cuda::copy_to_device(dst->data(), host->data(), nbytes), "to");
    }
  } else {
    dst = detail::host_buffer(n, "to");
  }
  return detail::wrap(ir::Node::make_input(n->dtype(), n->shape(), std::move(dst)));
}

Tensor Tensor::cuda() const { return to(Device::cuda()); }
Tensor Tensor::cpu() const { return to(Device::cpu()); }

}  // namespace smelt
