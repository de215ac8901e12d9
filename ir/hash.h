// Stable 64-bit hashing for structural hashes and cache keys. Unlike absl::Hash it is the same in
// every process, so keys can name entries of the on-disk caches.
#pragma once

#include <cstdint>
#include <cstring>
#include "absl/strings/string_view.h"

namespace smelt::ir {

// Mixes `v` into `seed` (a 64-bit finalizer over the xor; good avalanche, cheap).
constexpr uint64_t hash_combine(uint64_t seed, uint64_t v) {
  uint64_t x = seed ^ (v + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline uint64_t hash_double(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

// FNV-1a over the bytes, then mixed.
constexpr uint64_t hash_string(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return hash_combine(h, s.size());
}

}  // namespace smelt::ir
