// smelt on a CUDA device: the same workloads as compiler_bench.cpp, against the device's copy
// bandwidth and cuBLAS called directly. Select them with --benchmark_filter=Cuda; without a
// device each reports "no CUDA device" as its error. PyTorch's eager numbers on the same card
// come from bench/torch_gpu_anchor.py (run beside this binary; see bench/RESULTS.md).
//
// Each iteration builds the graph, realizes it and waits for the device (cuda::synchronize), so
// the time is what a caller sees end to end; a warm-up outside the timed loop compiles.
#include <benchmark/benchmark.h>
#include <smelt/smelt.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "runtime/cuda_api.h"

namespace {

using smelt::Tensor;

constexpr int64_t kN = int64_t{1} << 26;  // 64 Mi floats = 256 MiB per stream

bool have_gpu(benchmark::State& state) {
  if (smelt::cuda_is_available()) return true;
  state.SkipWithError("no CUDA device");
  return false;
}

Tensor gpu_input(const std::vector<int64_t>& shape, uint64_t seed) {
  smelt::manual_seed(seed);
  return smelt::randn(shape).cuda();
}

// Times fn() + a device synchronize per iteration (manual time: the wall clock of both).
template <typename Fn>
void timed(benchmark::State& state, Fn fn) {
  fn();
  smelt::cuda::synchronize();  // nothing to wait for without a device
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    smelt::cuda::synchronize();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

class EagerScope {
 public:
  explicit EagerScope(bool eager) { smelt::set_eager(eager); }
  ~EagerScope() { smelt::set_eager(false); }
};

// The bandwidth floor: a device-to-device copy (bytes read + written).
void BM_CudaCopy(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const size_t bytes = kN * sizeof(float);
  auto src = smelt::runtime::cuda::allocate(bytes);
  auto dst = smelt::runtime::cuda::allocate(bytes);
  if (!src.ok() || !dst.ok()) return state.SkipWithError("allocation failed");
  timed(state,
        [&] { (void)smelt::runtime::cuda::copy_on_device((*dst)->data(), (*src)->data(), bytes); });
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_CudaCopy)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The elementwise chain of compiler_bench: 2 reads + 1 write of kN floats when fused.
void BM_CudaChain(benchmark::State& state) {
  if (!have_gpu(state)) return;
  EagerScope eager(state.range(0) == 1);
  Tensor x = gpu_input({kN}, 1), y = gpu_input({kN}, 2);
  timed(state, [&] { (tanh(x * 0.5f + y) * sigmoid(x) + exp(-x * x)).eval(); });
  state.SetBytesProcessed(state.iterations() * kN * 3 * int64_t{sizeof(float)});
}
BENCHMARK(BM_CudaChain)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CudaSum(benchmark::State& state) {
  if (!have_gpu(state)) return;
  EagerScope eager(state.range(0) == 1);
  Tensor x = gpu_input({kN}, 3);
  timed(state, [&] { x.sum().eval(); });
  state.SetBytesProcessed(state.iterations() * kN * int64_t{sizeof(float)});
}
BENCHMARK(BM_CudaSum)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CudaSoftmax(benchmark::State& state) {
  if (!have_gpu(state)) return;
  EagerScope eager(state.range(0) == 1);
  Tensor x = gpu_input({4096, 4096}, 4);
  timed(state, [&] { smelt::softmax(x, 1).eval(); });
  state.SetBytesProcessed(state.iterations() * 4096 * 4096 * 2 * int64_t{sizeof(float)});
}
BENCHMARK(BM_CudaSoftmax)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// smelt's matmul against cuBLAS called directly on the same buffers.
void BM_CudaMatmul(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const int64_t n = state.range(0);
  Tensor a = gpu_input({n, n}, 5), b = gpu_input({n, n}, 6);
  timed(state, [&] { smelt::matmul(a, b).eval(); });
  state.counters["TFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations() * 1e-12, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CudaMatmul)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_CudaMatmul_Cublas(benchmark::State& state) {
  if (!have_gpu(state)) return;
  namespace rc = smelt::runtime::cuda;
  const int64_t n = state.range(0);
  const size_t bytes = static_cast<size_t>(n * n) * sizeof(float);
  auto a = rc::allocate(bytes), b = rc::allocate(bytes), c = rc::allocate(bytes);
  if (!a.ok() || !b.ok() || !c.ok()) return state.SkipWithError("allocation failed");
  rc::GemmOperand ga{(*a)->data(), 0, 0, n, 1}, gb{(*b)->data(), 0, 0, n, 1};
  timed(state, [&] { (void)rc::gemm(false, 1, n, n, n, ga, gb, (*c)->data()); });
  state.counters["TFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations() * 1e-12, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CudaMatmul_Cublas)
    ->Arg(1024)
    ->Arg(4096)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// An MLP forward pass (784-256-10, batch 128): matmuls with fused bias/relu/softmax around them.
void BM_CudaMlpForward(benchmark::State& state) {
  if (!have_gpu(state)) return;
  EagerScope eager(state.range(0) == 1);
  Tensor x = gpu_input({128, 784}, 7), w1 = gpu_input({256, 784}, 8), b1 = gpu_input({256}, 9);
  Tensor w2 = gpu_input({10, 256}, 10), b2 = gpu_input({10}, 11);
  timed(state, [&] {
    Tensor h = smelt::relu(smelt::matmul(x, w1.t()) + b1);
    smelt::log_softmax(smelt::matmul(h, w2.t()) + b2, 1).eval();
  });
}
BENCHMARK(BM_CudaMlpForward)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// One SGD training step of that MLP (cross-entropy on one-hot labels): forward, backward
// (smelt::grad) and the update realize as one program; each parameter is then rebound to its
// updated value, as an optimizer's step() does. PyTorch's anchor runs the same step eagerly.
// Registered for the CPU too (BM_MlpTrainStep), so both devices run the same code.
void mlp_train_step(benchmark::State& state, smelt::Device device) {
  EagerScope eager(state.range(0) == 1);
  auto input = [&](const std::vector<int64_t>& shape, uint64_t seed) {
    smelt::manual_seed(seed);
    return smelt::randn(shape).to(device);
  };
  Tensor x = input({128, 784}, 12);
  smelt::manual_seed(13);
  Tensor labels = smelt::randint(0, 10, {128});
  Tensor onehot = (labels.unsqueeze(1) == smelt::arange(0, 10).unsqueeze(0))
                      .to(smelt::DType::Float32)
                      .to(device);
  std::vector<Tensor> params = {
      (input({256, 784}, 14) * 0.05f).detach(), smelt::zeros({256}).to(device),
      (input({10, 256}, 15) * 0.05f).detach(), smelt::zeros({10}).to(device)};
  for (Tensor& p : params) {
    p.eval();
    p.requires_grad_();
  }
  const float lr = 0.1f;
  float first_loss = 0, loss_value = 0;
  auto step = [&] {
    Tensor h = smelt::relu(smelt::matmul(x, params[0].t()) + params[1]);
    Tensor logp = smelt::log_softmax(smelt::matmul(h, params[2].t()) + params[3], 1);
    Tensor loss = -(logp * onehot).sum(1).mean();
    std::vector<Tensor> grads = smelt::grad({loss}, params);
    std::vector<Tensor> updated;
    {
      smelt::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) updated.push_back(params[i] - lr * grads[i]);
    }
    updated.push_back(loss.detach());
    smelt::eval(updated);
    for (size_t i = 0; i < params.size(); ++i) params[i] = updated[i].detach().requires_grad_();
    loss_value = updated.back().item<float>();
  };
  step();
  first_loss = loss_value;
  timed(state, step);
  // The same batch again and again: the loss must fall, or the step is wrong.
  state.counters["loss_first"] = first_loss;
  state.counters["loss_last"] = loss_value;
  if (!(loss_value < first_loss)) state.SkipWithError("the loss did not decrease");
}

void BM_MlpTrainStep(benchmark::State& state) { mlp_train_step(state, smelt::Device::cpu()); }
BENCHMARK(BM_MlpTrainStep)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CudaMlpTrainStep(benchmark::State& state) {
  if (have_gpu(state)) mlp_train_step(state, smelt::Device::cuda());
}
BENCHMARK(BM_CudaMlpTrainStep)
    ->ArgName("eager")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
