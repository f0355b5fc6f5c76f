// Device helpers for tests and benchmarks (see debug.hpp).
#include <cuda_runtime.h>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/debug.hpp"

namespace troupe::cuda {
namespace {

__device__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(const volatile int* flag, unsigned long long timeout_ns) {
  const unsigned long long start = global_ns();
  while (*flag == 0 && global_ns() - start < timeout_ns) {
  }
}

}  // namespace

void spin_until_flag(void* stream, const volatile int* flag, double timeout_ms) {
  const volatile int* device_flag = nullptr;
  TROUPE_CUDA_CHECK(cudaHostGetDevicePointer((void**)&device_flag, (void*)flag, 0));
  spin_kernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(
      device_flag, static_cast<unsigned long long>(timeout_ms * 1e6));
  TROUPE_CUDA_CHECK_LAUNCH();
}

volatile int* alloc_host_flag() {
  void* p = nullptr;
  TROUPE_CUDA_CHECK(cudaHostAlloc(&p, sizeof(int), cudaHostAllocMapped | cudaHostAllocPortable));
  *static_cast<volatile int*>(p) = 0;
  return static_cast<volatile int*>(p);
}

void free_host_flag(volatile int* flag) {
  if (flag) cudaFreeHost((void*)flag);
}

}  // namespace troupe::cuda
