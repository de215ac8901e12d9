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
             where(x > 0.0, x, -x) + clamp(x, -1.0, 1.0) + x / (x + 1.0);
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
    // No frontend prod yet: the IR op directly.
    Tensor prod =
        detail::wrap(detail::make_node(ir::OpCode::Prod, {x.impl()->node()},
                                       {{"axes", std::vector<int64_t>{1}}, {"keepdim", false}}));
    return x.max(1) + x.min(1) + prod;
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
  EXPECT_EQ(strategies.size(), 5u) << "every strategy is exercised";
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
