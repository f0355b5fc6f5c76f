#!/usr/bin/env bash
# One device call: unpack the carried Debian dependencies, configure with the GPU machine's CMake 4
# and nvcc (sm_90), build everything, run the test suite (GPU tests run here instead of skipping)
# and print a short table. Datasets are not on that machine, so the tests that read the real
# Fashion-MNIST / KJV files are excluded there (CI runs them).
# Usage (device tool, carry [".deps"]): bash tools/device/gpu-check.sh
set -uo pipefail
source tools/device/unpack-debs.sh .deps/debs
export NCCL_NVLS_ENABLE=0
out="${OUT:-/tmp/out}"
mkdir -p "$out"
build=/tmp/build
cmake --version | head -1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/configure.log" 2>&1
configure_rc=$?
cmake --build $build -j "$(nproc)" -- -k 0 > "$out/build.log" 2>&1
build_rc=$?
built=$(date +%s)
# CTEST_ARGS narrows the run (e.g. CTEST_ARGS="-R ^gpu/" when device time is short).
(cd $build && ctest -j 8 --output-on-failure -E "real Fashion-MNIST|real KJV|tools/resume_test" \
  ${CTEST_ARGS:-} > "$out/ctest.log" 2>&1)
test_rc=$?
end=$(date +%s)
tail -5 "$out/ctest.log"
grep -E "gpu/device" "$out/ctest.log" | head -3
$build/tests/test_gpu_device
# Every GPU test binary with its own output (each compares CUDA kernels with the CPU twins), then
# the MoE layer benchmark (JSON to $out), then compute-sanitizer memcheck on the GPU tests.
for t in $build/tests/test_gpu_*; do
  echo "== $(basename $t)" >> "$out/gpu-tests.log"
  $t >> "$out/gpu-tests.log" 2>&1
  rc=$?
  echo "$(basename $t) rc=$rc"
done
grep -E "FAILED|ulp|dropped" "$out/gpu-tests.log" | head -40
if [ -x $build/bench/troupe_bench_moe_layer_gpu ]; then
  $build/bench/troupe_bench_moe_layer_gpu "$out/moe_layer_gpu_bench.json" > "$out/moe_layer_gpu_bench.log" 2>&1
  echo "bench rc=$?"
  grep -E "validat|stream|phases|rows per expert|ceiling" "$out/moe_layer_gpu_bench.log" | head -40
  tail -6 "$out/moe_layer_gpu_bench.log"
fi
if [ "${SKIP_MEMCHECK:-0}" != 1 ]; then
  # Small shapes, but cuBLAS and cuDNN under memcheck are slow: MEMCHECK_BUDGET_S (default 180)
  # bounds the total, and a test that would start past it is reported as not run.
  memcheck_end=$(( $(date +%s) + ${MEMCHECK_BUDGET_S:-180} ))
  for t in runtime elementwise gemm router norm loss embedding attention conv; do
    left=$(( memcheck_end - $(date +%s) ))
    if [ $left -lt 10 ]; then echo "memcheck test_gpu_$t not run (MEMCHECK_BUDGET_S spent)"; continue; fi
    # runtime_test provokes one failing cudaMalloc on purpose: API errors are not memory errors.
    api=explicit; [ $t = runtime ] && api=no
    timeout $left compute-sanitizer --tool memcheck --report-api-errors $api --error-exitcode 3 \
      $build/tests/test_gpu_$t \
      > "$out/memcheck-$t.log" 2>&1
    rc=$?
    echo "memcheck test_gpu_$t rc=$rc $(grep -c 'Invalid' "$out/memcheck-$t.log") invalid accesses"
  done
fi
echo "| step | rc | seconds |"
echo "| configure (cmake $(cmake --version | head -1 | awk '{print $3}')) | $configure_rc | |"
echo "| build | $build_rc | $((built - start)) |"
echo "| ctest | $test_rc | $((end - built)) |"
