// Saving and loading named tensors: a module's parameters and buffers, or any list of named
// tensors (an optimizer's state).
//
//   save(model, "model.smelt");
//   load(model, "model.smelt");   // same architecture: every name, dtype and shape must match
//
// Loading checks the whole file (magic, version, structure, checksum) and every entry against
// the module before changing anything: on any problem it throws smelt::Error naming the file and
// the problem, and the module is untouched.
//
// File format, version 1. All integers are little-endian; tensor data is row-major and
// little-endian (Bool as one byte 0/1).
//
//   offset  size  field
//   0       8     magic "SMELTTNS"
//   8       4     u32 format version (1)
//   12      4     u32 reserved, 0
//   16      8     u64 number of entries
//   24      ...   entries, each:
//                   u32 name length L, then L bytes of name (UTF-8, no terminator)
//                   u8  dtype: 0 bool, 1 i32, 2 i64, 3 f32, 4 f64
//                   u8  rank R (at most 64)
//                   R x i64 dims
//                   u64 byte count B (= numel x element size)
//                   B bytes of data
//   end-8   8     u64 FNV-1a 64 hash of every byte before it
//
// Module entries are named as named_parameters() and named_buffers() name them ("0.weight",
// "bn1.running_mean"); parameters come first, then buffers. Files are written to "<path>.tmp"
// and renamed, so a failed save never leaves a half-written file at `path`.
#pragma once

#include <smelt/nn.h>
#include <smelt/tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace smelt {

// Writes `tensors` (names non-empty and unique) to `path`, realizing them first.
void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, Tensor>>& tensors);
// Reads every entry of a file written by save_tensors or save, in file order, as CPU tensors.
std::vector<std::pair<std::string, Tensor>> load_tensors(const std::string& path);

// Writes the module's parameters and buffers.
void save(const nn::Module& module, const std::string& path);
// Replaces the module's parameters and buffers in place with the file's (on the device each
// already lives on). The Tensor handles stay valid and keep requires_grad, so an optimizer built
// before the load still updates the loaded values.
void load(nn::Module& module, const std::string& path);

template <typename Impl>
void save(const nn::ModuleHolder<Impl>& module, const std::string& path) {
  save(*module, path);
}
template <typename Impl>
void load(const nn::ModuleHolder<Impl>& module, const std::string& path) {
  load(*module, path);
}

}  // namespace smelt
