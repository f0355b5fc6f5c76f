#!/usr/bin/env bash
# Configures and builds troupe (Release, Ninja and ccache when present) into BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
shift || true
args=(-DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}")
if command -v ninja >/dev/null; then args+=(-G Ninja); fi
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build_dir" "${args[@]}" "$@"
cmake --build "$build_dir" -j "$(nproc)"
