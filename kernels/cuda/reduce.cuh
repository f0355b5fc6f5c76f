// Block-wide reductions for the row kernels (norms, the loss, attention's softmax): a butterfly of
// warp shuffles, then one value per warp through shared memory, so every thread of the block gets
// the result. Blocks must be a multiple of 32 threads. The order of the adds depends only on the
// block size, so a sum is the same on every run (deterministic), but it is a tree, not the CPU's
// left-to-right chain: a float sum differs from the CPU's by rounding, which is why the tests
// compare reductions against a K·ε bound rather than bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace troupe::cuda::detail {

template <class T>
__device__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the block. Safe to call repeatedly in one kernel (the first barrier keeps a previous
// call's readers from seeing this call's partials).
template <class T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = static_cast<int>((blockDim.x + 31) >> 5);
  return warp_sum(lane < warps ? partial[lane] : T(0));
}

__device__ inline float block_max(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = static_cast<int>((blockDim.x + 31) >> 5);
  return warp_max(lane < warps ? partial[lane] : -INFINITY);
}

// Index of the largest value, the lowest index among equal maxima (the CPU's argmax); -1 when no
// thread offered one (index < 0).
__device__ inline std::int64_t block_argmax(float v, std::int64_t index) {
  __shared__ float best_value[32];
  __shared__ std::int64_t best_index[32];
  auto better = [](float a, std::int64_t ia, float b, std::int64_t ib) {
    if (ib < 0) return ia >= 0;
    if (ia < 0) return false;
    return a > b || (a == b && ia < ib);
  };
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
    const std::int64_t oi = __shfl_xor_sync(0xffffffffu, index, offset);
    if (better(ov, oi, v, index)) v = ov, index = oi;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) best_value[warp] = v, best_index[warp] = index;
  __syncthreads();
  const int warps = static_cast<int>((blockDim.x + 31) >> 5);
  v = lane < warps ? best_value[lane] : 0.0f;
  index = lane < warps ? best_index[lane] : -1;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
    const std::int64_t oi = __shfl_xor_sync(0xffffffffu, index, offset);
    if (better(ov, oi, v, index)) v = ov, index = oi;
  }
  return index;
}

}  // namespace troupe::cuda::detail
