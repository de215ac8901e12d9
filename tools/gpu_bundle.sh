#!/usr/bin/env bash
# Packs smelt's CUDA tests and benchmarks for a GPU machine that has the CUDA toolkit (NVRTC,
# cuBLAS) and a driver but none of Debian's packages (LLVM, Abseil, OpenBLAS, GoogleTest): the
# objects of an ordinary build are linked again into two binaries with those libraries static.
#
#   tools/gpu_bundle.sh [out_dir]     (default .gpu; the build folder is BUILD_DIR, default build)
#
# Makes out_dir/smelt_gpu_tests (the tests of cuda, runtime, e2e, autograd, nn, optim) and
# out_dir/smelt_gpu_bench
# (bench/; Google Benchmark's and OpenBLAS's shared libraries beside them in out_dir/lib), and
# out_dir/pack: both
# compressed, for the device tool to carry; tools/gpu_check.sh runs them on the GPU machine.
# A developer tool for the lent GPU machines (see docs/PLAN.md); CI never uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.gpu}"
build="${BUILD_DIR:-build}"
tests=(test_cuda test_runtime test_e2e test_autograd test_nn test_optim)
cmake --build "$build" -j "$(nproc)" --target smelt "${tests[@]}" smelt_bench

mkdir -p "$out/lib"
# Objects whose source still exists (a build folder keeps those of deleted files).
live() { while read -r o; do
  src="${o#*.dir/}"; src="${src%.o}"
  [[ -f "$src" || -f "tests/$src" || -f "bench/$src" ]] && echo "$o"
done; }
lib_objs=$(find "$build/CMakeFiles/smelt.dir" -name '*.o' | sort | live)
test_objs=$(for t in "${tests[@]}"; do
  [[ -d "$build/tests/CMakeFiles/$t.dir" ]] && find "$build/tests/CMakeFiles/$t.dir" -name '*.o'
done | sort | live)
# The LibTorch column (a build configured with SMELT_TORCH_ROOT) stays home: the GPU machine's
# PyTorch anchor is bench/torch_gpu_anchor.py.
bench_objs=$(find "$build/bench/CMakeFiles/smelt_bench.dir" -name '*.o' ! -name 'libtorch_bench.cpp.o' |
  sort | live)
llvm_libs=$(llvm-config-19 --link-static --libs orcjit native passes)
absl_libs=$(ls /usr/lib/x86_64-linux-gnu/libabsl_*.a)
common=(-Wl,--start-group $absl_libs -Wl,--end-group -L/usr/lib/llvm-19/lib $llvm_libs
  -L/usr/local/cuda/lib64 -lnvrtc /usr/lib/x86_64-linux-gnu/libz.a /usr/lib/x86_64-linux-gnu/libzstd.so.1 -fopenmp -ldl -lpthread -lrt -lm
  -static-libstdc++ -static-libgcc -Wl,--gc-sections -s)

g++ -o "$out/smelt_gpu_tests" $lib_objs $test_objs \
  /usr/lib/x86_64-linux-gnu/libgtest_main.a /usr/lib/x86_64-linux-gnu/libgtest.a "${common[@]}"
cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian "$out/lib/"
# OpenBLAS is dlopen'ed at run time (runtime/blas.cpp): it travels with what it needs, its
# OpenMP build when installed (it shares smelt's OpenMP team, so libgomp travels too).
for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libgomp.so.1; do
  cp -L "$(ldconfig -p | awk -v l="$l" '$1 == l {print $NF; exit}')" "$out/lib/"
done
omp_blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0
if [[ -f "$omp_blas" ]]; then cp -L "$omp_blas" "$out/lib/libopenblas.so.0"; fi
g++ -o "$out/smelt_gpu_bench" $lib_objs $bench_objs /usr/lib/x86_64-linux-gnu/libbenchmark_main.a \
  "$out/lib/libbenchmark.so.1debian" -Wl,-rpath,'$ORIGIN/lib' "${common[@]}"

# What travels: the binaries compressed (about a quarter of their size) and the library;
# tools/gpu_check.sh unpacks them there and runs the checks.
rm -rf "$out/pack"
mkdir -p "$out/pack"
tar -C "$out" -cf - lib | xz -T"$(nproc)" -6 >"$out/pack/lib.tar.xz"
xz -T"$(nproc)" -6 -c "$out/smelt_gpu_tests" >"$out/pack/smelt_gpu_tests.xz"
xz -T"$(nproc)" -6 -c "$out/smelt_gpu_bench" >"$out/pack/smelt_gpu_bench.xz"
ls -la "$out/pack"
