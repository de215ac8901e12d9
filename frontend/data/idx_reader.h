// IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a type
// code, the number of dims, then each dim as a 32-bit integer) followed by the elements in
// row-major order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace smelt::data::detail {

// IDX element type codes.
inline constexpr uint8_t kIdxUnsignedByte = 0x08;

struct IdxFile {
  uint8_t type = 0;           // 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
  std::vector<int64_t> dims;  // from the header
  std::vector<uint8_t> data;  // the elements as stored (big-endian)
};

// Reads the IDX file at `path`, gzip-compressed or not (zlib reads both). Every error names the
// file: it cannot be opened, is not IDX (bad magic number or type code), is truncated (shorter
// than its header promises, or its gzip stream ends early), has bytes after the data, or its
// gzip stream is corrupt.
absl::StatusOr<IdxFile> read_idx(const std::string& path);

}  // namespace smelt::data::detail
