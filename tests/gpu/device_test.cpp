// GPU presence check: reports the devices found, or exits 77 (CTest: skipped) on a machine
// without a GPU, which is how every GPU test behaves on CI.
#include <cstdio>

#include "kernels/cuda_device.hpp"

int main() {
  const int count = troupe::cuda::device_count();
  if (count == 0) {
    std::puts("no CUDA device: skipping");
    return 77;
  }
  for (int i = 0; i < count; ++i)
    std::printf("cuda:%d %s\n", i, troupe::cuda::device_description(i).c_str());
  return troupe::cuda::device_description(0) == "unavailable" ? 1 : 0;
}
