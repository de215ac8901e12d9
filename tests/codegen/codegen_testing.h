// Shared pieces of the code generator tests: host buffers in the kernel ABI's layout, a JIT with
// its own cache folder, and a runner that calls a compiled kernel.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "compiler/codegen/llvm/emit_kernel.h"
#include "compiler/kernel_ir.h"
#include "ir/ref_tensor.h"
#include "ir/reference.h"
#include "runtime/cpu_jit.h"

namespace smelt::compiler::testing {

// A fresh folder under the system's temporary directory, removed with everything in it when
// the object dies.
class TempDir {
 public:
  explicit TempDir(const char* tag) {
    const char* tmp = std::getenv("TMPDIR");
    std::string model =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/smelt-" + tag + "-XXXXXX";
    std::vector<char> buf(model.begin(), model.end());
    buf.push_back('\0');
    const char* dir = mkdtemp(buf.data());
    EXPECT_NE(dir, nullptr) << "cannot create a temporary folder from " << model;
    if (dir != nullptr) path_ = dir;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The JIT the kernel tests share: a private disk cache, so tests never touch ~/.cache. The JIT
// is never destroyed (its code must stay valid); its folder is removed at exit.
inline runtime::CpuJit& test_jit() {
  static TempDir dir("codegen");
  static runtime::CpuJit* jit = new runtime::CpuJit({.cache_dir = dir.path()});
  return *jit;
}

// A 64-byte aligned host buffer (the pool's alignment, which the kernels assume).
class HostBuffer {
 public:
  HostBuffer(DType dtype, int64_t numel)
      : dtype_(dtype), numel_(numel), bytes_(std::max<size_t>(64, numel * dtype_size(dtype))) {
    bytes_ = (bytes_ + 63) / 64 * 64;
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, bytes_)));
    std::memset(data_.get(), 0xAB, bytes_);  // a recognizable "never written" pattern
  }
  static HostBuffer from(const ir::RefTensor& t) {
    HostBuffer b(t.dtype, t.numel());
    if (t.numel() > 0) ir::ref_to_memory(t, b.data());
    return b;
  }
  ir::RefTensor to_ref(ir::Shape shape) const { return ir::ref_from_memory(dtype_, shape, data()); }
  ir::RefTensor to_ref() const { return to_ref({numel_}); }

  void* data() const { return data_.get(); }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return numel_; }
  // Whether byte `k` of element `i` still holds the fill pattern.
  bool untouched(int64_t i) const {
    const size_t size = dtype_size(dtype_);
    for (size_t k = 0; k < size; ++k) {
      if (data_.get()[i * size + k] != 0xAB) return false;
    }
    return true;
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  DType dtype_;
  int64_t numel_;
  size_t bytes_;
  std::unique_ptr<uint8_t, Free> data_;
};

// A RefTensor of `dtype` holding `values` (stored as a cast to dtype would store them).
inline ir::RefTensor ref(DType dtype, const std::vector<double>& values) {
  ir::RefTensor t = ir::RefTensor::zeros(dtype, {static_cast<int64_t>(values.size())});
  for (size_t k = 0; k < values.size(); ++k) t.set(k, values[k]);
  return t;
}
inline ir::RefTensor ref_int(DType dtype, const std::vector<int64_t>& values) {
  ir::RefTensor t = ir::RefTensor::zeros(dtype, {static_cast<int64_t>(values.size())});
  for (size_t k = 0; k < values.size(); ++k) t.set_int(k, values[k]);
  return t;
}

// Calls `fn` on `inputs` then `outputs` (then `scratch`, for a split reduction) for [begin, end).
inline void call(runtime::KernelFn fn, const std::vector<HostBuffer*>& inputs,
                 const std::vector<HostBuffer*>& outputs, int64_t begin, int64_t end,
                 void* scratch = nullptr) {
  std::vector<void*> ptrs;
  for (HostBuffer* b : inputs) ptrs.push_back(b->data());
  for (HostBuffer* b : outputs) ptrs.push_back(b->data());
  if (scratch != nullptr) ptrs.push_back(scratch);
  fn(ptrs.data(), begin, end);
}

// A zeroed scratch block for `k` (kernel ABI, emit_kernel.h); never empty, so data() is valid.
inline std::vector<int64_t> scratch_for(const Kernel& k) {
  return std::vector<int64_t>(static_cast<size_t>(kernel_scratch_bytes(k) / 8 + 1), 0);
}

// Compiles `k` with the test JIT and runs it over its whole parallel range: one output buffer
// per kernel output, sized by its numel.
inline std::vector<HostBuffer> run_kernel(const Kernel& k, const std::vector<ir::RefTensor>& in) {
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, test_jit());
  EXPECT_TRUE(fn.ok()) << fn.status() << "\n" << k.to_string();
  std::vector<HostBuffer> inputs, outputs;
  for (const ir::RefTensor& t : in) inputs.push_back(HostBuffer::from(t));
  for (const KOutput& o : k.outputs) outputs.emplace_back(o.dtype, o.numel);
  if (!fn.ok()) return outputs;
  std::vector<HostBuffer*> ip, op;
  for (HostBuffer& b : inputs) ip.push_back(&b);
  for (HostBuffer& b : outputs) op.push_back(&b);
  std::vector<int64_t> scratch = scratch_for(k);
  call(*fn, ip, op, 0, parallel_extent(k), kernel_scratch_bytes(k) > 0 ? scratch.data() : nullptr);
  return outputs;
}

// Element `i` of `t` as a double (integers exactly up to 2^53; compare them with get_int).
inline bool same_value(const ir::RefTensor& a, const ir::RefTensor& b, int64_t i) {
  if (a.floating()) {
    const double x = a.f[i], y = b.f[i];
    return (std::isnan(x) && std::isnan(y)) || x == y;
  }
  return a.i[i] == b.i[i];
}

}  // namespace smelt::compiler::testing
