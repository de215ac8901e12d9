#include "runtime/scan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/strings/str_cat.h"
#include "runtime/cuda_api.h"
#include "runtime/dtype_visit.h"
#include "runtime/thread_pool.h"

namespace smelt::runtime {
namespace {

// Columns one work unit scans side by side when the scanned dim is not the last: the running
// sums of a block of a row stay in a small array while the rows stream by.
constexpr int64_t kBlockColumns = 256;
// The least work (elements) worth one chunk of the parallel range.
constexpr int64_t kMinChunkElements = int64_t{1} << 15;

// One unit: columns [e0, e1) of outer slice `o`, in scan order along the dim.
// Sums: double for floating values (as PyTorch's CPU kernel), wrapping uint64 for integers.
template <typename T>
using ScanAcc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;

template <typename T, typename A = ScanAcc<T>>
void scan_block(const ScanCall& c, const T* x, T* y, int64_t o, int64_t e0, int64_t e1) {
  const int64_t n = c.dim_size, inner = c.inner, width = e1 - e0;
  if (inner == 1) {  // a contiguous line: one running sum, no per-element index arithmetic
    const T* in = x + o * n;
    T* out = y + o * n;
    A acc{0};
    if (c.reverse) {
      for (int64_t j = n - 1; j >= 0; --j) out[j] = static_cast<T>(acc += static_cast<A>(in[j]));
    } else {
      for (int64_t j = 0; j < n; ++j) out[j] = static_cast<T>(acc += static_cast<A>(in[j]));
    }
    return;
  }
  A acc[kBlockColumns] = {};
  for (int64_t s = 0; s < n; ++s) {
    const int64_t j = c.reverse ? n - 1 - s : s;
    const int64_t at = (o * n + j) * inner + e0;
    for (int64_t i = 0; i < width; ++i) {
      acc[i] += static_cast<A>(x[at + i]);  // integers: modular (wrapping) in uint64
      y[at + i] = static_cast<T>(acc[i]);
    }
  }
}

template <typename T>
void scan_all(const ScanCall& c, const void* src, void* out) {
  const auto* x = static_cast<const T*>(src);
  auto* y = static_cast<T*>(out);
  const int64_t blocks = (c.inner + kBlockColumns - 1) / kBlockColumns;
  const int64_t units = c.outer * blocks;
  const int64_t per_unit = std::max<int64_t>(1, c.dim_size * std::min(c.inner, kBlockColumns));
  default_thread_pool().parallel_for(
      units, std::max<int64_t>(1, kMinChunkElements / per_unit), [&](int64_t begin, int64_t end) {
        for (int64_t u = begin; u < end; ++u) {
          const int64_t o = u / blocks, e0 = (u % blocks) * kBlockColumns;
          scan_block<T>(c, x, y, o, e0, std::min(c.inner, e0 + kBlockColumns));
        }
      });
}

// Whether u sorts before v (ties: neither). NaN is above every number (PyTorch's order).
template <typename T>
bool before(T u, T v, bool descending) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(u) || std::isnan(v)) return descending ? !std::isnan(v) : !std::isnan(u);
  }
  return descending ? u > v : u < v;
}

// Whether v might sort before `worst`: a superset of before(v, worst, descending), one plain
// compare (a NaN on either side always counts).
template <typename T>
bool may_sort_before(T v, T worst, bool descending) {
  return descending ? !(v <= worst) : !(v >= worst);
}

// How many of x[0..kSkipBlock) might sort before `worst`. The compare-and-count loop vectorizes
// (one loop per order, so the order is a constant in each), so a block that holds nothing better
// costs a few instructions instead of one ordered, NaN-aware compare per element.
constexpr int64_t kSkipBlock = 16;

template <typename T>
int might_beat(const T* x, T worst, bool descending) {
  int hits = 0;
  if (descending) {
    for (int64_t i = 0; i < kSkipBlock; ++i) hits += may_sort_before(x[i], worst, true) ? 1 : 0;
  } else {
    for (int64_t i = 0; i < kSkipBlock; ++i) hits += may_sort_before(x[i], worst, false) ? 1 : 0;
  }
  return hits;
}

// The first k positions of a line for a small k (topk's usual case): one pass that keeps the k
// best so far in order, so most elements cost one comparison with the worst of them, and on a
// contiguous line, once k are kept, a block of kSkipBlock with nothing better is skipped whole.
// An equal element never displaces a kept one (those came first), which keeps the stable sort's
// order.
template <typename T>
void select_first_k(const T* x, int64_t n, int64_t inner, int64_t k, bool descending,
                    std::vector<std::pair<T, int64_t>>& kept) {
  kept.clear();
  auto offer = [&](int64_t j) {
    const T v = x[j * inner];
    if (static_cast<int64_t>(kept.size()) == k && !before(v, kept.back().first, descending)) {
      return;
    }
    auto at = kept.end();
    while (at != kept.begin() && before(v, (at - 1)->first, descending)) --at;
    if (static_cast<int64_t>(kept.size()) == k) kept.pop_back();
    kept.insert(at, {v, j});
  };
  int64_t j = 0;
  if (inner == 1) {
    for (; j + kSkipBlock <= n; j += kSkipBlock) {
      if (static_cast<int64_t>(kept.size()) == k &&
          might_beat(x + j, kept.back().first, descending) == 0) {
        continue;
      }
      // Offer only what might beat the worst kept (which rises as they go in).
      for (int64_t i = j; i < j + kSkipBlock; ++i) {
        if (static_cast<int64_t>(kept.size()) < k ||
            may_sort_before(x[i], kept.back().first, descending)) {
          offer(i);
        }
      }
    }
  }
  for (; j < n; ++j) offer(j);
}

// Small k: select_first_k; else the whole line sorted.
constexpr int64_t kMaxSelectK = 64;

// A value's place in the sort order as an unsigned key of its width: floating values by their
// bits with the sign folded (negative ones reversed), -0 as +0 (a tie), every NaN above +inf;
// integers with the sign bit flipped. Descending reverses the key.
template <typename T>
using SortKey = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;

template <typename T>
SortKey<T> sort_key(T v, bool descending) {
  using K = SortKey<T>;
  constexpr K kSign = K{1} << (8 * sizeof(K) - 1);
  K key;
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(v)) {
      key = ~K{0};
    } else {
      const K bits = absl::bit_cast<K>(v == T(0) ? T(0) : v);
      key = (bits & kSign) != 0 ? ~bits : bits | kSign;
    }
  } else {
    key = static_cast<K>(v) ^ kSign;
  }
  return descending ? ~key : key;
}

// Positions 0..n-1 ordered by `keys`, ties in position order: a least-significant-digit radix
// sort, one stable pass per byte of the key (a pass whose digit all keys share is skipped). No
// comparisons, so no mispredicted branches: sorting [512, 1024] floats took 5.2-5.6 ms, against
// 13.6-16.6 ms with std::sort of (key, position) words and ~20 ms with the comparator sort.
template <typename K, typename P>
struct RadixScratch {
  std::vector<K> keys, keys2;
  std::vector<P> positions, positions2;  // P: uint32_t for lines shorter than 2^32
};

template <typename K, typename P>
void radix_argsort(RadixScratch<K, P>& r, int64_t n) {
  r.positions.resize(static_cast<size_t>(n));
  r.keys2.resize(static_cast<size_t>(n));
  r.positions2.resize(static_cast<size_t>(n));
  std::iota(r.positions.begin(), r.positions.end(), P{0});
  for (int shift = 0; shift < static_cast<int>(8 * sizeof(K)); shift += 8) {
    int64_t count[256] = {};
    for (int64_t i = 0; i < n; ++i) ++count[(r.keys[i] >> shift) & 0xFFu];
    if (count[(r.keys[0] >> shift) & 0xFFu] == n) continue;
    int64_t sum = 0;
    for (int64_t& c : count) {
      const int64_t here = c;
      c = sum;
      sum += here;
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = count[(r.keys[i] >> shift) & 0xFFu]++;
      r.keys2[at] = r.keys[i];
      r.positions2[at] = r.positions[i];
    }
    r.keys.swap(r.keys2);
    r.positions.swap(r.positions2);
  }
}

// argsort: one unit per line; the first k positions in the stable sort's order: a selection for
// a small k < n, else a radix sort of the line's keys (bench/RESULTS.md, "topk and gather,
// session 11").
template <typename T>
void argsort_all(const ScanCall& c, const void* src, void* out) {
  const auto* x = static_cast<const T*>(src);
  auto* y = static_cast<int64_t*>(out);
  const int64_t n = c.dim_size, inner = c.inner, k = c.k;
  // Work per line: a selection reads it once, the radix sort about eight times.
  const int64_t per_line = std::max<int64_t>(1, k <= kMaxSelectK ? n : n * 8);
  default_thread_pool().parallel_for(
      c.outer * inner, std::max<int64_t>(1, kMinChunkElements / per_line),
      [&](int64_t begin, int64_t end) {
        if (k < n && k <= kMaxSelectK) {
          std::vector<std::pair<T, int64_t>> kept;
          kept.reserve(static_cast<size_t>(k) + 1);
          for (int64_t line = begin; line < end; ++line) {
            const int64_t base = (line / inner) * n * inner + line % inner;
            select_first_k(x + base, n, inner, k, c.reverse, kept);
            const int64_t out_base = (line / inner) * k * inner + line % inner;
            for (int64_t s = 0; s < k; ++s) y[out_base + s * inner] = kept[s].second;
          }
          return;
        }
        auto sort_lines = [&](auto& r) {
          for (int64_t line = begin; line < end; ++line) {
            const int64_t base = (line / inner) * n * inner + line % inner;
            r.keys.resize(static_cast<size_t>(n));
            for (int64_t j = 0; j < n; ++j) r.keys[j] = sort_key(x[base + j * inner], c.reverse);
            radix_argsort(r, n);
            const int64_t out_base = (line / inner) * k * inner + line % inner;
            for (int64_t s = 0; s < k; ++s) {
              y[out_base + s * inner] = static_cast<int64_t>(r.positions[s]);
            }
          }
        };
        if (n <= int64_t{0xFFFFFFFF}) {
          RadixScratch<SortKey<T>, uint32_t> r;
          sort_lines(r);
        } else {
          RadixScratch<SortKey<T>, uint64_t> r;
          sort_lines(r);
        }
      });
}

// ---- CUDA -----------------------------------------------------------------------------------

// Accumulators: double for floating values (as the CPU), unsigned 64-bit for integers, whose
// adds then wrap without undefined behaviour. Rows: one block of kRowThreads per line of the
// last dim; thread t sums its piece, thread 0 turns the pieces' sums into offsets, then every
// thread rescans its piece from its offset. Columns: one thread per column.
constexpr int kRowThreads = 256;
// The longest line the CUDA argsort ranks on the device (n^2 compares per line).
constexpr int64_t kMaxRankLine = 16384;
constexpr const char* kScanKernels = R"CUDA(
template <typename T, typename A>
__device__ void scan_columns(const T* __restrict__ x, T* __restrict__ y, long long outer,
                             long long n, long long inner, int reverse) {
  const long long total = outer * inner;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long base = (i / inner) * n * inner + i % inner;
    A acc = 0;
    for (long long s = 0; s < n; ++s) {
      const long long at = base + (reverse ? n - 1 - s : s) * inner;
      acc += (A)x[at];
      y[at] = (T)acc;
    }
  }
}

template <typename T, typename A>
__device__ void scan_rows(const T* __restrict__ x, T* __restrict__ y, long long lines,
                          long long n, int reverse, A* partial) {
  const int t = threadIdx.x;
  const long long piece = (n + blockDim.x - 1) / blockDim.x;
  const long long begin = t * piece < n ? t * piece : n;
  const long long end = begin + piece < n ? begin + piece : n;
  for (long long line = blockIdx.x; line < lines; line += gridDim.x) {
    const T* xs = x + line * n;
    T* ys = y + line * n;
    A sum = 0;
    for (long long s = begin; s < end; ++s) sum += (A)xs[reverse ? n - 1 - s : s];
    partial[t] = sum;
    __syncthreads();
    if (t == 0) {
      A run = 0;
      for (int k = 0; k < blockDim.x; ++k) {
        const A v = partial[k];
        partial[k] = run;
        run += v;
      }
    }
    __syncthreads();
    A acc = partial[t];
    for (long long s = begin; s < end; ++s) {
      const long long j = reverse ? n - 1 - s : s;
      acc += (A)xs[j];
      ys[j] = (T)acc;
    }
    __syncthreads();  // `partial` is the next line's
  }
}

#define SMELT_SCAN(T, A, SUFFIX)                                                               \
  extern "C" __global__ void smelt_scan_columns_##SUFFIX(const T* x, T* y, long long outer,    \
                                                         long long n, long long inner,         \
                                                         int reverse) {                        \
    scan_columns<T, A>(x, y, outer, n, inner, reverse);                                        \
  }                                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                                            \
      smelt_scan_rows_##SUFFIX(const T* x, T* y, long long lines, long long n, int reverse) {  \
    __shared__ A partial[256];                                                                 \
    scan_rows<T, A>(x, y, lines, n, reverse, partial);                                         \
  }
SMELT_SCAN(float, double, f32)
SMELT_SCAN(double, double, f64)
SMELT_SCAN(int, unsigned long long, i32)
SMELT_SCAN(long long, unsigned long long, i64)

// argsort by ranks: the thread of element j counts the elements of its line that sort before it
// (ties by position, so the order is stable) and writes j at that rank. n compares per element:
// simple and parallel, fine for the lines of a few thousand that sort/topk see in training code.
template <typename T>
__device__ bool before(T u, T v, int descending) {
  const bool un = u != u, vn = v != v;  // NaN (never for integers) sorts above every number
  if (un || vn) return descending ? !vn : !un;
  return descending ? u > v : u < v;
}
template <typename T>
__device__ void argsort(const T* __restrict__ x, long long* __restrict__ out, long long outer,
                        long long n, long long inner, long long k, int descending) {
  const long long total = outer * n * inner;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long e = i % inner;
    const long long j = (i / inner) % n;
    const long long base = (i / inner / n) * n * inner + e;
    const T u = x[i];
    long long rank = 0;
    for (long long m = 0; m < n; ++m) {
      const T v = x[base + m * inner];
      if (before(v, u, descending) || (m < j && !before(u, v, descending))) ++rank;
    }
    if (rank < k) out[((i / inner / n) * k + rank) * inner + e] = j;
  }
}
#define SMELT_ARGSORT(T, SUFFIX)                                                        \
  extern "C" __global__ void smelt_argsort_##SUFFIX(                                    \
      const T* x, long long* out, long long outer, long long n, long long inner,         \
      long long k, int descending) {                                                     \
    argsort<T>(x, out, outer, n, inner, k, descending);                                  \
  }
SMELT_ARGSORT(float, f32)
SMELT_ARGSORT(double, f64)
SMELT_ARGSORT(int, i32)
SMELT_ARGSORT(long long, i64)
)CUDA";

const char* const kSuffixes[] = {"f32", "f64", "i32", "i64"};

std::vector<std::string> names_in_order() {
  std::vector<std::string> names;
  for (const char* s : kSuffixes) {
    names.push_back(absl::StrCat("smelt_scan_columns_", s));
    names.push_back(absl::StrCat("smelt_scan_rows_", s));
    names.push_back(absl::StrCat("smelt_argsort_", s));
  }
  return names;
}

struct ScanKernels {
  cuda::Function columns[4] = {}, rows[4] = {}, argsort[4] = {};
};

absl::StatusOr<const ScanKernels*> scan_kernels() {
  static std::mutex mu;
  static ScanKernels* loaded = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded != nullptr) return loaded;
  absl::StatusOr<cuda::CompiledImage> image = cuda::nvrtc_compile(kScanKernels, "smelt_scan");
  if (!image.ok()) return image.status();
  absl::StatusOr<std::vector<cuda::Function>> fns = cuda::load_functions(*image, names_in_order());
  if (!fns.ok()) return fns.status();
  auto* k = new ScanKernels;
  for (int t = 0; t < 4; ++t) {
    k->columns[t] = (*fns)[3 * t];
    k->rows[t] = (*fns)[3 * t + 1];
    k->argsort[t] = (*fns)[3 * t + 2];
  }
  loaded = k;
  return loaded;
}

absl::Status unsupported(const ScanCall& c) {
  return absl::InternalError(absl::StrCat(c.op == ScanCall::Op::kArgSort ? "argsort" : "cumsum",
                                          ": no kernel for ", dtype_name(c.dtype)));
}

}  // namespace

absl::Status run_scan(const ScanCall& c, const void* src, void* out) {
  if (c.outer * c.dim_size * c.inner == 0 || (c.op == ScanCall::Op::kArgSort && c.k == 0)) {
    return absl::OkStatus();
  }
  const bool known =
      c.op == ScanCall::Op::kArgSort
          ? visit_numeric</*kWithBool=*/true>(
                c.dtype, [&](auto zero) { argsort_all<decltype(zero)>(c, src, out); })
          : visit_numeric(c.dtype, [&](auto zero) { scan_all<decltype(zero)>(c, src, out); });
  return known ? absl::OkStatus() : unsupported(c);
}

const char* scan_cuda_source() { return kScanKernels; }
std::vector<std::string> scan_cuda_kernel_names() { return names_in_order(); }

absl::Status run_scan_cuda(const ScanCall& c, const void* src, void* out) {
  if (c.outer * c.dim_size * c.inner == 0 || (c.op == ScanCall::Op::kArgSort && c.k == 0)) {
    return absl::OkStatus();
  }
  const int t = cuda::builtin_dtype_index(c.dtype);
  if (t < 0) return unsupported(c);
  absl::StatusOr<const ScanKernels*> k = scan_kernels();
  if (!k.ok()) return k.status();
  long long outer = c.outer, n = c.dim_size, inner = c.inner;
  int reverse = c.reverse ? 1 : 0;
  cuda::LaunchConfig config;
  config.block[0] = kRowThreads;
  if (c.op == ScanCall::Op::kArgSort && n > kMaxRankLine) {
    // Ranks cost n compares per element: a long line is sorted on the host instead (the copies
    // wait for the stream; the CPU sort is the tested one).
    const size_t in_bytes = static_cast<size_t>(outer * n * inner) * dtype_size(c.dtype);
    const size_t out_bytes = static_cast<size_t>(outer * c.k * inner) * sizeof(int64_t);
    std::vector<char> host_in(in_bytes), host_out(out_bytes);
    if (absl::Status s = cuda::copy_to_host(host_in.data(), src, in_bytes); !s.ok()) return s;
    if (absl::Status s = run_scan(c, host_in.data(), host_out.data()); !s.ok()) return s;
    return cuda::copy_to_device(out, host_out.data(), out_bytes);
  }
  if (c.op == ScanCall::Op::kArgSort) {
    config.grid[0] =
        static_cast<uint32_t>(std::clamp<long long>((outer * n * inner + 255) / 256, 1, 132 * 32));
    long long count = c.k;
    void* params[] = {&src, &out, &outer, &n, &inner, &count, &reverse};
    return cuda::launch((*k)->argsort[t], config, params);
  }
  // A long last-dim line gets a block; short lines or other dims a thread per column.
  if (inner == 1 && n >= 4 * kRowThreads) {
    config.grid[0] = static_cast<uint32_t>(std::clamp<long long>(outer, 1, 65535));
    void* params[] = {&src, &out, &outer, &n, &reverse};
    return cuda::launch((*k)->rows[t], config, params);
  }
  config.grid[0] =
      static_cast<uint32_t>(std::clamp<long long>((outer * inner + 255) / 256, 1, 132 * 32));
  void* params[] = {&src, &out, &outer, &n, &inner, &reverse};
  return cuda::launch((*k)->columns[t], config, params);
}

}  // namespace smelt::runtime
