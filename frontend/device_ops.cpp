// Moving tensors between devices. Only the CPU exists so far: asking for CUDA says so clearly.
#include <smelt/cuda.h>
#include <smelt/error.h>
#include <smelt/tensor.h>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"

namespace smelt {

bool cuda_is_available() { return false; }

Tensor Tensor::to(Device device) const {
  ir::NodePtr n = detail::node_of(*this, "to");
  if (n->device() == device) return *this;
  if (device.is_cuda() && !cuda_is_available()) {
    throw Error("cuda: no CUDA device is available (cuda_is_available() is false)");
  }
  throw Error(absl::StrCat("to: moving a tensor from ", n->device().str(), " to ", device.str(),
                           " is not supported"));
}

Tensor Tensor::cuda() const { return to(Device::cuda()); }
Tensor Tensor::cpu() const { return to(Device::cpu()); }

}  // namespace smelt
