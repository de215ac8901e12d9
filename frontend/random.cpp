// Random tensors. Values are drawn on the host when the call is made, from one process-wide
// generator (a 64-bit Mersenne Twister behind a mutex), so that a program that seeds with
// manual_seed gets the same tensors on every run, whatever the evaluation order of the graph.
// The distributions are computed here, not by <random>'s distributions, whose output differs
// between standard libraries.
#include <smelt/creation.h>
#include <smelt/error.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <numbers>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

// PyTorch's default seed, so an unseeded program is reproducible too.
constexpr uint64_t kDefaultSeed = 67280421310721ull;

struct Generator {
  std::mutex mu;
  std::mt19937_64 engine{kDefaultSeed};
};

Generator& generator() {
  static Generator* g = new Generator();  // never destroyed: usable during static destruction
  return *g;
}

// Uniform in [0, 1) with 53 random bits: every double of the form k / 2^53.
double uniform53(std::mt19937_64& e) { return static_cast<double>(e() >> 11) * 0x1.0p-53; }
// Uniform in [0, 1) with 24 random bits, so that rounding to float can never give 1.
double uniform24(std::mt19937_64& e) { return static_cast<double>(e() >> 40) * 0x1.0p-24; }

void check_shape(absl::string_view op, const std::vector<int64_t>& shape) {
  for (int64_t d : shape) {
    if (d < 0) throw Error(absl::StrCat(op, ": negative size in shape ", ir::shape_str(shape)));
  }
}

void check_floating(absl::string_view op, DType dtype) {
  if (!is_floating(dtype)) {
    throw Error(absl::StrCat(op, ": needs a floating dtype (f32 or f64), got ", dtype_name(dtype)));
  }
}

// Draws `count` values of type V (double or int64_t) with `draw` under the generator's lock and
// stores them as `dtype`.
template <typename V, typename Draw>
Tensor generate(const std::vector<int64_t>& shape, DType dtype, Draw draw) {
  const int64_t count = ir::numel(shape);
  std::vector<V> values(static_cast<size_t>(count));
  {
    Generator& g = generator();
    std::lock_guard<std::mutex> lock(g.mu);
    draw(g.engine, values);
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(count) * dtype_size(dtype));
  for (int64_t k = 0; k < count; ++k) {
    detail::store_as(dtype, values[k], bytes.data() + static_cast<size_t>(k) * dtype_size(dtype));
  }
  return detail::wrap(detail::host_node(dtype, shape, bytes.data()));
}

}  // namespace

void manual_seed(uint64_t seed) {
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mu);
  g.engine.seed(seed);
}

Tensor randn(const std::vector<int64_t>& shape, DType dtype) {
  check_shape("randn", shape);
  check_floating("randn", dtype);
  return generate<double>(shape, dtype, [](std::mt19937_64& e, std::vector<double>& out) {
    // Box-Muller: two uniforms give two independent standard normals.
    for (size_t k = 0; k < out.size(); k += 2) {
      const double u1 = 1.0 - uniform53(e);  // (0, 1]: log(u1) is finite
      const double u2 = uniform53(e);
      const double r = std::sqrt(-2.0 * std::log(u1));
      out[k] = r * std::cos(2.0 * std::numbers::pi * u2);
      if (k + 1 < out.size()) out[k + 1] = r * std::sin(2.0 * std::numbers::pi * u2);
    }
  });
}

Tensor rand(const std::vector<int64_t>& shape, DType dtype) {
  check_shape("rand", shape);
  check_floating("rand", dtype);
  const bool f32 = dtype == DType::Float32;
  return generate<double>(shape, dtype, [f32](std::mt19937_64& e, std::vector<double>& out) {
    for (double& v : out) v = f32 ? uniform24(e) : uniform53(e);
  });
}

Tensor randint(int64_t low, int64_t high, const std::vector<int64_t>& shape, DType dtype) {
  check_shape("randint", shape);
  if (low >= high) {
    throw Error(absl::StrCat("randint: low (", low, ") must be less than high (", high, ")"));
  }
  if ((dtype == DType::Int32 && (low < std::numeric_limits<int32_t>::min() ||
                                 high - 1 > std::numeric_limits<int32_t>::max())) ||
      (dtype == DType::Bool && (low < 0 || high > 2))) {
    throw Error(absl::StrCat("randint: the range [", low, ", ", high, ") does not fit ",
                             dtype_name(dtype)));
  }
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  return generate<int64_t>(shape, dtype,
                           [low, range](std::mt19937_64& e, std::vector<int64_t>& out) {
                             // Rejection keeps every value equally likely: accept only x >= 2^64
                             // mod range, so the accepted span is a multiple of range.
                             const uint64_t reject_below = (0 - range) % range;
                             for (int64_t& v : out) {
                               uint64_t x = e();
                               while (x < reject_below) x = e();
                               v = static_cast<int64_t>(static_cast<uint64_t>(low) + x % range);
                             }
                           });
}

Tensor randn_like(const Tensor& t) { return randn(t.shape(), t.dtype()); }
Tensor rand_like(const Tensor& t) { return rand(t.shape(), t.dtype()); }

}  // namespace smelt
