// The CUDA code generator: every kind of kernel it writes compiles with NVRTC (no GPU needed, so
// this runs in every CI build), and the plans it picks are the intended ones.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "compiler/codegen/cuda/emit_cuda.h"
#include "compiler/lower.h"
#include "compiler/passes/fuse.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/node.h"
#include "runtime/conv.h"
#include "runtime/cuda_api.h"
#include "runtime/scan.h"

namespace smelt {
namespace {

using compiler::CudaKernel;
using compiler::CudaStrategy;

// A tensor of `shape` with no data: graphs over it lower and compile, never run (so shapes may
// be far larger than this machine's memory).
Tensor input(std::vector<int64_t> shape, DType dtype = DType::Float32) {
  return detail::wrap(ir::Node::make_input(dtype, ir::Shape(shape.begin(), shape.end()), nullptr));
}

// The kernels of `t`'s pending graph, emitted as CUDA.
std::vector<CudaKernel> cuda_kernels(const Tensor& t, std::vector<compiler::Kernel>* ir = nullptr) {
  ir::Graph g{{t.impl()->node()}};
  absl::StatusOr<compiler::LoweredProgram> lowered = compiler::lower(g, compiler::fuse(g));
  EXPECT_TRUE(lowered.ok()) << lowered.status();
  std::vector<CudaKernel> out;
  if (!lowered.ok()) return out;
  for (const compiler::Step& step : lowered->steps) {
    const auto* ks = std::get_if<compiler::KernelStep>(&step);
    if (ks == nullptr) continue;
    absl::StatusOr<CudaKernel> ck = compiler::emit_cuda(ks->kernel);
    EXPECT_TRUE(ck.ok()) << ck.status();
    if (!ck.ok()) continue;
    out.push_back(*std::move(ck));
    if (ir != nullptr) ir->push_back(ks->kernel);
  }
  return out;
}

// Compiles kernels with NVRTC into one image, as the compiler does.
void expect_compiles(const std::vector<CudaKernel>& kernels, const std::string& what) {
  std::string source = compiler::cuda_prelude();
  std::set<std::string> seen;
  for (const CudaKernel& k : kernels) {
    if (seen.insert(k.symbol).second) absl::StrAppend(&source, "\n", k.code);
  }
  absl::StatusOr<runtime::cuda::CompiledImage> image = runtime::cuda::nvrtc_compile(source, what);
  ASSERT_TRUE(image.ok()) << what << ": " << image.status() << "\n" << source;
  EXPECT_FALSE(image->image.empty()) << what;
}

struct Case {
  std::string name;
  std::function<Tensor()> build;
};

std::vector<Case> kernel_kinds() {
  std::vector<Case> cases;
  auto add = [&](std::string name, std::function<Tensor()> f) {
    cases.push_back({std::move(name), std::move(f)});
  };
  // Elementwise: the vector path with and without a tail, strided (transposed, broadcast) reads.
  add("chain", [] {
    Tensor x = input({1024, 1024}), y = input({1024, 1024});
    return tanh(x * 0.5f + y) * sigmoid(x) + exp(-x * x);
  });
  add("tail", [] { return sqrt(abs(input({1001}))) + 1.f; });
  add("transposed", [] { return input({64, 48}).t() + input({48, 64}); });
  add("broadcast", [] { return input({128, 256}) + input({256}) * input({128, 1}); });
  for (DType t : {DType::Float32, DType::Float64}) {
    add(absl::StrCat("unary_", dtype_name(t)), [t] {
      Tensor x = input({300}, t);
      return exp(x) + log(x) + sqrt(x) + rsqrt(x) + tanh(x) + sigmoid(x) + relu(x) + sin(x) +
             cos(x) + abs(x) + sign(x) + pow(x, x) + maximum(x, -x) + minimum(x, x * 2.0) +
             where(x > 0.0, x, -x) + clamp(x, -1.0, 1.0) + x / (x + 1.0) + floor(x) + ceil(x) +
             round(x) + trunc(x);
    });
  }
  for (DType t : {DType::Int32, DType::Int64}) {
    add(absl::StrCat("integer_", dtype_name(t)), [t] {
      Tensor x = input({77}, t), y = input({77}, t);
      return (x + y) * (x - y) + abs(-x) + maximum(x, y) + minimum(x, y) + relu(x) + sign(y) +
             where(x > y, x, y);
    });
  }
  add("casts_and_logic", [] {
    Tensor f = input({50}), d = input({50}, DType::Float64), i = input({50}, DType::Int32);
    Tensor l = input({50}, DType::Int64), b = input({50}, DType::Bool);
    Tensor mask = logical_or(logical_or(logical_and(b, f > 0.f), logical_not(d < 1.0)),
                             i == l.to(DType::Int32));
    return where(mask, f.to(DType::Int64).to(DType::Float32), d.to(DType::Float32)) +
           b.to(DType::Float32) + i.to(DType::Float32) + l.to(DType::Float32);
  });
  add("bool_output", [] { return input({64}) > input({64}); });
  add("pad_and_concat", [] {
    Tensor x = input({8, 6});
    return cat({x, x * 2.f, x.slice(1, 1, 5, 2)}, 1) + 1.f;
  });
  add("scalar", [] { return input({}) * 3.f + 1.f; });
  // Reductions, each strategy, each reduce op.
  add("row_sum_small", [] { return input({4096, 10}).sum(1); });   // thread/output
  add("row_sum_block", [] { return input({512, 4096}).sum(1); });  // block/output
  add("full_sum_split", [] { return input({1 << 22}).sum(); });    // split
  add("column_sum", [] { return input({4096, 300}).sum(0); });     // column
  add("column_argmax", [] { return input({4096, 300}).argmax(0); });
  add("softmax", [] { return softmax(input({128, 1000}), 1); });
  add("mean_var", [] { return input({64, 33, 17}).var(1) + input({64, 17}).mean(0); });
  add("max_min_prod", [] {
    Tensor x = input({100, 700});
    return x.max(1) + x.min(1) + x.prod(1);
  });
  add("argmax_block", [] { return input({64, 5000}).argmax(1); });
  add("argmin_split", [] { return input({4, 1 << 20}).argmin(1); });
  add("argmax_thread", [] { return input({1000, 7}, DType::Float64).argmax(1); });
  add("int_reductions", [] {
    Tensor x = input({300, 40}, DType::Int32);
    return x.sum(1) + x.max(1) + x.min(1);
  });
  add("bool_any", [] { return (input({1 << 21}) > 0.f).sum(); });
  add("split_double", [] { return input({1 << 21}, DType::Float64).max(); });
  add("index64", [] {
    Tensor x = input({3, int64_t{1} << 30});
    return exp(x) * 2.f;
  });
  add("index64_reduction", [] { return input({2, int64_t{1} << 30}).sum(1); });
  return cases;
}

TEST(CudaCodegen, EveryKernelKindCompilesWithNvrtc) {
  if (!runtime::cuda::built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  std::set<CudaStrategy> strategies;
  bool vectorized = false, scalar = false, index32 = false, index64 = false;
  for (const Case& c : kernel_kinds()) {
    SCOPED_TRACE(c.name);
    const std::vector<CudaKernel> kernels = cuda_kernels(c.build());
    ASSERT_FALSE(kernels.empty()) << c.name;
    for (const CudaKernel& k : kernels) {
      strategies.insert(k.strategy);
      if (k.strategy == CudaStrategy::kElementwise) {
        (k.vector_width > 1 ? vectorized : scalar) = true;
      }
      (k.index64 ? index64 : index32) = true;
    }
    expect_compiles(kernels, c.name);
  }
  // Every strategy of plain kernels (row kernels are built by hand below).
  for (CudaStrategy want :
       {CudaStrategy::kElementwise, CudaStrategy::kThreadPerOutput, CudaStrategy::kBlockPerOutput,
        CudaStrategy::kSplit, CudaStrategy::kColumn}) {
    EXPECT_TRUE(strategies.contains(want)) << "strategy " << static_cast<int>(want);
  }
  EXPECT_TRUE(vectorized && scalar && index32 && index64);
}

TEST(CudaCodegen, PlansFitTheWork) {
  auto only = [](const Tensor& t) {
    std::vector<CudaKernel> ks = cuda_kernels(t);
    EXPECT_EQ(ks.size(), 1u);
    return ks.empty() ? CudaKernel{} : ks[0];
  };
  CudaKernel chain = only(tanh(input({1 << 20})) + 1.f);
  EXPECT_EQ(chain.strategy, CudaStrategy::kElementwise);
  EXPECT_EQ(chain.vector_width, 4);  // 16-byte accesses of float
  EXPECT_FALSE(chain.index64);
  EXPECT_TRUE(absl::StrContains(chain.code, "smelt_rt::Vec<float, 4>")) << chain.code;
  EXPECT_EQ(only(input({1000}, DType::Float64) * 2.0).vector_width, 2);
  EXPECT_EQ(only(input({1000}, DType::Float32).t() * 2.f).vector_width, 4);

  EXPECT_EQ(only(input({4096, 10}).sum(1)).strategy, CudaStrategy::kThreadPerOutput);
  EXPECT_EQ(only(input({4096, 300}).sum(0)).strategy, CudaStrategy::kColumn);
  EXPECT_EQ(only(input({4096, 300}).argmax(0)).strategy, CudaStrategy::kColumn);
  EXPECT_EQ(only(input({512, 4096}).sum(1)).strategy, CudaStrategy::kBlockPerOutput);
  CudaKernel full = only(input({1 << 24}).sum());
  EXPECT_EQ(full.strategy, CudaStrategy::kSplit);
  EXPECT_GT(full.grid[0], 1u);
  EXPECT_EQ(full.ticket_bytes, 4u);
  EXPECT_GE(full.scratch_bytes, full.grid[0] * sizeof(float));
  EXPECT_EQ(full.vector_width, 4);  // contiguous reductions load 16 bytes at a time
  EXPECT_EQ(only(input({512, 4096}).sum(1)).vector_width, 4);
  EXPECT_EQ(only(input({512, 4096}, DType::Float64).max(1)).vector_width, 2);
  EXPECT_EQ(only(input({4096, 512}).t().sum(1)).vector_width, 1);  // strided: element loads
  EXPECT_EQ(only(input({512, 4094}).sum(1)).vector_width, 1);      // rows not whole vectors
  EXPECT_TRUE(only(input({3, int64_t{1} << 30}) + 1.f).index64);
  EXPECT_TRUE(only(input({0, 5}) + 1.f).empty);
}

TEST(CudaCodegen, TextNamesThePlanAndRejectsBadKernels) {
  std::vector<compiler::Kernel> ir;
  cuda_kernels(input({100, 100}).sum(1), &ir);
  ASSERT_EQ(ir.size(), 1u);
  const std::string text = compiler::emit_cuda_text(ir[0]);
  EXPECT_TRUE(absl::StrContains(text, "block per output")) << text;
  EXPECT_TRUE(absl::StrContains(text, "extern \"C\" __global__")) << text;
  compiler::Kernel bad = ir[0];
  bad.reduce_value = 1000;
  EXPECT_TRUE(absl::StartsWith(compiler::emit_cuda_text(bad), "// error: ")) << text;
  EXPECT_FALSE(compiler::emit_cuda(bad).ok());
}

// ---- row kernels, built by hand in the Kernel IR -----------------------------------------------

using compiler::Kernel;
using compiler::KernelBuilder;
using compiler::KStage;
using compiler::ReduceOp;
using ir::OpCode;

// Softmax over the last axis of x [rows, cols] (stored transposed, [cols, rows], if `permuted`):
// stage 0 the row max, stage 1 the sum of exp(x - max) (it reads stage 0), then every point
// stored as exp(x - max) / sum.
Kernel softmax_kernel(int64_t rows, int64_t cols, DType t = DType::Float32, bool permuted = false) {
  Kernel k;
  k.name = "softmax";
  k.domain = {rows, cols};
  k.num_outer = 1;
  k.inputs = {{t, rows * cols}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t at = b.add(b.mul(i, b.iconst(cols)), j);
  const int32_t x = b.load(0, permuted ? b.add(b.mul(j, b.iconst(rows)), i) : at);
  k.stages.push_back(KStage{.op = ReduceOp::kMax, .dtype = t, .value = x});
  const int32_t e = b.apply(OpCode::Exp, t, b.apply(OpCode::Sub, t, x, b.stage(0)));
  k.stages.push_back(KStage{.op = ReduceOp::kSum, .dtype = t, .value = e});
  k.outputs.push_back({t, b.apply(OpCode::Div, t, e, b.stage(1)), at, rows * cols});
  return k;
}

// Cross-entropy per row of logits [rows, cols] with Int64 targets [rows]: stages max and sum of
// exp, then a main reduction (sum over j of onehot * (x - max - log(sum))) stored negated per row,
// with the row max as a second output (an outer output that reads a stage).
Kernel cross_entropy_kernel(int64_t rows, int64_t cols, DType t = DType::Float32,
                            ReduceOp main = ReduceOp::kSum) {
  Kernel k;
  k.name = "cross_entropy";
  k.domain = {rows, cols};
  k.num_outer = 1;
  k.inputs = {{t, rows * cols}, {DType::Int64, rows}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t x = b.load(0, b.add(b.mul(i, b.iconst(cols)), j));
  k.stages.push_back(KStage{.op = ReduceOp::kMax, .dtype = t, .value = x});
  const int32_t shifted = b.apply(OpCode::Sub, t, x, b.stage(0));
  k.stages.push_back(
      KStage{.op = ReduceOp::kSum, .dtype = t, .value = b.apply(OpCode::Exp, t, shifted)});
  const int32_t logp = b.apply(OpCode::Sub, t, shifted, b.apply(OpCode::Log, t, b.stage(1)));
  const int32_t onehot =
      b.apply(OpCode::Cast, t, b.apply(OpCode::Eq, DType::Bool, j, b.load(1, i)));
  k.reduce = main;
  if (main == ReduceOp::kArgMax) {
    k.reduce_dtype = DType::Int64;
    k.reduce_value = logp;
    k.outputs.push_back({DType::Int64, b.acc(), i, rows});
  } else {
    k.reduce_dtype = t;
    k.reduce_value = b.apply(OpCode::Mul, t, onehot, logp);
    k.outputs.push_back({t, b.apply(OpCode::Neg, t, b.acc()), i, rows});
  }
  k.outputs.push_back({t, b.stage(0), i, rows});
  return k;
}

// Layer norm over the last axis with per-column gamma: stage 0 the sum, stage 1 the sum of
// squared deviations from the mean (stage 0 / cols), stored (x - mean) * rsqrt(var + eps) * gamma.
Kernel layer_norm_kernel(int64_t rows, int64_t cols, DType t = DType::Float32) {
  Kernel k;
  k.name = "layer_norm";
  k.domain = {rows, cols};
  k.num_outer = 1;
  k.inputs = {{t, rows * cols}, {t, cols}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t at = b.add(b.mul(i, b.iconst(cols)), j);
  const int32_t x = b.load(0, at);
  k.stages.push_back(KStage{.op = ReduceOp::kSum, .dtype = t, .value = x});
  const int32_t n = b.constant(t, static_cast<double>(cols));
  const int32_t d = b.apply(OpCode::Sub, t, x, b.apply(OpCode::Div, t, b.stage(0), n));
  k.stages.push_back(
      KStage{.op = ReduceOp::kSum, .dtype = t, .value = b.apply(OpCode::Mul, t, d, d)});
  const int32_t scale =
      b.apply(OpCode::Rsqrt, t,
              b.apply(OpCode::Add, t, b.apply(OpCode::Div, t, b.stage(1), n), b.constant(t, 1e-5)));
  const int32_t y = b.apply(OpCode::Mul, t, b.apply(OpCode::Mul, t, d, scale), b.load(1, j));
  k.outputs.push_back({t, y, at, rows * cols});
  return k;
}

// Integer and Bool stages: the row max (Int32), the Int64 sum of x - max, whether x == max
// anywhere (a Bool max), all combined into an Int64 output per point.
Kernel integer_row_kernel(int64_t rows, int64_t cols) {
  Kernel k;
  k.name = "integer_rows";
  k.domain = {rows, cols};
  k.num_outer = 1;
  k.inputs = {{DType::Int32, rows * cols}};
  KernelBuilder b(k);
  const int32_t i = b.loop_var(0), j = b.loop_var(1);
  const int32_t at = b.add(b.mul(i, b.iconst(cols)), j);
  const int32_t x = b.load(0, at);
  k.stages.push_back(KStage{.op = ReduceOp::kMax, .dtype = DType::Int32, .value = x});
  const int32_t d = b.apply(OpCode::Sub, DType::Int32, x, b.stage(0));
  const int32_t d64 = b.apply(OpCode::Cast, DType::Int64, d);
  k.stages.push_back(KStage{.op = ReduceOp::kSum, .dtype = DType::Int64, .value = d64});
  k.stages.push_back(KStage{.op = ReduceOp::kMax,
                            .dtype = DType::Bool,
                            .value = b.apply(OpCode::Eq, DType::Bool, x, b.stage(0))});
  const int32_t y =
      b.apply(OpCode::Add, DType::Int64, b.apply(OpCode::Add, DType::Int64, d64, b.stage(1)),
              b.apply(OpCode::Cast, DType::Int64, b.stage(2)));
  k.outputs.push_back({DType::Int64, y, at, rows * cols});
  return k;
}

// Stages max and sum of exp over input 0 read at `at`, and the output exp / sum stored there.
void add_softmax(Kernel& k, KernelBuilder& b, DType t, int32_t at, int64_t numel) {
  const int32_t x = b.load(0, at);
  k.stages.push_back(KStage{.op = ReduceOp::kMax, .dtype = t, .value = x});
  const int32_t e = b.apply(OpCode::Exp, t, b.apply(OpCode::Sub, t, x, b.stage(0)));
  k.stages.push_back(KStage{.op = ReduceOp::kSum, .dtype = t, .value = e});
  k.outputs.push_back({t, b.apply(OpCode::Div, t, e, b.stage(1)), at, numel});
}

// A row over the middle axis of x [a, r, c]: domain [a, c, r], outputs at x's positions, so
// neither the loads nor the stores are contiguous along the reduced axis.
Kernel middle_axis_softmax(int64_t a, int64_t r, int64_t c, DType t = DType::Float32) {
  Kernel k;
  k.name = "softmax_dim1";
  k.domain = {a, c, r};
  k.num_outer = 2;
  k.inputs = {{t, a * r * c}};
  KernelBuilder b(k);
  const int32_t at =
      b.add(b.add(b.mul(b.loop_var(0), b.iconst(r * c)), b.mul(b.loop_var(2), b.iconst(c))),
            b.loop_var(1));
  add_softmax(k, b, t, at, a * r * c);
  return k;
}

// Softmax over two reduced axes of x [rows, p, q] (as a group norm reduces over its group).
Kernel two_axis_softmax(int64_t rows, int64_t p, int64_t q) {
  Kernel k;
  k.name = "softmax_two_axes";
  k.domain = {rows, p, q};
  k.num_outer = 1;
  const DType t = DType::Float32;
  k.inputs = {{t, rows * p * q}};
  KernelBuilder b(k);
  const int32_t at =
      b.add(b.add(b.mul(b.loop_var(0), b.iconst(p * q)), b.mul(b.loop_var(1), b.iconst(q))),
            b.loop_var(2));
  add_softmax(k, b, t, at, rows * p * q);
  return k;
}

CudaKernel emit_ok(const Kernel& k) {
  absl::StatusOr<CudaKernel> ck = compiler::emit_cuda(k);
  EXPECT_TRUE(ck.ok()) << k.name << ": " << ck.status();
  return ck.ok() ? *std::move(ck) : CudaKernel{};
}

struct RowCase {
  std::string name;
  Kernel kernel;
  CudaStrategy strategy;
};

std::vector<RowCase> row_cases() {
  const CudaStrategy row = CudaStrategy::kRow, thread = CudaStrategy::kThreadPerRow;
  std::vector<RowCase> cases = {
      {"softmax", softmax_kernel(128, 1024), row},
      {"softmax_odd", softmax_kernel(7, 1000), row},
      {"softmax_tail", softmax_kernel(7, 1001), row},
      {"softmax_small_rows", softmax_kernel(4096, 10), thread},
      {"softmax_permuted", softmax_kernel(300, 500, DType::Float32, true), row},
      {"softmax_f64", softmax_kernel(64, 4096, DType::Float64), row},
      {"softmax_f64_small", softmax_kernel(64, 20, DType::Float64), thread},
      {"cross_entropy", cross_entropy_kernel(512, 1000), row},
      {"cross_entropy_f64", cross_entropy_kernel(512, 1024, DType::Float64), row},
      {"cross_entropy_small", cross_entropy_kernel(512, 16), thread},
      {"argmax_after_stages", cross_entropy_kernel(64, 3000, DType::Float32, ReduceOp::kArgMax),
       row},
      {"layer_norm", layer_norm_kernel(1000, 768), row},
      {"layer_norm_f64", layer_norm_kernel(33, 100, DType::Float64), row},
      {"integer_rows", integer_row_kernel(100, 300), row},
      {"integer_rows_small", integer_row_kernel(100, 5), thread},
      {"middle_axis", middle_axis_softmax(3, 5, 33), thread},
      {"middle_axis_long", middle_axis_softmax(3, 500, 33), row},
      {"middle_axis_many_rows", middle_axis_softmax(32, 500, 1024), thread},
      {"middle_axis_f64", middle_axis_softmax(3, 5, 33, DType::Float64), thread},
      {"two_axes", two_axis_softmax(6, 40, 64), row},
      {"empty_rows", softmax_kernel(7, 0), thread},
      {"empty_rows_reduction", cross_entropy_kernel(7, 0), thread},
      {"empty_two_axes", two_axis_softmax(5, 0, 3), thread},
      {"no_rows", softmax_kernel(0, 100), row},
      {"index64", softmax_kernel(2, int64_t{1} << 30), row},
  };
  return cases;
}

TEST(CudaCodegen, RowKernelsCompileWithNvrtc) {
  std::vector<CudaKernel> all;
  for (const RowCase& c : row_cases()) {
    SCOPED_TRACE(c.name);
    const CudaKernel k = emit_ok(c.kernel);
    EXPECT_EQ(k.strategy, c.strategy) << k.code;
    EXPECT_EQ(k.empty, c.kernel.domain[0] == 0);
    if (k.strategy == CudaStrategy::kRow) {
      // Every stage's result reaches every thread through shared memory.
      EXPECT_TRUE(absl::StrContains(k.code, "__syncthreads()")) << k.code;
      EXPECT_GE(k.block[0], 32u);
      EXPECT_LE(k.block[0], 256u);
    } else {
      EXPECT_FALSE(absl::StrContains(k.code, "__syncthreads()")) << k.code;
    }
    all.push_back(k);
    if (runtime::cuda::built_with_cuda()) expect_compiles({k}, c.name);
  }
  if (runtime::cuda::built_with_cuda()) expect_compiles(all, "every row kernel in one image");
}

TEST(CudaCodegen, RowKernelPlans) {
  // Contiguous rows: 16-byte loads in every sweep and 16-byte stores of the results.
  const CudaKernel soft = emit_ok(softmax_kernel(128, 1024));
  EXPECT_EQ(soft.vector_width, 4);
  EXPECT_EQ(soft.block[0], 256u);
  EXPECT_EQ(soft.grid[0], 128u);  // one block per row
  EXPECT_TRUE(absl::StrContains(soft.code, "*reinterpret_cast<smelt_rt::Vec<float, 4>*>(out0"))
      << soft.code;
  EXPECT_FALSE(soft.index64);
  EXPECT_EQ(emit_ok(softmax_kernel(64, 4096, DType::Float64)).vector_width, 2);
  // Rows that are not whole vectors, and transposed rows, go element by element.
  EXPECT_EQ(emit_ok(softmax_kernel(7, 1001)).vector_width, 1);
  EXPECT_EQ(emit_ok(softmax_kernel(300, 500, DType::Float32, true)).vector_width, 1);
  // The block fits the row.
  EXPECT_EQ(emit_ok(softmax_kernel(10, 40)).block[0], 64u);
  EXPECT_TRUE(emit_ok(softmax_kernel(2, int64_t{1} << 30)).index64);
  // A row of no points stores nothing: no loop over it at all.
  const CudaKernel none = emit_ok(softmax_kernel(7, 0));
  EXPECT_FALSE(absl::StrContains(none.code, "out0[")) << none.code;
  // The per-row value log(sum) of cross-entropy is computed once per row, outside the loops.
  const CudaKernel ce = emit_ok(cross_entropy_kernel(512, 1000));
  const size_t log_at = ce.code.find("logf(");
  ASSERT_NE(log_at, std::string::npos) << ce.code;
  EXPECT_EQ(ce.code.find("logf(", log_at + 1), std::string::npos) << ce.code;
  EXPECT_LT(log_at, ce.code.find("acc = combine(acc")) << ce.code;
  // The text names the plan.
  EXPECT_TRUE(absl::StrContains(compiler::emit_cuda_text(softmax_kernel(128, 1024)), ": row,"));
  EXPECT_TRUE(
      absl::StrContains(compiler::emit_cuda_text(softmax_kernel(128, 10)), ": thread per row,"));
}

// The built-in conv2d/max_pool2d kernels (runtime/conv_cuda.cpp) compile, and the image defines
// every kernel the executor loads by name.
TEST(CudaCodegen, ConvKernelsCompileWithNvrtc) {
  if (!runtime::cuda::built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  absl::StatusOr<runtime::cuda::CompiledImage> image =
      runtime::cuda::nvrtc_compile(runtime::conv_cuda_source(), "smelt_conv_test");
  ASSERT_TRUE(image.ok()) << image.status();
  const std::vector<std::string> names = runtime::conv_cuda_kernel_names();
  EXPECT_EQ(names.size(), 12u);
  for (const std::string& name : names) {
    EXPECT_NE(image->image.find(name), std::string::npos) << name << " is not in the image";
  }
}

TEST(CudaCodegen, ScanKernelsCompileWithNvrtc) {
  if (!runtime::cuda::built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  absl::StatusOr<runtime::cuda::CompiledImage> image =
      runtime::cuda::nvrtc_compile(runtime::scan_cuda_source(), "smelt_scan_test");
  ASSERT_TRUE(image.ok()) << image.status();
  const std::vector<std::string> names = runtime::scan_cuda_kernel_names();
  EXPECT_EQ(names.size(), 12u);
  for (const std::string& name : names) {
    EXPECT_NE(image->image.find(name), std::string::npos) << name << " is not in the image";
  }
}

TEST(CudaCodegen, ExecutorBuiltinsCompileWithNvrtc) {
  if (!runtime::cuda::built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  absl::StatusOr<runtime::cuda::CompiledImage> image =
      runtime::cuda::nvrtc_compile(runtime::cuda_builtins_source(), "smelt_builtins_test");
  ASSERT_TRUE(image.ok()) << image.status();
  for (const char* name : {"smelt_gather_4_i64", "smelt_index_add_f32_i64",
                           "smelt_index_add_i64_i32", "smelt_strided_copy_8"}) {
    EXPECT_NE(image->image.find(name), std::string::npos) << name << " is not in the image";
  }
}

TEST(CudaCodegen, NvrtcErrorsCarryTheLog) {
  if (!runtime::cuda::built_with_cuda()) GTEST_SKIP() << "built without the CUDA toolkit";
  absl::StatusOr<runtime::cuda::CompiledImage> image =
      runtime::cuda::nvrtc_compile("extern \"C\" __global__ void f() { undefined_name; }", "bad");
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(image.status().message(), "undefined_name"))
      << image.status().message();
}

}  // namespace
}  // namespace smelt
