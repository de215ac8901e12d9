// smelt's on-disk compile caches (CPU objects, CUDA cubins) share one folder and one entry
// format, defined here once.
//
// The folder: `$SMELT_CACHE_DIR`, else `$XDG_CACHE_HOME/smelt`, else `~/.cache/smelt`; none when
// `SMELT_DISABLE_DISK_CACHE` is set to anything but "" or "0".
//
// An entry is one file: a 32-byte header (an 8-byte magic naming the cache, a format version,
// the key's and the payload's sizes, a checksum of both), the key, then the payload. Writes go
// to a temporary file renamed into place, so readers (other processes too) see the old file or
// the whole new one; a truncated, corrupted or foreign file reads as absent and is rewritten.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace smelt::runtime {

// The cache folder from the environment as it is now (read on every call, so tests can point it
// elsewhere); empty when the disk cache is disabled or no folder can be named.
std::string cache_dir_from_env();

// Which cache an entry belongs to: an 8-character magic and the cache's format version.
struct EntryKind {
  char magic[8];
  uint32_t version;
};

// The payload of the entry at `path`, if the file is a whole entry of `kind` for `key`.
std::optional<std::string> read_cache_entry(const std::string& path, const EntryKind& kind,
                                            std::string_view key);

// Writes the entry; false if any step failed (the cache is an optimization: callers count it).
bool write_cache_entry(const std::string& path, const EntryKind& kind, std::string_view key,
                       std::string_view payload);

// Writes the concatenation of `parts` to `path` atomically (temporary file + rename), creating
// the folder if needed; false on failure.
bool write_file_atomically(const std::string& path, std::initializer_list<std::string_view> parts);

}  // namespace smelt::runtime
