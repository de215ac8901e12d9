// cumsum and argsort (the ScanCalls of a compiled program; the ops are defined in
// ir/ops/scan.cpp) on the CPU and on a CUDA device. Floating sums accumulate in double (PyTorch's
// CPU kernel does too), so the CPU result is the reference's exactly; integer sums wrap. argsort
// is a stable sort per line on the CPU, and a rank count per element on CUDA (n compares each).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/program.h"

namespace smelt::runtime {

// Runs `call` over contiguous buffers on the default thread pool: lines of the scanned dim
// (inner == 1) or blocks of columns (inner > 1, read along rows so the loads are contiguous)
// are the parallel work.
absl::Status run_scan(const ScanCall& call, const void* src, void* out);

// The CUDA twin: built-in NVRTC kernels queued on smelt's stream with device pointers. A line
// of the last dim is scanned by one block (each thread a contiguous piece, the pieces' totals
// scanned in shared memory); other dims by one thread per column, coalesced across columns.
// argsort ranks each element against its line on the device, up to lines of 16384; longer lines
// (n^2 compares) are copied to the host, sorted there and copied back.
absl::Status run_scan_cuda(const ScanCall& call, const void* src, void* out);

// The CUDA source of those kernels and their names, so a test can compile them without a GPU.
const char* scan_cuda_source();
std::vector<std::string> scan_cuda_kernel_names();

}  // namespace smelt::runtime
