#include "runtime/disk_cache.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

namespace smelt::runtime {
namespace {

struct EntryHeader {
  char magic[8];
  uint32_t version;
  uint32_t key_size;
  uint64_t payload_size;
  uint64_t checksum;  // of the key and the payload
};
static_assert(sizeof(EntryHeader) == 32);

uint64_t entry_checksum(std::string_view key, std::string_view payload) {
  return llvm::xxh3_64bits(llvm::StringRef(key.data(), key.size())) ^
         (llvm::xxh3_64bits(llvm::StringRef(payload.data(), payload.size())) *
          0x9e3779b97f4a7c15ULL);
}

}  // namespace

std::string cache_dir_from_env() {
  const char* disable = std::getenv("SMELT_DISABLE_DISK_CACHE");
  if (disable != nullptr && std::strcmp(disable, "") != 0 && std::strcmp(disable, "0") != 0) {
    return "";
  }
  if (const char* dir = std::getenv("SMELT_CACHE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/smelt");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.cache/smelt");
  }
  return "";
}

std::optional<std::string> read_cache_entry(const std::string& path, const EntryKind& kind,
                                            std::string_view key) {
  // IsVolatile: read, never mmap, so a file replaced under us cannot fault.
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                          /*RequiresNullTerminator=*/false, /*IsVolatile=*/true);
  if (!file) return std::nullopt;
  const llvm::StringRef data = (*file)->getBuffer();
  if (data.size() < sizeof(EntryHeader)) return std::nullopt;
  EntryHeader h;
  std::memcpy(&h, data.data(), sizeof h);
  if (std::memcmp(h.magic, kind.magic, sizeof h.magic) != 0 || h.version != kind.version ||
      h.key_size != key.size() || h.key_size > data.size() - sizeof h ||
      h.payload_size != data.size() - sizeof h - h.key_size) {
    return std::nullopt;
  }
  const std::string_view stored_key(data.data() + sizeof h, h.key_size);
  const std::string_view payload(data.data() + sizeof h + h.key_size, h.payload_size);
  if (stored_key != key || entry_checksum(stored_key, payload) != h.checksum) return std::nullopt;
  return std::string(payload);
}

bool write_cache_entry(const std::string& path, const EntryKind& kind, std::string_view key,
                       std::string_view payload) {
  EntryHeader h;
  std::memcpy(h.magic, kind.magic, sizeof h.magic);
  h.version = kind.version;
  h.key_size = static_cast<uint32_t>(key.size());
  h.payload_size = payload.size();
  h.checksum = entry_checksum(key, payload);
  return write_file_atomically(
      path, {std::string_view(reinterpret_cast<const char*>(&h), sizeof h), key, payload});
}

bool write_file_atomically(const std::string& path, std::initializer_list<std::string_view> parts) {
  if (llvm::sys::fs::create_directories(llvm::sys::path::parent_path(path))) return false;
  int fd = -1;
  llvm::SmallString<256> tmp;
  if (llvm::sys::fs::createUniqueFile(path + ".%%%%%%%%.tmp", fd, tmp)) return false;
  bool ok;
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    for (std::string_view p : parts) os << llvm::StringRef(p.data(), p.size());
    os.close();
    ok = !os.has_error();
    if (!ok) os.clear_error();
  }
  if (ok && !llvm::sys::fs::rename(tmp, path)) return true;
  llvm::sys::fs::remove(tmp);
  return false;
}

}  // namespace smelt::runtime
