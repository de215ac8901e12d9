#!/usr/bin/env bash
# Sets up smelt on a fresh Debian 12 machine and runs one of its entry points.
#
#   tools/setup.sh            install what is missing, configure and build
#   tools/setup.sh demo       ... then run the demo (train on Fashion-MNIST, show fused kernels)
#   tools/setup.sh test       ... then run the whole test suite (what CI runs)
#
# Missing Debian packages are installed when run as root; otherwise the script prints the one
# apt-get line to run and stops. BUILD_DIR (default: build) and BUILD_TYPE (RelWithDebInfo) can
# be overridden from the environment.
set -euo pipefail

cd "$(dirname "$0")/.."
action="${1:-build}"
build_dir="${BUILD_DIR:-build}"
build_type="${BUILD_TYPE:-RelWithDebInfo}"

packages=(
  cmake ninja-build g++ ccache pkg-config
  llvm-19-dev           # CPU codegen: ORC LLJIT
  libabsl-dev           # Status, flat_hash_map, Mutex, strings
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev       # CPU GEMM
  libopenblas0-openmp   # its OpenMP build, loaded first: GEMMs on smelt's own OpenMP team
  zlib1g-dev            # reads the .gz IDX files
  dataset-fashion-mnist # the examples' and end-to-end tests' data
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

jobs=$(nproc)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
cmake --build "$build_dir" -j "$jobs"

case "$action" in
  build) ;;
  # Train the Fashion-MNIST MLP for two epochs, then print what one training step compiles to.
  demo) "$build_dir/examples/fashion_mnist" --epochs 2 --show-kernels ;;
  test) ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" ;;
  *) echo "usage: tools/setup.sh [build|demo|test]" >&2; exit 2 ;;
esac
