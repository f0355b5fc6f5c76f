// Reading and writing one element of an fp32 or bf16 buffer as fp32, so a kernel template serves
// both dtypes: bf16 is widened exactly on load and rounded to nearest even on store.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace troupe::cuda {

__device__ inline float load(const float* p, std::int64_t i) {
  return p[i];
}
__device__ inline float load(const __nv_bfloat16* p, std::int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ inline void store(float* p, std::int64_t i, float v) {
  p[i] = v;
}
__device__ inline void store(__nv_bfloat16* p, std::int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

}  // namespace troupe::cuda
