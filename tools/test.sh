#!/usr/bin/env bash
# Configures, builds and runs every test (CPU tests run; GPU tests report "skipped" without a GPU).
# Usage: tools/test.sh [build-dir]   (TROUPE_SANITIZE=1 for the ASan + UBSan build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
build_dir="${1:-build}"
extra=()
if [ "${TROUPE_SANITIZE:-0}" = 1 ]; then
  build_dir="${1:-build-asan}"
  # CUDA code cannot run under the sanitizers (and CI has no GPU): leave it to the plain build.
  extra+=(-DTROUPE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_CUDA=OFF)
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" "${launcher[@]}" "${extra[@]}"
cmake --build "$build_dir" -j "$(nproc)"
cd "$build_dir"
OPENBLAS_NUM_THREADS=1 ctest --output-on-failure -j "$(nproc)"
