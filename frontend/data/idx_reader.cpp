#include "frontend/data/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace smelt::data::detail {
namespace {

// Bytes per element of an IDX type code; 0 for a code IDX does not define.
size_t element_size(uint8_t type) {
  switch (type) {
    case 0x08:
    case 0x09:
      return 1;
    case 0x0B:
      return 2;
    case 0x0C:
    case 0x0D:
      return 4;
    case 0x0E:
      return 8;
    default:
      return 0;
  }
}

struct GzClose {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzClose>;

// Reads up to `n` bytes; fewer only where the data ends. A read error (a corrupt gzip stream, an
// I/O error) is DataLoss naming the file.
absl::StatusOr<size_t> read_up_to(gzFile f, uint8_t* dst, size_t n, const std::string& path) {
  size_t total = 0;
  while (total < n) {
    // gzread takes an unsigned count and returns an int.
    const auto chunk = static_cast<unsigned>(std::min<size_t>(n - total, size_t{1} << 30));
    const int got = gzread(f, dst + total, chunk);
    if (got < 0) {
      int code = Z_OK;
      const char* msg = gzerror(f, &code);
      return absl::DataLossError(absl::StrCat(
          path, " is corrupted or unreadable: ", code == Z_ERRNO ? std::strerror(errno) : msg));
    }
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  return total;
}

// Why a read came up short: a gzip stream that stops mid-way, or a file that is simply short.
std::string short_read_reason(gzFile f) {
  int code = Z_OK;
  gzerror(f, &code);
  return code == Z_BUF_ERROR ? " (its gzip stream ends early)" : "";
}

uint32_t big_endian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

absl::StatusOr<IdxFile> read_idx(const std::string& path) {
  errno = 0;
  GzFile file(gzopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ",
                                            errno != 0 ? std::strerror(errno) : "out of memory"));
  }
  gzbuffer(file.get(), 1 << 18);  // fewer, larger reads: the training images are 26 MB

  uint8_t magic[4];
  absl::StatusOr<size_t> got = read_up_to(file.get(), magic, 4, path);
  if (!got.ok()) return got.status();
  if (*got < 4) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: it ends after ", *got,
                                            " bytes, inside the 4-byte IDX magic number",
                                            short_read_reason(file.get())));
  }
  IdxFile idx;
  idx.type = magic[2];
  const size_t es = element_size(idx.type);
  if (magic[0] != 0 || magic[1] != 0 || es == 0 || magic[3] == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is not an IDX file: its magic number is 0x%02x%02x%02x%02x, but IDX files start "
        "with 0x0000, a type code (0x08 for unsigned bytes) and a nonzero number of dims",
        path, magic[0], magic[1], magic[2], magic[3]));
  }

  const size_t rank = magic[3];
  std::vector<uint8_t> header(4 * rank);
  got = read_up_to(file.get(), header.data(), header.size(), path);
  if (!got.ok()) return got.status();
  if (*got < header.size()) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: it ends inside its header of ",
                                            rank, " dims", short_read_reason(file.get())));
  }
  // Refuse sizes no dataset file has before allocating (a corrupt header could claim 2^96).
  constexpr uint64_t kMaxBytes = uint64_t{1} << 40;
  uint64_t bytes = es;
  for (size_t d = 0; d < rank; ++d) {
    const uint32_t n = big_endian32(&header[4 * d]);
    idx.dims.push_back(n);
    bytes = n == 0 ? 0 : (bytes > kMaxBytes / n ? kMaxBytes + 1 : bytes * n);
  }
  const std::string dims = absl::StrCat("[", absl::StrJoin(idx.dims, ", "), "]");
  if (bytes > kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is corrupted: its header claims dims ", dims, ", over 1 TiB of data"));
  }

  idx.data.resize(bytes);
  got = read_up_to(file.get(), idx.data.data(), idx.data.size(), path);
  if (!got.ok()) return got.status();
  if (*got < bytes) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: its header promises dims ", dims,
                                            " (", bytes, " bytes of data) but the data ends after ",
                                            *got, " bytes", short_read_reason(file.get())));
  }
  uint8_t extra;
  got = read_up_to(file.get(), &extra, 1, path);
  if (!got.ok()) return got.status();
  if (*got != 0) {
    return absl::DataLossError(absl::StrCat(path, " is corrupted: it has more data than its ",
                                            "header's dims ", dims, " account for"));
  }
  // All data is there, but a gzip stream cut before its checksum trailer is still truncated.
  int code = Z_OK;
  gzerror(file.get(), &code);
  if (code == Z_BUF_ERROR) {
    return absl::DataLossError(
        absl::StrCat(path, " is truncated: its gzip stream ends before the gzip trailer"));
  }
  return idx;
}

}  // namespace smelt::data::detail
