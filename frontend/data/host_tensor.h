// The data layer's bridge between Tensors and host memory. Batches, examples and transforms are
// made by copying bytes on the host into one new buffer that becomes a realized leaf, so that a
// training step built on them sees the same graph every batch (a lazy slice or flip per example
// would make every batch a new graph to compile).
#pragma once

#include <smelt/dtype.h>
#include <smelt/tensor.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/buffer.h"

namespace smelt::data::detail {

// A tensor's value in host memory: realized first, copied from its device if it is not on the
// CPU. `data` stays valid while `buffer` lives.
struct HostData {
  base::BufferPtr buffer;
  const uint8_t* data = nullptr;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  Device device = Device::cpu();
};

// Realizes every pending tensor of `tensors` in one program (a no-op when all are realized, which
// the prefetch workers rely on to stay clear of the realize lock).
void realize_all(absl::Span<const Tensor> tensors, absl::string_view op);

// `t`'s value on the host; throws smelt::Error naming `op` for an undefined tensor.
HostData host_data(const Tensor& t, absl::string_view op);

// An uninitialized host buffer of `nbytes` from the CPU pool, to fill and hand to make_tensor.
base::BufferPtr allocate_host(size_t nbytes, absl::string_view op);

// A realized tensor on `device` holding `buffer`'s bytes (row-major `shape` of `dtype`); a copy
// when the device is not the CPU.
Tensor make_tensor(DType dtype, std::vector<int64_t> shape, base::BufferPtr buffer,
                   Device device = Device::cpu());

}  // namespace smelt::data::detail
