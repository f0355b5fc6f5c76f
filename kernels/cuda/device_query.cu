// CUDA device discovery (see cuda_device.hpp). A missing driver or GPU is not an error here:
// callers decide whether they need a GPU.
#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda_device.hpp"

namespace troupe::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later calls start clean
    return 0;
  }
  return count;
}

std::string device_description(int ordinal) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) return "unavailable";
  return std::string(prop.name) + ", sm_" + std::to_string(prop.major * 10 + prop.minor) + ", " +
         std::to_string(prop.totalGlobalMem >> 30) + " GiB";
}

}  // namespace troupe::cuda
