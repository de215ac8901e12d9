#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), from the repository root, over the pack that
# tools/gpu_bundle.sh made (carried as .gpu/pack):
#   tests     the CUDA, runtime and end-to-end tests
#   bench     the CUDA benchmarks (bench/cuda_bench.cpp; BENCH_FILTER narrows them)
#   torch     PyTorch's eager numbers on the same card (bench/torch_gpu_anchor.py)
#   sanitize  compute-sanitizer memcheck over the device tests, caching allocator bypassed
# Logs go to $OUT (the device tool's return folder), else ./gpu-logs.
#   tools/gpu_check.sh [step ...]     (default: all four, in that order)
set -uo pipefail
cd "$(dirname "$0")/.."
logs="${OUT:-gpu-logs}"
mkdir -p "$logs"
bin=/tmp/smelt-gpu
mkdir -p "$bin/lib"
for b in smelt_gpu_tests smelt_gpu_bench; do
  [[ -x "$bin/$b" ]] || { xz -d -c ".gpu/pack/$b.xz" >"$bin/$b" && chmod +x "$bin/$b"; }
done
xz -d -c .gpu/pack/lib.tar.xz | tar -C "$bin" -xf -
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:$bin/lib:${LD_LIBRARY_PATH:-}"
export SMELT_CACHE_DIR=/tmp/smelt-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$logs/gpu.txt"
steps=("$@")
((${#steps[@]})) || steps=(tests bench torch sanitize)
for step in "${steps[@]}"; do
  echo "=== $step"
  case "$step" in
    tests)
      timeout 300 "$bin/smelt_gpu_tests" --gtest_brief=1 >"$logs/tests.txt" 2>&1
      echo "exit $?"
      tail -n 60 "$logs/tests.txt"
      ;;
    bench)
      timeout 300 "$bin/smelt_gpu_bench" --benchmark_filter="${BENCH_FILTER:-Cuda}" \
        --benchmark_min_time=0.3 \
        >"$logs/bench.txt" 2>&1
      cat "$logs/bench.txt"
      ;;
    torch)
      timeout 120 python3 bench/torch_gpu_anchor.py >"$logs/torch.txt" 2>&1
      cat "$logs/torch.txt"
      ;;
    sanitize)
      SMELT_CUDA_NO_CACHE=1 timeout 300 compute-sanitizer --tool memcheck --print-limit 20 \
        "$bin/smelt_gpu_tests" --gtest_brief=1 \
        --gtest_filter='CudaDevice.*:-CudaDevice.FuzzedGraphsMatchTheReference' \
        >"$logs/sanitize.txt" 2>&1
      echo "exit $?"
      tail -n 30 "$logs/sanitize.txt"
      ;;
    *) echo "unknown step $step" >&2 ;;
  esac
done
