#include "frontend/data/data_random.h"

#include <numeric>
#include <utility>

namespace smelt::data::detail {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
  return mix64(mix64(mix64(seed) ^ a) ^ b);
}

uint64_t uniform_below(std::mt19937_64& engine, uint64_t n) {
  // Accept only x >= 2^64 mod n, so that the accepted span is a multiple of n.
  const uint64_t reject_below = (0 - n) % n;
  uint64_t x = engine();
  while (x < reject_below) x = engine();
  return x % n;
}

double uniform01(std::mt19937_64& engine) {
  return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::mt19937_64 engine(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(engine, static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

std::mt19937_64& transform_engine() {
  // A fixed default seed: transforms used outside a loader are reproducible too.
  thread_local std::mt19937_64 engine(mix64(0x736d656c74ull));
  return engine;
}

ScopedTransformSeed::ScopedTransformSeed(uint64_t seed) : saved_(transform_engine()) {
  transform_engine().seed(seed);
}

ScopedTransformSeed::~ScopedTransformSeed() { transform_engine() = saved_; }

}  // namespace smelt::data::detail
