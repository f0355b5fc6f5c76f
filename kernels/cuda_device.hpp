// What CUDA devices this process can use. Declared without CUDA headers so any code (and the GPU
// tests, which exit 77 = "skipped" when this returns 0) can ask. Defined in cuda/device_query.cu.
#pragma once

#include <string>

namespace troupe::cuda {

// Number of usable CUDA devices; 0 when the driver or a GPU is missing (never throws).
int device_count();
// "NVIDIA H200, sm_90, 139 GiB" for device `ordinal`.
std::string device_description(int ordinal);

}  // namespace troupe::cuda
