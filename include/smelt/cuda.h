// CUDA devices.
#pragma once

namespace smelt {

// Whether a CUDA device can be used. Always false in this build: Tensor::cuda() and
// to(Device::cuda()) throw smelt::Error saying so.
bool cuda_is_available();

}  // namespace smelt
