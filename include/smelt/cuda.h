// CUDA devices. smelt loads the CUDA driver (libcuda.so.1) at run time, so a program built with
// CUDA support runs on a machine without a GPU: cuda_is_available() is false there, and moving a
// tensor to a CUDA device throws smelt::Error saying why.
#pragma once

#include <cstddef>

namespace smelt {

// Whether a CUDA device can be used (built with CUDA, driver loaded, a device present).
bool cuda_is_available();

// Mirrors of torch.cuda's functions of the same names.
namespace cuda {

bool is_available();
int device_count();
// Waits until every operation queued on the device has finished.
void synchronize();

// The caching allocator's counters, in bytes: memory held by live tensors (and their peak since
// the start or the last reset_peak_memory_stats), and memory taken from the device (held by
// tensors, or cached for reuse).
size_t memory_allocated(int device = 0);
size_t max_memory_allocated(int device = 0);
size_t memory_reserved(int device = 0);
void reset_peak_memory_stats(int device = 0);
// Gives cached device memory that no tensor holds back to the driver.
void empty_cache(int device = 0);

}  // namespace cuda
}  // namespace smelt
