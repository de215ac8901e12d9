// execute() with donated inputs: an addmm accumulates in its addend's donated buffer (which
// becomes its output) and computes the same values as with a copy; a buffer that is not donated,
// read again later, or overlapped by a factor is copied; and when a later allocation fails, the
// donated buffer is still untouched (everything from the in-place call on is allocated first).
// A kernel with an in-place output (KernelCall::in_place) likewise computes in a donated input,
// or in a copy of it.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "runtime/memory_pool.h"
#include "runtime/program.h"

namespace smelt::runtime {
namespace {

base::BufferPtr filled(const std::vector<float>& v) {
  base::BufferPtr b = cpu_pool().allocate(v.size() * sizeof(float)).value();
  std::memcpy(b->data(), v.data(), v.size() * sizeof(float));
  return b;
}

std::vector<float> read(const base::BufferPtr& b) {
  std::vector<float> v(b->nbytes() / sizeof(float));
  std::memcpy(v.data(), b->data(), b->nbytes());
  return v;
}

MatrixOperand dense(int32_t value, int64_t cols) { return {value, 0, {}, cols, 1}; }

// One addmm, out = 2 a b + 0.5 addend, over dense row-major values.
Program one_addmm(std::vector<size_t> bytes, std::vector<int32_t> inputs, int32_t a, int32_t b,
                  int32_t addend, int32_t out, int64_t m, int64_t n, int64_t k) {
  Program p;
  p.value_bytes = std::move(bytes);
  p.inputs = std::move(inputs);
  p.outputs = {out};
  MatmulCall call;
  call.a = dense(a, k);
  call.b = dense(b, n);
  call.addend = addend;
  call.alpha = 2.0;
  call.beta = 0.5;
  call.out = out;
  call.m = m;
  call.n = n;
  call.k = k;
  p.calls.push_back(call);
  p.plan_lifetimes();
  return p;
}

// out (value 3) = 2 a b + 0.5 c for a [2, 3] (value 0), b [3, 2] (value 1), c [2, 2] (value 2).
Program addmm_program() {
  return one_addmm({6 * 4, 6 * 4, 4 * 4, 4 * 4}, {0, 1, 2}, 0, 1, 2, 3, 2, 2, 3);
}

const std::vector<float> kA = {1, 2, 3, 4, 5, 6}, kB = {7, 8, 9, 10, 11, 12}, kC = {2, -2, 4, -4};
// 2 * [[58, 64], [139, 154]] + 0.5 * c
const std::vector<float> kWant = {117, 127, 280, 306};

TEST(Executor, AddmmAccumulatesInADonatedAddend) {
  const Program p = addmm_program();
  base::BufferPtr c = filled(kC);
  const bool donated[] = {false, false, true};
  auto out = execute(p, {filled(kA), filled(kB), c}, donated);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0]->data(), c->data()) << "the output is the donated buffer";
  EXPECT_EQ(read((*out)[0]), kWant);
}

TEST(Executor, AddmmCopiesAnAddendThatIsNotDonated) {
  const Program p = addmm_program();
  base::BufferPtr c = filled(kC);
  auto out = execute(p, {filled(kA), filled(kB), c});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE((*out)[0]->data(), c->data());
  EXPECT_EQ(read((*out)[0]), kWant);
  EXPECT_EQ(read(c), kC);
}

TEST(Executor, AddmmCopiesADonatedAddendAFactorOverlaps) {
  // c * 0.5 + 2 c c, with the factor and the addend the same memory.
  const Program p = one_addmm({4 * 4, 4 * 4, 4 * 4}, {0, 1}, 0, 0, 1, 2, 2, 2, 2);
  base::BufferPtr c = filled(kC);
  const bool donated[] = {false, true};
  auto out = execute(p, {c, c}, donated);  // two inputs, one buffer
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE((*out)[0]->data(), c->data());
  // c c = [[2*2 + -2*4, 2*-2 + -2*-4], [4*2 + -4*4, 4*-2 + -4*-4]] = [[-4, 4], [-8, 8]].
  EXPECT_EQ(read((*out)[0]), (std::vector<float>{-7, 7, -14, 14}));
  EXPECT_EQ(read(c), kC);
}

TEST(Executor, NoInPlaceAccumulationBeforeACallThatMayFailWhileRunning) {
  // A window op (here a 2x2 max pool) allocates its own workspace while it runs, so it could
  // fail after the donated buffer changed: the addmm before it copies instead.
  Program p = addmm_program();
  p.value_bytes.push_back(4 * 4);  // value 4: an input image [1, 1, 2, 2]
  p.value_bytes.push_back(4);      // value 5: its pooled [1, 1, 1, 1]
  p.inputs.push_back(4);
  p.outputs.push_back(5);
  WindowCall pool;
  pool.op = WindowCall::Op::kPool;
  pool.a = 4;
  pool.out = 5;
  pool.batch = pool.channels = pool.out_channels = 1;
  pool.in_h = pool.in_w = pool.kernel_h = pool.kernel_w = pool.stride_h = pool.stride_w = 2;
  pool.out_h = pool.out_w = 1;
  p.calls.push_back(pool);
  p.plan_lifetimes();
  base::BufferPtr c = filled(kC);
  const bool donated[] = {false, false, true, false};
  auto out = execute(p, {filled(kA), filled(kB), c, filled({1, 4, 2, 3})}, donated);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE((*out)[0]->data(), c->data());
  EXPECT_EQ(read((*out)[0]), kWant);
  EXPECT_EQ(read(c), kC);
  EXPECT_EQ(read((*out)[1]), (std::vector<float>{4}));
}

TEST(Executor, AFailedAllocationAfterTheInPlaceCallLeavesTheDonatedBufferIntact) {
  // out = 2 a b + 0.5 c in place, then big = a^T out-like product of 64 MiB that cannot fit.
  Program p = addmm_program();
  const int64_t big = 4096;
  p.value_bytes.push_back(static_cast<size_t>(big * big * 4));  // value 4
  p.value_bytes.push_back(static_cast<size_t>(big * 4));        // value 5: an input [4096, 1]
  p.inputs.push_back(5);
  p.outputs.push_back(4);
  MatmulCall outer;  // [4096, 1] x [1, 4096]: reads value 5 twice
  outer.a = dense(5, 1);
  outer.b = {5, 0, {}, big, 1};  // the same values as a row vector
  outer.out = 4;
  outer.m = outer.n = big;
  outer.k = 1;
  p.calls.push_back(outer);
  p.plan_lifetimes();

  CpuMemoryPool& pool = cpu_pool();
  const std::optional<size_t> old_limit = pool.limit();
  base::BufferPtr c = filled(kC);
  base::BufferPtr v = filled(std::vector<float>(big, 1.0f));
  // Without emptying the cache first, a free block left by an earlier test in the same process
  // (the GPU bundle runs every suite in one) could serve the product and nothing would fail.
  pool.empty_cache();
  pool.set_limit(pool.stats().reserved_bytes + (1u << 20));
  const bool donated[] = {false, false, true, false};
  auto out = execute(p, {filled(kA), filled(kB), c, v}, donated);
  pool.set_limit(old_limit);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_EQ(read(c), kC) << "the donated buffer changed before the failure";
}

// An in-place kernel as the code generator emits one (Kernel::in_place): out = 2 x + y, with x
// read through the output's pointer (args: x, y, out).
void twice_plus(void* const* args, int64_t begin, int64_t end) {
  auto* out = static_cast<float*>(args[2]);
  const auto* y = static_cast<const float*>(args[1]);
  for (int64_t i = begin; i < end; ++i) out[i] = 2 * out[i] + y[i];
}

// out (value 2) = 2 x (value 0) + y (value 1), in x's memory when x is donated.
Program in_place_kernel_program() {
  Program p;
  p.value_bytes = {4 * 4, 4 * 4, 4 * 4};
  p.inputs = {0, 1};
  p.outputs = {2};
  KernelCall k;
  k.fn = twice_plus;
  k.args = {0, 1, 2};
  k.parallel_extent = 4;
  k.grain = 4;
  k.in_place = {{0, 2}};
  k.name = "twice_plus";
  p.calls.push_back(k);
  p.plan_lifetimes();
  return p;
}

const std::vector<float> kX = {1, 2, 3, 4}, kY = {10, 20, 30, 40}, kTwicePlus = {12, 24, 36, 48};

TEST(Executor, KernelComputesInADonatedInput) {
  const Program p = in_place_kernel_program();
  base::BufferPtr x = filled(kX);
  const bool donated[] = {true, false};
  auto out = execute(p, {x, filled(kY)}, donated);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0]->data(), x->data()) << "the output is the donated buffer";
  EXPECT_EQ(read((*out)[0]), kTwicePlus);
}

TEST(Executor, InPlaceKernelGetsACopyOfAnInputThatIsNotDonated) {
  const Program p = in_place_kernel_program();
  base::BufferPtr x = filled(kX);
  auto out = execute(p, {x, filled(kY)});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE((*out)[0]->data(), x->data());
  EXPECT_EQ(read((*out)[0]), kTwicePlus);
  EXPECT_EQ(read(x), kX);
}

TEST(Executor, InPlaceKernelCopiesWhenAViewOfTheInputIsReadLater) {
  // y is the same memory as x (a view of it), read again by a later call: x must stay.
  Program p = in_place_kernel_program();
  p.value_bytes.push_back(4 * 4);  // value 3 = 2 y + y, after the first call
  p.outputs.push_back(3);
  KernelCall again;
  again.fn = twice_plus;
  again.args = {1, 1, 3};
  again.parallel_extent = 4;
  again.grain = 4;
  again.name = "again";
  p.calls.push_back(again);
  p.plan_lifetimes();
  base::BufferPtr x = filled(kX);
  const bool donated[] = {true, false};
  auto out = execute(p, {x, x}, donated);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE((*out)[0]->data(), x->data());
  EXPECT_EQ(read((*out)[0]), (std::vector<float>{3, 6, 9, 12}));
  EXPECT_EQ(read(x), kX);
}

}  // namespace
}  // namespace smelt::runtime
