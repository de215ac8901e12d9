// The LLVM code generator on hand-built kernels: index arithmetic (broadcast, transposed and
// strided loads, div/mod, padding masks), every expression kind, reductions of each kind over
// inner, outer, several and all axes (checked against the reference evaluator's reductions),
// argmax/argmin ties and NaN, empty and size-1 domains, multiple outputs, the begin/end split,
// batches, malformed kernels, and the shape of the generated LLVM IR.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "runtime/thread_pool.h"
#include "tests/codegen/codegen_testing.h"

namespace smelt::compiler {
namespace {

using ir::OpCode;
using ir::RefTensor;
using testing::HostBuffer;
using testing::ref;
using testing::ref_int;
using testing::run_kernel;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

RefTensor random_tensor(DType t, ir::Shape shape, uint32_t seed, double lo = -1, double hi = 1) {
  RefTensor r = RefTensor::zeros(t, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int64_t k = 0; k < r.numel(); ++k) {
    if (t == DType::Bool) {
      r.set_int(k, gen() % 2);
    } else if (is_floating(t)) {
      r.set(k, u(gen));
    } else {
      r.set_int(k, static_cast<int64_t>(std::floor(u(gen))));
    }
  }
  return r;
}

// ---- index arithmetic -----------------------------------------------------------------------

// out[i, j] = a[i, j] + row[j] * col[i]: both broadcasts, as lowering writes them.
TEST(EmitKernel, Broadcast) {
  const int64_t h = 7, w = 37;
  Kernel k;
  k.name = "broadcast";
  k.domain = {h, w};
  k.num_outer = 2;
  k.inputs = {{DType::Float32, h * w}, {DType::Float32, w}, {DType::Float32, h}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t flat = b.add(b.mul(i, b.iconst(w)), j);
  const int32_t v = b.apply(OpCode::Add, DType::Float32, b.load(0, flat),
                            b.apply(OpCode::Mul, DType::Float32, b.load(1, j), b.load(2, i)));
  k.outputs = {{DType::Float32, v, flat, h * w}};
  const RefTensor a = random_tensor(DType::Float32, {h * w}, 1);
  const RefTensor row = random_tensor(DType::Float32, {w}, 2);
  const RefTensor col = random_tensor(DType::Float32, {h}, 3);
  const RefTensor out = run_kernel(k, {a, row, col})[0].to_ref();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const float want = static_cast<float>(a.f[y * w + x]) +
                         static_cast<float>(row.f[x]) * static_cast<float>(col.f[y]);
      ASSERT_EQ(static_cast<float>(out.f[y * w + x]), want) << y << "," << x;
    }
  }
}

// out = in^T, through a 2-d domain (strided loads) and through a 1-d domain with div/mod.
TEST(EmitKernel, TransposeStridedAndDivMod) {
  const int64_t h = 13, w = 29;
  const RefTensor in = random_tensor(DType::Float64, {h * w}, 4);
  {
    Kernel k;
    k.name = "transpose2d";
    k.domain = {w, h};
    k.num_outer = 2;
    k.inputs = {{DType::Float64, h * w}};
    KernelBuilder b(k);
    const int32_t i = b.loop_var(0), j = b.loop_var(1);
    k.outputs = {{DType::Float64, b.load(0, b.add(b.mul(j, b.iconst(w)), i)),
                  b.add(b.mul(i, b.iconst(h)), j), h * w}};
    const RefTensor out = run_kernel(k, {in})[0].to_ref();
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t y = 0; y < h; ++y) ASSERT_EQ(out.f[x * h + y], in.f[y * w + x]);
    }
  }
  {
    Kernel k;
    k.name = "transpose_divmod";
    k.domain = {h * w};
    k.num_outer = 1;
    k.inputs = {{DType::Float64, h * w}};
    KernelBuilder b(k);
    const int32_t i = b.loop_var(0);
    // out[i] with i = x * h + y reads in[y * w + x].
    const int32_t src = b.add(b.mul(b.mod(i, h), b.iconst(w)), b.div(i, h));
    k.outputs = {{DType::Float64, b.load(0, src), i, h * w}};
    const RefTensor out = run_kernel(k, {in})[0].to_ref();
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t y = 0; y < h; ++y) ASSERT_EQ(out.f[x * h + y], in.f[y * w + x]);
    }
  }
}

// A step-3 slice with an offset, read backwards: out[i] = in[2 + 3 * (n - 1 - i)].
TEST(EmitKernel, SliceWithStepAndOffset) {
  const int64_t n = 50;
  Kernel k;
  k.name = "slice";
  k.domain = {n};
  k.num_outer = 1;
  k.inputs = {{DType::Int32, 3 * n + 2}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);
  const int32_t src = b.add(b.iconst(2 + 3 * (n - 1)), b.mul(i, b.iconst(-3)));
  k.outputs = {{DType::Int32, b.load(0, src), i, n}};
  RefTensor in = RefTensor::zeros(DType::Int32, {3 * n + 2});
  for (int64_t x = 0; x < in.numel(); ++x) in.i[x] = x * 11 - 500;
  const RefTensor out = run_kernel(k, {in})[0].to_ref();
  for (int64_t x = 0; x < n; ++x) ASSERT_EQ(out.i[x], in.i[2 + 3 * (n - 1 - x)]);
}

// Zero padding: out[i] = 1 <= i < n+1 ? in[i - 1] : -7, with the load index kept in range by a
// select on Int64 (kILt, kAnd, kSelect on indices and on values).
TEST(EmitKernel, PadWithMask) {
  const int64_t n = 21;
  Kernel k;
  k.name = "pad";
  k.domain = {n + 3};
  k.num_outer = 1;
  k.inputs = {{DType::Int64, n}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);
  const int32_t inside =
      b.logical_and(b.lt(b.iconst(0), i), b.lt(i, b.iconst(n + 1)));  // 0 < i < n+1
  const int32_t src = b.select(inside, b.add(i, b.iconst(-1)), b.iconst(0));
  const int32_t v = b.select(inside, b.load(0, src), b.constant(DType::Int64, -7));
  k.outputs = {{DType::Int64, v, i, n + 3}};
  RefTensor in = RefTensor::zeros(DType::Int64, {n});
  for (int64_t x = 0; x < n; ++x) in.i[x] = (x + 1) * (int64_t{1} << 40);
  const RefTensor out = run_kernel(k, {in})[0].to_ref();
  for (int64_t x = 0; x < n + 3; ++x) {
    ASSERT_EQ(out.i[x], x >= 1 && x <= n ? in.i[x - 1] : -7) << x;
  }
}

// The remainder of a dividend that may be negative may be negative too (srem keeps the sign): its
// range must say so, or lower() trusts an index like (i - 6) % 3 to be in bounds and reads
// before the buffer (found through avg_pool2d's gradient: padded, strided views).
TEST(EmitKernel, RemainderOfAPossiblyNegativeValueMayBeNegative) {
  Kernel k;
  k.domain = {8};
  k.num_outer = 1;
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);  // 0..7
  // (2i - 7) % 3 for i in 0..7 takes -2..2 (-7 % 3 is -1 in C++, 9 % 3 is 0).
  const int32_t r = b.mod(b.add(b.mul(i, b.iconst(2)), b.iconst(-7)), 3);
  EXPECT_EQ(b.min_of(r), -2);
  EXPECT_EQ(b.max_of(r), 2);
  // Never negative: 0..d-1 as before.
  const int32_t p = b.mod(b.add(b.mul(i, b.iconst(2)), b.iconst(1)), 3);
  EXPECT_EQ(b.min_of(p), 0);
  EXPECT_EQ(b.max_of(p), 2);
  // Never positive: -(d-1)..0.
  const int32_t q = b.mod(b.add(b.mul(i, b.iconst(-2)), b.iconst(-1)), 4);
  EXPECT_EQ(b.min_of(q), -3);
  EXPECT_EQ(b.max_of(q), 0);
}

// Bool in memory is one byte, 0 or 1; a nonzero byte reads as true.
TEST(EmitKernel, BoolLoadsAndStores) {
  const int64_t n = 67;
  Kernel k;
  k.name = "bools";
  k.domain = {n};
  k.num_outer = 1;
  k.inputs = {{DType::Bool, n}, {DType::Bool, n}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);
  const int32_t x = b.load(0, i), y = b.load(1, i);
  k.outputs = {{DType::Bool, b.apply(OpCode::LogicalOr, DType::Bool, x, y), i, n},
               {DType::Bool, b.apply(OpCode::LogicalNot, DType::Bool, x), i, n}};
  HostBuffer bx(DType::Bool, n), by(DType::Bool, n), o1(DType::Bool, n), o2(DType::Bool, n);
  auto* px = static_cast<uint8_t*>(bx.data());
  auto* py = static_cast<uint8_t*>(by.data());
  for (int64_t j = 0; j < n; ++j) {
    px[j] = static_cast<uint8_t>(j % 3 == 0 ? 2 : 0);  // 2: a nonzero byte, true
    py[j] = static_cast<uint8_t>(j % 2);
  }
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  testing::call(*fn, {&bx, &by}, {&o1, &o2}, 0, n);
  for (int64_t j = 0; j < n; ++j) {
    ASSERT_EQ(static_cast<uint8_t*>(o1.data())[j], (j % 3 == 0 || j % 2 == 1) ? 1 : 0) << j;
    ASSERT_EQ(static_cast<uint8_t*>(o2.data())[j], j % 3 == 0 ? 0 : 1) << j;
  }
}

// ---- domains and the ABI ----------------------------------------------------------------------

// out[i, j, l] = in[l, i, j] * 2 over a 3-d domain.
Kernel permute3d(int64_t a, int64_t b_, int64_t c) {
  Kernel k;
  k.name = "permute3d";
  k.domain = {a, b_, c};
  k.num_outer = 3;
  k.inputs = {{DType::Float32, a * b_ * c}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1), l = b.loop_var(2);
  const int32_t src = b.add(b.add(b.mul(l, b.iconst(a * b_)), b.mul(i, b.iconst(b_))), j);
  const int32_t dst = b.add(b.add(b.mul(i, b.iconst(b_ * c)), b.mul(j, b.iconst(c))), l);
  k.outputs = {{DType::Float32,
                b.apply(OpCode::Mul, DType::Float32, b.load(0, src), b.constant(DType::Float32, 2)),
                dst, a * b_ * c}};
  return k;
}

TEST(EmitKernel, SplitRangesGiveTheSameResult) {
  const Kernel k = permute3d(11, 5, 9);
  const RefTensor in = random_tensor(DType::Float32, {11 * 5 * 9}, 5);
  const RefTensor whole = run_kernel(k, {in})[0].to_ref();
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer bin = HostBuffer::from(in), out(DType::Float32, in.numel());
  // The small leading axes are flattened into the range (11 * 5 * 9 points), so the cuts fall
  // inside rows and planes as well as on their boundaries.
  const int64_t n = parallel_extent(k);
  EXPECT_EQ(n, 11 * 5 * 9);
  for (auto [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 3}, {3, 4}, {4, 4}, {4, 45}, {45, 46}, {46, 101}, {101, 388}, {388, n}}) {
    testing::call(*fn, {&bin}, {&out}, begin, end);
  }
  const RefTensor split = out.to_ref();
  for (int64_t x = 0; x < in.numel(); ++x) ASSERT_EQ(split.f[x], whole.f[x]) << x;
  // An empty range writes nothing.
  HostBuffer untouched(DType::Float32, in.numel());
  testing::call(*fn, {&bin}, {&untouched}, 5, 5);
  testing::call(*fn, {&bin}, {&untouched}, 7, 2);
  for (int64_t x = 0; x < in.numel(); ++x) ASSERT_TRUE(untouched.untouched(x)) << x;
}

TEST(EmitKernel, SizeOneAndEmptyDomains) {
  // Size 1 on every axis.
  {
    const Kernel k = permute3d(1, 1, 1);
    const RefTensor out = run_kernel(k, {ref(DType::Float32, {3.5})})[0].to_ref();
    EXPECT_EQ(out.f[0], 7.0);
  }
  // An empty inner or outer axis: nothing is read or written.
  for (auto dims : std::vector<std::vector<int64_t>>{{0, 4, 4}, {4, 0, 4}, {4, 4, 0}}) {
    const Kernel k = permute3d(dims[0], dims[1], dims[2]);
    absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
    ASSERT_TRUE(fn.ok()) << fn.status();
    HostBuffer out(DType::Float32, 1);
    void* ptrs[] = {nullptr, out.data()};  // the input is never read
    (*fn)(ptrs, 0, parallel_extent(k));
    EXPECT_TRUE(out.untouched(0));
  }
}

// A 0-d kernel: an empty domain, one point, range [0, 1).
TEST(EmitKernel, ZeroDimensional) {
  Kernel k;
  k.name = "scalar";
  k.domain = {};
  k.num_outer = 0;
  k.inputs = {{DType::Float64, 1}};
  KernelBuilder b(k);
  const int32_t zero = b.iconst(0);
  k.outputs = {{DType::Float64, b.apply(OpCode::Sqrt, DType::Float64, b.load(0, zero)), zero, 1}};
  EXPECT_EQ(parallel_extent(k), 1);
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer in = HostBuffer::from(ref(DType::Float64, {2.25})), out(DType::Float64, 1);
  testing::call(*fn, {&in}, {&out}, 0, 0);
  EXPECT_TRUE(out.untouched(0));
  testing::call(*fn, {&in}, {&out}, 0, 1);
  EXPECT_EQ(out.to_ref().f[0], 1.5);
}

// One kernel with two outputs of different dtypes and different index maps.
TEST(EmitKernel, MultipleOutputs) {
  const int64_t h = 6, w = 10;
  Kernel k;
  k.name = "two_outputs";
  k.domain = {h, w};
  k.num_outer = 2;
  k.inputs = {{DType::Float32, h * w}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t x = b.load(0, b.add(b.mul(i, b.iconst(w)), j));
  k.outputs = {
      {DType::Float32, b.apply(OpCode::Neg, DType::Float32, x), b.add(b.mul(i, b.iconst(w)), j),
       h * w},
      {DType::Bool, b.apply(OpCode::Gt, DType::Bool, x, b.constant(DType::Float32, 0)),
       b.add(b.mul(j, b.iconst(h)), i), h * w},
  };
  const RefTensor in = random_tensor(DType::Float32, {h * w}, 6);
  std::vector<HostBuffer> out = run_kernel(k, {in});
  const RefTensor neg = out[0].to_ref(), pos = out[1].to_ref();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t z = 0; z < w; ++z) {
      ASSERT_EQ(neg.f[y * w + z], -in.f[y * w + z]);
      ASSERT_EQ(pos.i[z * h + y], in.f[y * w + z] > 0 ? 1 : 0);
    }
  }
}

// ---- in-place outputs -------------------------------------------------------------------------

Kernel reduce_kernel(ReduceOp op, DType t, const ir::Shape& shape, const std::vector<int64_t>& axes,
                     bool all_outer_to_zero);

// m' = 0.9 m + g and p' = p - 0.1 m' (SGD momentum's update) over [h, w], as one kernel with
// inputs p, m, g and outputs m', p'.
Kernel momentum_kernel(int64_t h, int64_t w) {
  Kernel k;
  k.name = "momentum";
  k.domain = {h, w};
  k.num_outer = 2;
  k.inputs = {{DType::Float32, h * w}, {DType::Float32, h * w}, {DType::Float32, h * w}};
  KernelBuilder b(k);
  const int32_t at = b.add(b.mul(b.loop_var(0), b.iconst(w)), b.loop_var(1));
  const int32_t m =
      b.apply(OpCode::Add, DType::Float32,
              b.apply(OpCode::Mul, DType::Float32, b.load(1, at), b.constant(DType::Float32, 0.9)),
              b.load(2, at));
  const int32_t p =
      b.apply(OpCode::Sub, DType::Float32, b.load(0, at),
              b.apply(OpCode::Mul, DType::Float32, m, b.constant(DType::Float32, 0.1)));
  k.outputs = {{DType::Float32, m, at, h * w}, {DType::Float32, p, at, h * w}};
  return k;
}

// Outputs computed in the memory of their inputs (the executor passes the same buffer for both)
// give what separate buffers give, over a range split into uneven chunks. The separate kernel is
// compiled first: the in-place one must not be taken for it (their symbols differ).
TEST(EmitKernel, InPlaceOutputsReadTheirInputBeforeWritingIt) {
  const int64_t h = 9, w = 67;
  const Kernel separate = momentum_kernel(h, w);
  Kernel in_place = momentum_kernel(h, w);
  in_place.in_place = {{1, 0}, {0, 1}};  // m' in m's memory, p' in p's
  ASSERT_TRUE(check_kernel(in_place).ok()) << check_kernel(in_place);
  EXPECT_NE(separate.hash(), in_place.hash());
  EXPECT_NE(kernel_symbol(separate), kernel_symbol(in_place)) << "one would run the other's code";
  EXPECT_NE(in_place.to_string().find("out1 in place of in0"), std::string::npos);

  const RefTensor p = random_tensor(DType::Float32, {h * w}, 21);
  const RefTensor m = random_tensor(DType::Float32, {h * w}, 22);
  const RefTensor g = random_tensor(DType::Float32, {h * w}, 23);
  std::vector<HostBuffer> want = run_kernel(separate, {p, m, g});

  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(in_place, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer pb = HostBuffer::from(p), mb = HostBuffer::from(m), gb = HostBuffer::from(g);
  // The inputs' own pointers are not read: poison them to be sure.
  HostBuffer poison(DType::Float32, h * w);
  const int64_t extent = parallel_extent(in_place);
  for (int64_t begin = 0; begin < extent; begin += 5) {
    testing::call(*fn, {&poison, &poison, &gb}, {&mb, &pb}, begin, std::min(begin + 5, extent));
  }
  const RefTensor got_m = mb.to_ref(), got_p = pb.to_ref();
  const RefTensor want_m = want[0].to_ref(), want_p = want[1].to_ref();
  for (int64_t i = 0; i < h * w; ++i) {
    ASSERT_EQ(got_m.f[i], want_m.f[i]) << i;
    ASSERT_EQ(got_p.f[i], want_p.f[i]) << i;
  }
}

TEST(EmitKernel, InPlaceNeedsLoadsAtTheOutputsIndex) {
  const int64_t h = 4, w = 6;
  Kernel k = momentum_kernel(h, w);
  EXPECT_TRUE(can_compute_in_place(k, 0, 1));
  EXPECT_TRUE(can_compute_in_place(k, 2, 0));
  EXPECT_FALSE(can_compute_in_place(k, 3, 0)) << "no such input";
  EXPECT_FALSE(can_compute_in_place(k, 0, 2)) << "no such output";

  // A transposed read of the input: point (i, j) reads what point (j, i) writes.
  Kernel t;
  t.name = "transpose";
  t.domain = {h, h};
  t.num_outer = 2;
  t.inputs = {{DType::Float32, h * h}};
  KernelBuilder b(t);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  t.outputs = {{DType::Float32,
                b.apply(OpCode::Neg, DType::Float32, b.load(0, b.add(b.mul(j, b.iconst(h)), i))),
                b.add(b.mul(i, b.iconst(h)), j), h * h}};
  EXPECT_FALSE(can_compute_in_place(t, 0, 0));
  t.in_place = {{0, 0}};
  EXPECT_FALSE(check_kernel(t).ok());

  // Another dtype, and a reduction.
  Kernel c = momentum_kernel(h, w);
  c.inputs[0].dtype = DType::Float64;
  EXPECT_FALSE(can_compute_in_place(c, 0, 1));
  Kernel r = reduce_kernel(ReduceOp::kSum, DType::Float32, {h, w}, {1}, false);
  EXPECT_FALSE(can_compute_in_place(r, 0, 0));

  // One input or output in two pairs.
  k.in_place = {{0, 1}, {0, 0}};
  EXPECT_FALSE(check_kernel(k).ok());
}

// ---- reductions -------------------------------------------------------------------------------

// A reduction of an input of `shape` over `axes` (sorted), as lowering lays it out: the kept
// axes first (outer), then the reduced ones; the output is row-major over the kept axes.
// `epilogue` (may be null) maps acc to the stored value.
Kernel reduce_kernel(ReduceOp op, DType t, const ir::Shape& shape, const std::vector<int64_t>& axes,
                     bool all_outer_to_zero = false) {
  const int rank = static_cast<int>(shape.size());
  std::vector<int> kept, reduced;
  for (int d = 0; d < rank; ++d) {
    (std::find(axes.begin(), axes.end(), d) != axes.end() ? reduced : kept).push_back(d);
  }
  Kernel k;
  k.name = "reduce";
  for (int d : kept) k.domain.push_back(shape[d]);
  for (int d : reduced) k.domain.push_back(shape[d]);
  k.num_outer = static_cast<int>(kept.size());
  k.reduce = op;
  const bool arg = op == ReduceOp::kArgMax || op == ReduceOp::kArgMin;
  k.reduce_dtype = arg ? DType::Int64 : t;
  k.inputs = {{t, ir::numel(shape)}};
  KernelBuilder b(k);
  // Input index: sum over dims of loopvar(position of d in the domain) * stride(d).
  std::vector<int> axis_of(rank);
  for (size_t p = 0; p < kept.size(); ++p) axis_of[kept[p]] = static_cast<int>(p);
  for (size_t p = 0; p < reduced.size(); ++p)
    axis_of[reduced[p]] = static_cast<int>(kept.size() + p);
  int32_t src = b.iconst(0);
  int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    src = b.add(src, b.mul(b.loop_var(axis_of[d]), b.iconst(stride)));
    stride *= shape[d];
  }
  int32_t dst = b.iconst(0);
  int64_t out_numel = 1;
  if (!all_outer_to_zero) {
    for (int p = static_cast<int>(kept.size()) - 1; p >= 0; --p) {
      dst = b.add(dst, b.mul(b.loop_var(p), b.iconst(out_numel)));
      out_numel *= shape[kept[p]];
    }
  }
  k.reduce_value = b.load(0, src);
  k.outputs = {{k.reduce_dtype, b.acc(), dst, out_numel}};
  return k;
}

OpCode reduce_opcode(ReduceOp r) {
  switch (r) {
    case ReduceOp::kSum:
      return OpCode::Sum;
    case ReduceOp::kProd:
      return OpCode::Prod;
    case ReduceOp::kMax:
      return OpCode::Max;
    case ReduceOp::kMin:
      return OpCode::Min;
    case ReduceOp::kArgMax:
      return OpCode::ArgMax;
    case ReduceOp::kArgMin:
      return OpCode::ArgMin;
    default:
      return OpCode::Sum;
  }
}

RefTensor reference_reduce(ReduceOp r, const RefTensor& x, const std::vector<int64_t>& axes) {
  const OpCode op = reduce_opcode(r);
  const bool arg = r == ReduceOp::kArgMax || r == ReduceOp::kArgMin;
  ir::Attrs attrs = arg ? ir::Attrs{{"axis", axes[0]}, {"keepdim", false}}
                        : ir::Attrs{{"axes", ir::IntList(axes)}, {"keepdim", false}};
  const std::vector<const RefTensor*> in = {&x};
  absl::StatusOr<ir::TypeInfo> type = ir::op_def(op).infer({ir::TypeInfo{x.dtype, x.shape}}, attrs);
  EXPECT_TRUE(type.ok()) << type.status();
  absl::StatusOr<RefTensor> out = ir::op_def(op).ref_eval(in, attrs, *type);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

void expect_reduction(ReduceOp r, DType t, const ir::Shape& shape, const std::vector<int64_t>& axes,
                      const RefTensor& x) {
  const Kernel k = reduce_kernel(r, t, shape, axes);
  const RefTensor want = reference_reduce(r, x, axes);
  const RefTensor got = run_kernel(k, {x})[0].to_ref();
  ASSERT_EQ(got.numel(), want.numel());
  for (int64_t j = 0; j < got.numel(); ++j) {
    std::string where = absl::StrCat("reduce ", static_cast<int>(r), " ", dtype_name(t), " of ",
                                     ir::numel(shape), " at ", j);
    if (!got.floating()) {
      ASSERT_EQ(got.i[j], want.i[j]) << where;
    } else if (std::isnan(want.f[j])) {
      ASSERT_TRUE(std::isnan(got.f[j])) << where << ": " << got.f[j];
    } else if (std::isinf(want.f[j])) {
      ASSERT_EQ(got.f[j], want.f[j]) << where;
    } else if (r == ReduceOp::kSum || r == ReduceOp::kProd) {
      // The kernel accumulates in the dtype, in vector order; the reference in double.
      const double tol = (t == DType::Float32 ? 2e-5 : 1e-12) * (1 + std::fabs(want.f[j]));
      ASSERT_NEAR(got.f[j], want.f[j], tol) << where;
    } else {
      ASSERT_EQ(got.f[j], want.f[j]) << where;
    }
  }
}

TEST(EmitKernel, ReductionsOverEachAxisLayout) {
  const ir::Shape shape = {6, 37, 5};
  const std::vector<std::vector<int64_t>> axis_sets = {{2}, {1}, {0}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (ReduceOp r : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin}) {
    for (DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64}) {
      // Products of many values near 1 stay finite; integer values in -3..3 wrap for prod.
      const RefTensor x = random_tensor(t, shape, 10 + static_cast<int>(t),
                                        r == ReduceOp::kProd && is_floating(t) ? 0.9 : -3,
                                        r == ReduceOp::kProd && is_floating(t) ? 1.1 : 4);
      for (const auto& axes : axis_sets) expect_reduction(r, t, shape, axes, x);
    }
  }
}

TEST(EmitKernel, BoolMaxMinAreAnyAll) {
  const ir::Shape shape = {9, 17};
  RefTensor x = RefTensor::zeros(DType::Bool, shape);
  for (int64_t j = 0; j < x.numel(); ++j) x.i[j] = (j / 17) % 3 == 0 ? 1 : (j % 17 == (j / 17));
  for (ReduceOp r : {ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kArgMax, ReduceOp::kArgMin}) {
    expect_reduction(r, DType::Bool, shape, {1}, x);
    expect_reduction(r, DType::Bool, shape, {0}, x);
  }
}

TEST(EmitKernel, MaxMinPropagateNaN) {
  const ir::Shape shape = {4, 9};
  RefTensor x =
      ref(DType::Float32, {1,     2,     3,     4,     5,     6,     7,     8,     9,     // no NaN
                           kNaN,  2,     3,     4,     5,     6,     7,     8,     9,     // first
                           1,     2,     3,     4,     5,     6,     7,     8,     kNaN,  // last
                           -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf});
  x.shape = shape;
  for (ReduceOp r : {ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kSum, ReduceOp::kProd}) {
    expect_reduction(r, DType::Float32, shape, {1}, x);
  }
}

TEST(EmitKernel, ArgMaxArgMinTiesAndNaN) {
  const ir::Shape shape = {7, 5};
  RefTensor x =
      ref(DType::Float64,
          {1,     3,     3,     2,     0,  // ties: the first wins
           kNaN,  5,     kNaN,  9,     9,  // NaN counts as the extreme: its first position
           1,     kNaN,  7,     -1,    7,
           -kInf, -kInf, -kInf, -kInf, -kInf,  // all equal to the identity: position 0
           kInf,  kInf,  0,     -kInf, -kInf,
           -0.0,  0.0,   -0.0,  0.0,   0.0,  // -0 == 0: ties
           4,     3,     2,     1,     0});
  x.shape = shape;
  for (ReduceOp r : {ReduceOp::kArgMax, ReduceOp::kArgMin}) {
    expect_reduction(r, DType::Float64, shape, {1}, x);
    expect_reduction(r, DType::Float64, shape, {0}, x);
  }
  RefTensor xi = ref_int(DType::Int32, {5, 5, 1, -3, -3, 2, 2147483647, -2147483647 - 1, 0,
                                        2147483647, -2147483647 - 1, 7, 7, 7, 7});
  xi.shape = {3, 5};
  for (ReduceOp r : {ReduceOp::kArgMax, ReduceOp::kArgMin}) {
    expect_reduction(r, DType::Int32, xi.shape, {1}, xi);
    expect_reduction(r, DType::Int32, xi.shape, {0}, xi);
  }
}

// A full reduction (num_outer == 0) and its range convention; sums long enough to vectorize.
TEST(EmitKernel, FullReduction) {
  const ir::Shape shape = {1003};
  const RefTensor x = random_tensor(DType::Float32, shape, 7);
  for (ReduceOp r : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kArgMax}) {
    expect_reduction(r, DType::Float32, shape, {0}, x);
  }
  const Kernel k = reduce_kernel(ReduceOp::kSum, DType::Float32, shape, {0});
  EXPECT_EQ(k.num_outer, 0);
  EXPECT_EQ(parallel_extent(k), 1);
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer in = HostBuffer::from(x), out(DType::Float32, 1);
  testing::call(*fn, {&in}, {&out}, 0, 0);
  EXPECT_TRUE(out.untouched(0));
}

// Full reductions of at least 2^15 points are split into parts (kernel ABI, emit_kernel.h):
// every op and dtype, sizes around the threshold and not dividing the part count, and a 2-d
// domain whose parts start and end inside rows.
TEST(EmitKernel, SplitFullReductions) {
  const std::vector<ir::Shape> shapes = {{7}, {32767}, {32768}, {(1 << 20) + 3}, {1027, 1031}};
  for (const ir::Shape& shape : shapes) {
    const bool flat = shape.size() == 1;
    const std::vector<int64_t> all = flat ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 1};
    const int64_t n = ir::numel(shape);
    const Kernel probe = reduce_kernel(ReduceOp::kSum, DType::Float32, shape, all);
    EXPECT_EQ(parallel_extent(probe) > 1, n >= 32768) << n;
    EXPECT_EQ(kernel_scratch_bytes(probe) > 0, n >= 32768) << n;
    for (ReduceOp r : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin,
                       ReduceOp::kArgMax, ReduceOp::kArgMin}) {
      for (DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::Bool}) {
        if (t == DType::Bool && (r == ReduceOp::kSum || r == ReduceOp::kProd)) continue;
        RefTensor x = random_tensor(t, shape, 40 + static_cast<int>(t), -3, 4);
        if (r == ReduceOp::kProd) {
          // +-1: the product is exact in every dtype, so only a lost or repeated part shows.
          for (int64_t j = 0; j < n; ++j) {
            if (is_floating(t)) {
              x.f[j] = x.f[j] < 0.5 ? -1 : 1;
            } else {
              x.i[j] = x.i[j] < 0 ? -1 : 1;
            }
          }
        }
        const bool arg = r == ReduceOp::kArgMax || r == ReduceOp::kArgMin;
        if (flat || !arg) {
          expect_reduction(r, t, shape, all, x);
          continue;
        }
        // argmax/argmin over every axis of a 2-d input: the row-major position, as in 1-d.
        RefTensor x1 = x;
        x1.shape = {n};
        const RefTensor want = reference_reduce(r, x1, {0});
        const RefTensor got = run_kernel(reduce_kernel(r, t, shape, all), {x})[0].to_ref();
        EXPECT_EQ(got.i[0], want.i[0]) << static_cast<int>(r) << " " << dtype_name(t);
      }
    }
  }
}

// Reductions with a few outputs and long rows are split too (outputs x parts), so [3, 100000]
// summed over its rows is not 3 chunks; more than 8 outputs are not.
TEST(EmitKernel, SplitReductionsWithFewOutputs) {
  const Kernel rows3 = reduce_kernel(ReduceOp::kSum, DType::Float32, {3, 100000}, {1});
  EXPECT_EQ(parallel_extent(rows3), 3 * 6);
  EXPECT_EQ(parallel_axes(rows3), 0);
  EXPECT_GT(kernel_scratch_bytes(rows3), 0);
  const Kernel rows9 = reduce_kernel(ReduceOp::kSum, DType::Float32, {9, 100000}, {1});
  EXPECT_EQ(parallel_extent(rows9), 9);
  EXPECT_EQ(kernel_scratch_bytes(rows9), 0);
  for (ReduceOp r :
       {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kArgMax, ReduceOp::kArgMin}) {
    for (DType t : {DType::Float32, DType::Float64, DType::Int32}) {
      expect_reduction(r, t, {3, 100003}, {1}, random_tensor(t, {3, 100003}, 20));
      // Kept axes around the reduced one, with an epilogue-free store at a strided index.
      expect_reduction(r, t, {2, 40001, 3}, {1}, random_tensor(t, {2, 40001, 3}, 21));
      expect_reduction(r, t, {2, 3, 40001}, {2}, random_tensor(t, {2, 3, 40001}, 22));
    }
  }
  // Range cuts that cross outputs give the same bits as one call.
  const RefTensor x = random_tensor(DType::Float32, {3, 100000}, 23);
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(rows3, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer in = HostBuffer::from(x);
  auto run = [&](const std::vector<std::pair<int64_t, int64_t>>& cuts) {
    HostBuffer out(DType::Float32, 3);
    std::vector<int64_t> scratch = testing::scratch_for(rows3);
    for (auto [b, e] : cuts) testing::call(*fn, {&in}, {&out}, b, e, scratch.data());
    for (int j = 0; j < 3; ++j) EXPECT_EQ(scratch[j], 0);
    return out.to_ref();
  };
  const RefTensor whole = run({{0, 18}});
  const RefTensor cut = run({{17, 18}, {0, 5}, {5, 13}, {13, 17}});
  for (int j = 0; j < 3; ++j) EXPECT_EQ(cut.f[j], whole.f[j]) << j;
}

// Ties, NaNs and identity values that fall in different parts resolve as in one pass.
TEST(EmitKernel, SplitArgMaxTiesAndNaNAcrossParts) {
  const int64_t n = (1 << 20) + 3;
  const ir::Shape shape = {n};
  RefTensor ties = random_tensor(DType::Float32, shape, 9);
  ties.f[100] = ties.f[900000] = 5;  // max: the first wins
  ties.f[300] = ties.f[n - 1] = -5;  // min: likewise
  RefTensor nans = random_tensor(DType::Float64, shape, 10);
  nans.f[500000] = nans.f[700000] = nans.f[n - 1] = kNaN;
  RefTensor low = RefTensor::zeros(DType::Float32, shape);
  for (int64_t j = 0; j < n; ++j) low.f[j] = -kInf;  // all equal to the identity: position 0
  for (ReduceOp r : {ReduceOp::kArgMax, ReduceOp::kArgMin, ReduceOp::kMax, ReduceOp::kMin}) {
    expect_reduction(r, DType::Float32, shape, {0}, ties);
    expect_reduction(r, DType::Float64, shape, {0}, nans);
    expect_reduction(r, DType::Float32, shape, {0}, low);
  }
}

// A split reduction gives the same bits however its range is cut and whichever call finishes
// last: the parts are fixed by the kernel and combined in order.
TEST(EmitKernel, SplitReductionIsDeterministic) {
  const ir::Shape shape = {(1 << 20) + 3};
  const RefTensor x = random_tensor(DType::Float32, shape, 11);
  const Kernel k = reduce_kernel(ReduceOp::kSum, DType::Float32, shape, {0});
  const int64_t parts = parallel_extent(k);
  ASSERT_GT(parts, 8);
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer in = HostBuffer::from(x);
  auto run = [&](const std::vector<std::pair<int64_t, int64_t>>& cuts) {
    HostBuffer out(DType::Float32, 1);
    std::vector<int64_t> scratch = testing::scratch_for(k);
    for (size_t c = 0; c < cuts.size(); ++c) {
      // Only the call that completes the last part stores.
      if (c + 1 < cuts.size()) EXPECT_TRUE(out.untouched(0));
      testing::call(*fn, {&in}, {&out}, cuts[c].first, cuts[c].second, scratch.data());
    }
    EXPECT_EQ(scratch[0], 0) << "the counter is reset for the next run";
    return out.to_ref().f[0];
  };
  const double whole = run({{0, parts}});
  EXPECT_EQ(run({{0, 1}, {1, 7}, {7, 7}, {7, parts}}), whole);
  EXPECT_EQ(run({{parts - 1, parts}, {3, parts - 1}, {0, 3}}), whole);  // any order
  runtime::ThreadPool pool(3);
  HostBuffer out(DType::Float32, 1);
  std::vector<int64_t> scratch = testing::scratch_for(k);
  std::vector<void*> ptrs = {in.data(), out.data(), scratch.data()};
  pool.parallel_for(parts, 1, [&](int64_t b, int64_t e) { (*fn)(ptrs.data(), b, e); });
  EXPECT_EQ(out.to_ref().f[0], whole);
  const RefTensor want = reference_reduce(ReduceOp::kSum, x, {0});
  EXPECT_NEAR(whole, want.f[0], 1e-4 * (1 + std::fabs(want.f[0])));
}

// A [2, 1M] domain: both axes are flattened into the range, so it splits into many chunks.
TEST(EmitKernel, SmallLeadingAxesAreFlattened) {
  const int64_t h = 2, w = (1 << 20) + 5;
  Kernel k;
  k.name = "scale2d";
  k.domain = {h, w};
  k.num_outer = 2;
  k.inputs = {{DType::Float32, h * w}};
  KernelBuilder b(k);
  const int32_t idx = b.add(b.mul(b.loop_var(0), b.iconst(w)), b.loop_var(1));
  k.outputs = {{DType::Float32,
                b.apply(OpCode::Mul, DType::Float32, b.load(0, idx), b.constant(DType::Float32, 3)),
                idx, h * w}};
  EXPECT_EQ(parallel_extent(k), h * w);
  EXPECT_EQ(parallel_axes(k), 2);
  EXPECT_EQ(parallel_grain(k), kMinChunkPoints);
  const RefTensor x = random_tensor(DType::Float32, {h * w}, 12);
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer in = HostBuffer::from(x), out(DType::Float32, h * w);
  for (auto [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1}, {1, 1000}, {1000, w - 1}, {w - 1, w + 1}, {w + 1, w + 2}, {w + 2, h * w}}) {
    testing::call(*fn, {&in}, {&out}, begin, end);
  }
  const RefTensor got = out.to_ref();
  for (int64_t j = 0; j < h * w; ++j) ASSERT_EQ(got.f[j], static_cast<float>(x.f[j] * 3)) << j;
  // An outer-vectorized reduction keeps its tiled axis out of the range: a column sum over
  // [4, 64, 1000] (reduce axis 1, kept axes 0 and 2) flattens axis 0 alone.
  const Kernel cols = reduce_kernel(ReduceOp::kSum, DType::Float32, {4, 64, 1000}, {1});
  EXPECT_EQ(parallel_axes(cols), 1);
  expect_reduction(ReduceOp::kSum, DType::Float32, {4, 64, 1000}, {1},
                   random_tensor(DType::Float32, {4, 64, 1000}, 13));
  // A row reduction over [3, 5, 7000] (reduce axis 2): the 15 rows are the range.
  const Kernel rows = reduce_kernel(ReduceOp::kMax, DType::Float32, {3, 5, 7000}, {2});
  EXPECT_EQ(parallel_extent(rows), 15);
  expect_reduction(ReduceOp::kMax, DType::Float32, {3, 5, 7000}, {2},
                   random_tensor(DType::Float32, {3, 5, 7000}, 14));
}

// Reducing over an empty extent gives the identity: sum 0, prod 1 (max/min have none and the
// IR rejects them, but the kernel still writes its identity).
TEST(EmitKernel, EmptyReductionGivesIdentity) {
  for (auto [r, want] : std::vector<std::pair<ReduceOp, double>>{{ReduceOp::kSum, 0.0},
                                                                 {ReduceOp::kProd, 1.0},
                                                                 {ReduceOp::kMax, -kInf},
                                                                 {ReduceOp::kMin, kInf}}) {
    const Kernel k = reduce_kernel(r, DType::Float32, {3, 0}, {1});
    absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
    ASSERT_TRUE(fn.ok()) << fn.status();
    HostBuffer out(DType::Float32, 3);
    void* ptrs[] = {nullptr, out.data()};
    (*fn)(ptrs, 0, 3);
    const RefTensor got = out.to_ref();
    for (int j = 0; j < 3; ++j) EXPECT_EQ(got.f[j], want);
  }
}

// An epilogue over the accumulator and outer loop variables: mean and a per-row scale, with a
// second output that reads a broadcast input at the outer level only.
TEST(EmitKernel, ReductionEpilogue) {
  const int64_t rows = 5, cols = 131;
  Kernel k;
  k.name = "mean_scaled";
  k.domain = {rows, cols};
  k.num_outer = 1;
  k.reduce = ReduceOp::kSum;
  k.reduce_dtype = DType::Float64;
  k.inputs = {{DType::Float64, rows * cols}, {DType::Float64, rows}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t x = b.load(0, b.add(b.mul(i, b.iconst(cols)), j));
  k.reduce_value = b.apply(OpCode::Mul, DType::Float64, x, x);  // sum of squares
  const int32_t mean =
      b.apply(OpCode::Div, DType::Float64, b.acc(), b.constant(DType::Float64, cols));
  k.outputs = {{DType::Float64, b.apply(OpCode::Mul, DType::Float64, mean, b.load(1, i)), i, rows},
               {DType::Float32, b.apply(OpCode::Cast, DType::Float32, b.acc()), i, rows}};
  const RefTensor in = random_tensor(DType::Float64, {rows * cols}, 8);
  const RefTensor scale = ref(DType::Float64, {1, 2, 3, 4, 5});
  std::vector<HostBuffer> out = run_kernel(k, {in, scale});
  const RefTensor o0 = out[0].to_ref(), o1 = out[1].to_ref();
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += in.f[r * cols + c] * in.f[r * cols + c];
    EXPECT_NEAR(o0.f[r], s / cols * scale.f[r], 1e-12);
    EXPECT_NEAR(o1.f[r], s, 1e-5);
  }
}

TEST(EmitKernel, ReductionSplitRanges) {
  const ir::Shape shape = {23, 19};
  const RefTensor x = random_tensor(DType::Float32, shape, 9);
  const Kernel k = reduce_kernel(ReduceOp::kArgMin, DType::Float32, shape, {1});
  absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
  ASSERT_TRUE(fn.ok()) << fn.status();
  HostBuffer in = HostBuffer::from(x), out(DType::Int64, 23);
  for (int64_t begin = 0; begin < 23; begin += 4) {
    testing::call(*fn, {&in}, {&out}, begin, std::min<int64_t>(begin + 4, 23));
  }
  const RefTensor want = reference_reduce(ReduceOp::kArgMin, x, {1});
  const RefTensor got = out.to_ref();
  for (int64_t r = 0; r < 23; ++r) ASSERT_EQ(got.i[r], want.i[r]);
}

// Sums over the rows of a row-major matrix (axis 0): the reduced axis is strided, the kept one
// contiguous, so the code generator computes tiles of neighbouring outputs together. Split
// ranges that cut tiles anywhere; float sums equal the sequential float sum exactly (each
// output's order is kept); argmax and an epilogue with a broadcast operand work the same way.
TEST(EmitKernel, OuterVectorizedReduction) {
  const int64_t rows = 37, cols = 77;
  const RefTensor x = random_tensor(DType::Float32, {rows, cols}, 12);
  for (ReduceOp r : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kArgMax, ReduceOp::kArgMin}) {
    const Kernel k = reduce_kernel(r, DType::Float32, {rows, cols}, {0});
    ASSERT_EQ(k.num_outer, 1);
    absl::StatusOr<runtime::KernelFn> fn = jit_kernel(k, testing::test_jit());
    ASSERT_TRUE(fn.ok()) << fn.status();
    const DType out_dtype = k.outputs[0].dtype;
    HostBuffer in = HostBuffer::from(x), out(out_dtype, cols);
    for (auto [b, e] :
         std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {5, 40}, {40, 41}, {41, 77}}) {
      testing::call(*fn, {&in}, {&out}, b, e);
    }
    const RefTensor got = out.to_ref();
    const RefTensor want = reference_reduce(r, x, {0});
    for (int64_t c = 0; c < cols; ++c) {
      if (r == ReduceOp::kSum) {
        float s = 0;
        for (int64_t row = 0; row < rows; ++row) s += static_cast<float>(x.f[row * cols + c]);
        ASSERT_EQ(static_cast<float>(got.f[c]), s) << c;
      } else if (got.floating()) {
        ASSERT_EQ(got.f[c], want.f[c]) << c;
      } else {
        ASSERT_EQ(got.i[c], want.i[c]) << c;
      }
    }
  }
  // The optimized IR has vector loads in the reduction.
  const std::string ir =
      emit_llvm_text(reduce_kernel(ReduceOp::kSum, DType::Float32, {rows, cols}, {0}), true);
  EXPECT_NE(ir.find("load <"), std::string::npos) << ir;
}

// An outer-vectorized reduction whose tiled axis is not the split axis (o = 1), with an epilogue
// reading a per-output input and the outer loop variables: out[b, c] = sum_r x[b, r, c] * w[c].
TEST(EmitKernel, OuterVectorizedReductionInnerTileAndEpilogue) {
  const int64_t batch = 3, red = 11, cols = 45;
  Kernel k;
  k.name = "batched_colsum";
  k.domain = {batch, cols, red};
  k.num_outer = 2;
  k.reduce = ReduceOp::kSum;
  k.reduce_dtype = DType::Float64;
  k.inputs = {{DType::Float64, batch * red * cols}, {DType::Float64, cols}};
  KernelBuilder b(k);
  const int32_t bi = b.loop_var(0), c = b.loop_var(1), r = b.loop_var(2);
  k.reduce_value =
      b.load(0, b.add(b.add(b.mul(bi, b.iconst(red * cols)), b.mul(r, b.iconst(cols))), c));
  const int32_t dst = b.add(b.mul(bi, b.iconst(cols)), c);
  k.outputs = {{DType::Float64,
                b.apply(OpCode::Add, DType::Float64,
                        b.apply(OpCode::Mul, DType::Float64, b.acc(), b.load(1, c)),
                        b.apply(OpCode::Cast, DType::Float64, dst)),
                dst, batch * cols}};
  const RefTensor x = random_tensor(DType::Float64, {batch * red * cols}, 13);
  const RefTensor w = random_tensor(DType::Float64, {cols}, 14);
  const RefTensor got = run_kernel(k, {x, w})[0].to_ref();
  for (int64_t bb = 0; bb < batch; ++bb) {
    for (int64_t cc = 0; cc < cols; ++cc) {
      double s = 0;
      for (int64_t rr = 0; rr < red; ++rr) s += x.f[bb * red * cols + rr * cols + cc];
      ASSERT_EQ(got.f[bb * cols + cc], s * w.f[cc] + static_cast<double>(bb * cols + cc));
    }
  }
}

// ---- batches, symbols, errors -----------------------------------------------------------------

TEST(EmitKernel, BatchSharesIdenticalKernels) {
  const Kernel a = permute3d(3, 4, 5);
  Kernel a_renamed = a;
  a_renamed.name = "same_structure_other_name";
  const Kernel c = permute3d(5, 4, 3);
  EXPECT_EQ(kernel_symbol(a), kernel_symbol(a_renamed));
  EXPECT_NE(kernel_symbol(a), kernel_symbol(c));
  const Kernel* batch[] = {&a, &c, &a_renamed};
  absl::StatusOr<std::vector<runtime::KernelFn>> fns = jit_kernels(batch, testing::test_jit());
  ASSERT_TRUE(fns.ok()) << fns.status();
  ASSERT_EQ(fns->size(), 3u);
  EXPECT_EQ((*fns)[0], (*fns)[2]);
  EXPECT_NE((*fns)[0], (*fns)[1]);
  // The same set in another order is the same module: nothing new to compile.
  const int64_t compiles = testing::test_jit().stats().compiles;
  const Kernel* reordered[] = {&c, &a};
  absl::StatusOr<std::vector<runtime::KernelFn>> again =
      jit_kernels(reordered, testing::test_jit());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(testing::test_jit().stats().compiles, compiles);
  EXPECT_EQ((*again)[0], (*fns)[1]);
  EXPECT_EQ((*again)[1], (*fns)[0]);
  // And each function computes its own kernel.
  const RefTensor in = random_tensor(DType::Float32, {60}, 11);
  HostBuffer bin = HostBuffer::from(in), o1(DType::Float32, 60), o2(DType::Float32, 60);
  testing::call((*fns)[0], {&bin}, {&o1}, 0, 3);
  testing::call((*fns)[1], {&bin}, {&o2}, 0, 5);
  EXPECT_EQ(o1.to_ref().f[1], 2 * in.f[1 * 3 * 4 + 0]);  // out[0,0,1] = 2 * in[1,0,0]
  EXPECT_EQ(o2.to_ref().f[1], 2 * in.f[1 * 5 * 4 + 0]);
}

// neg of a Bool: the IR's type rule rejects it, and so does check_kernel.
Kernel map_like_neg_bool() {
  Kernel k;
  k.name = "neg_bool";
  k.domain = {4};
  k.num_outer = 1;
  k.inputs = {{DType::Bool, 4}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0);
  k.outputs = {{DType::Bool, b.apply(OpCode::Neg, DType::Bool, b.load(0, i)), i, 4}};
  return k;
}

TEST(EmitKernel, MalformedKernelsAreErrors) {
  auto expect_invalid = [](const Kernel& k, const std::string& fragment) {
    absl::Status s = check_kernel(k);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(std::string(s.message()).find(fragment), std::string::npos) << s;
    EXPECT_EQ(jit_kernel(k, testing::test_jit()).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_NE(emit_llvm_text(k).find("; error: "), std::string::npos);
  };
  {
    Kernel k = permute3d(2, 2, 2);
    k.exprs[k.outputs[0].value].a = 1000;
    expect_invalid(k, "not an earlier expression");
  }
  {
    Kernel k = map_like_neg_bool();
    expect_invalid(k, "no rule for bool");
  }
  {
    Kernel k = permute3d(2, 2, 2);
    k.outputs[0].dtype = DType::Int32;
    expect_invalid(k, "stores e");
  }
  {
    // An output that reads a reduced loop variable.
    Kernel k = reduce_kernel(ReduceOp::kSum, DType::Float32, {3, 4}, {1});
    KernelBuilder b(k);
    k.outputs[0].index = b.loop_var(1);
    expect_invalid(k, "reduced loop variable");
  }
  {
    Kernel k = reduce_kernel(ReduceOp::kArgMax, DType::Float32, {3, 4}, {1});
    k.reduce_dtype = DType::Float32;
    expect_invalid(k, "accumulator dtype");
  }
  {
    Kernel k = permute3d(2, 2, 2);
    k.num_outer = 1;
    expect_invalid(k, "num_outer");
  }
}

}  // namespace
}  // namespace smelt::compiler
