// The data layer's random numbers: the shuffle of each epoch and the draws of random transforms.
// Everything is derived from the loader's seed by SplitMix64 mixing and drawn with our own
// integer arithmetic (not <random>'s distributions, whose output differs between standard
// libraries), so an epoch's order and augmentations are the same on every platform and for any
// number of worker threads.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace smelt::data::detail {

// SplitMix64's finalizer: a bijection that spreads every input bit over the output.
uint64_t mix64(uint64_t x);
// A seed derived from `seed` and a sequence of stream numbers (epoch, batch): distinct
// sequences give unrelated generators.
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

// Uniform in [0, n) (n >= 1) by rejection, so every value is equally likely.
uint64_t uniform_below(std::mt19937_64& engine, uint64_t n);
// Uniform in [0, 1) with 53 random bits.
double uniform01(std::mt19937_64& engine);

// 0, 1, ..., n - 1 in a random order (Fisher-Yates) drawn from a generator seeded with `seed`.
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

// The calling thread's generator of the random transforms.
std::mt19937_64& transform_engine();

// Seeds the calling thread's transform generator for one batch and restores its previous state
// afterwards, so a loop on the user's thread leaves the generator as it found it.
class ScopedTransformSeed {
 public:
  explicit ScopedTransformSeed(uint64_t seed);
  ~ScopedTransformSeed();
  ScopedTransformSeed(const ScopedTransformSeed&) = delete;
  ScopedTransformSeed& operator=(const ScopedTransformSeed&) = delete;

 private:
  std::mt19937_64 saved_;
};

}  // namespace smelt::data::detail
