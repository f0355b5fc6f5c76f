// Max-pooling on the GPU (see conv.hpp): one thread per output, the window scanned in row-major
// order with a strict comparison (the first maximum wins, as on the CPU). Windows do not overlap
// (stride = window), so the backward writes each input at most once: zero everything, then one
// thread per output adds its gradient at its argmax (0 + dy, as the CPU's += computes it: a −0
// gradient lands as +0 on both).
#include <cuda_runtime.h>

#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/conv.hpp"

namespace troupe::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void maxpool_forward_kernel(const float* x, float* y, std::int32_t* argmax,
                                       std::int64_t outputs, std::int64_t height,
                                       std::int64_t width, std::int64_t window) {
  const std::int64_t oh_n = height / window, ow_n = width / window;
  for (std::int64_t o = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       o < outputs; o += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t plane = o / (oh_n * ow_n), oh = o / ow_n % oh_n, ow = o % ow_n;
    const std::int64_t corner = plane * height * width + oh * window * width + ow * window;
    std::int64_t best = corner;
    for (std::int64_t i = 0; i < window; ++i)
      for (std::int64_t j = 0; j < window; ++j) {
        const std::int64_t at = corner + i * width + j;
        if (x[at] > x[best]) best = at;
      }
    y[o] = x[best];
    argmax[o] = static_cast<std::int32_t>(best);
  }
}

__global__ void maxpool_backward_kernel(const float* dy, const std::int32_t* argmax, float* dx,
                                        std::int64_t outputs, std::int64_t total) {
  for (std::int64_t o = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       o < outputs; o += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t at = argmax[o];
    if (at >= 0 && at < total) dx[at] = __fadd_rn(dx[at], dy[o]);
  }
}

unsigned blocks_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 32 ? (blocks > 0 ? blocks : 1) : 65535 * 32);
}

// The conditions cpu::maxpool2d_* checks.
void check_pool_shape(const char* function, std::int64_t batch, std::int64_t channels,
                      std::int64_t height, std::int64_t width, std::int64_t window) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(std::string(function) + ": " + what);
  };
  if (batch < 0) fail("batch = " + std::to_string(batch) + ", must be >= 0");
  if (channels < 1) fail("channels = " + std::to_string(channels) + ", must be >= 1");
  if (height < 1) fail("height = " + std::to_string(height) + ", must be >= 1");
  if (width < 1) fail("width = " + std::to_string(width) + ", must be >= 1");
  if (window < 1 || window > height || window > width)
    fail("window = " + std::to_string(window) + " must lie in [1, min(height, width)]");
  if (batch * channels * height * width > std::numeric_limits<std::int32_t>::max())
    fail("N·C·H·W exceeds INT32_MAX (argmax holds int32 indices)");
}

}  // namespace

void maxpool2d_forward(const float* x, float* y, std::int32_t* argmax, std::int64_t batch,
                       std::int64_t channels, std::int64_t height, std::int64_t width,
                       std::int64_t window, void* stream) {
  check_pool_shape("cuda::maxpool2d_forward", batch, channels, height, width, window);
  const std::int64_t outputs = batch * channels * (height / window) * (width / window);
  if (outputs == 0) return;
  maxpool_forward_kernel<<<blocks_for(outputs), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, y, argmax, outputs, height, width, window);
  TROUPE_CUDA_CHECK_LAUNCH();
}

void maxpool2d_backward(const float* dy, const std::int32_t* argmax, float* dx, std::int64_t batch,
                        std::int64_t channels, std::int64_t height, std::int64_t width,
                        std::int64_t window, void* stream) {
  check_pool_shape("cuda::maxpool2d_backward", batch, channels, height, width, window);
  const std::int64_t total = batch * channels * height * width;
  const std::int64_t outputs = batch * channels * (height / window) * (width / window);
  if (total == 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  TROUPE_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<std::size_t>(total) * sizeof(float), s));
  maxpool_backward_kernel<<<blocks_for(outputs), kThreads, 0, s>>>(dy, argmax, dx, outputs, total);
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace troupe::cuda
