// Max-pooling on the GPU (see conv.hpp): one thread per output, the window scanned in row-major
// order with a strict comparison (the first maximum wins, as on the CPU). Windows do not overlap
// (stride = window), so the backward writes each input at most once: zero everything, then one
// thread per output adds its gradient at its argmax (0 + dy, as the CPU's += computes it: a −0
// gradient lands as +0 on both). bf16 compares and copies the same values (widened exactly to
// fp32 for the comparison and the addition to zero, rounded back exactly).
//
// Also the bf16 bias add and bias gradient of the cuDNN convolution (conv_cudnn.cpp).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/element_access.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/conv.hpp"
#include "kernels/cuda/reduce.cuh"

namespace troupe::cuda {
namespace {

constexpr int kThreads = 256;


template <class T>
__global__ void maxpool_forward_kernel(const T* x, T* y, std::int32_t* argmax, std::int64_t outputs,
                                       std::int64_t height, std::int64_t width,
                                       std::int64_t window) {
  const std::int64_t oh_n = height / window, ow_n = width / window;
  for (std::int64_t o = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       o < outputs; o += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t plane = o / (oh_n * ow_n), oh = o / ow_n % oh_n, ow = o % ow_n;
    const std::int64_t corner = plane * height * width + oh * window * width + ow * window;
    std::int64_t best = corner;
    for (std::int64_t i = 0; i < window; ++i)
      for (std::int64_t j = 0; j < window; ++j) {
        const std::int64_t at = corner + i * width + j;
        if (load(x, at) > load(x, best)) best = at;
      }
    y[o] = x[best];
    argmax[o] = static_cast<std::int32_t>(best);
  }
}

template <class T>
__global__ void maxpool_backward_kernel(const T* dy, const std::int32_t* argmax, T* dx,
                                        std::int64_t outputs, std::int64_t total) {
  for (std::int64_t o = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       o < outputs; o += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t at = argmax[o];
    if (at >= 0 && at < total) store(dx, at, __fadd_rn(load(dx, at), load(dy, o)));
  }
}

__global__ void bias_add_kernel(const __nv_bfloat16* bias, __nv_bfloat16* y, std::int64_t n,
                                std::int64_t channels, std::int64_t pixels) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    store(y, i, __fadd_rn(load(y, i), load(bias, i / pixels % channels)));
}

// One block per channel: the fp32 sum of dy over every image and pixel of that channel.
__global__ void bias_grad_kernel(const __nv_bfloat16* dy, __nv_bfloat16* dbias, std::int64_t batch,
                                 std::int64_t channels, std::int64_t pixels) {
  for (std::int64_t oc = blockIdx.x; oc < channels; oc += gridDim.x) {
    float sum = 0.0f;
    for (std::int64_t i = threadIdx.x; i < batch * pixels; i += blockDim.x) {
      const std::int64_t n = i / pixels, p = i % pixels;
      sum = __fadd_rn(sum, load(dy, (n * channels + oc) * pixels + p));
    }
    sum = detail::block_sum(sum);
    if (threadIdx.x == 0) store(dbias, oc, __fadd_rn(load(dbias, oc), sum));
  }
}

void check_dtype(const char* function, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument(std::string(function) + ": dtype " +
                                std::string(dtype_name(dtype)) + " not supported (f32 or bf16)");
}

template <class F>
void with_type(DType dtype, F&& f) {
  if (dtype == DType::bf16)
    f(static_cast<__nv_bfloat16*>(nullptr));
  else
    f(static_cast<float*>(nullptr));
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
  maxpool2d_forward(DType::f32, x, y, argmax, batch, channels, height, width, window, stream);
}

void maxpool2d_backward(const float* dy, const std::int32_t* argmax, float* dx, std::int64_t batch,
                        std::int64_t channels, std::int64_t height, std::int64_t width,
                        std::int64_t window, void* stream) {
  maxpool2d_backward(DType::f32, dy, argmax, dx, batch, channels, height, width, window, stream);
}

void maxpool2d_forward(DType dtype, const void* x, void* y, std::int32_t* argmax,
                       std::int64_t batch, std::int64_t channels, std::int64_t height,
                       std::int64_t width, std::int64_t window, void* stream) {
  check_dtype("cuda::maxpool2d_forward", dtype);
  check_pool_shape("cuda::maxpool2d_forward", batch, channels, height, width, window);
  const std::int64_t outputs = batch * channels * (height / window) * (width / window);
  if (outputs == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    maxpool_forward_kernel<<<blocks_for(outputs), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), static_cast<T*>(y), argmax, outputs, height, width, window);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void maxpool2d_backward(DType dtype, const void* dy, const std::int32_t* argmax, void* dx,
                        std::int64_t batch, std::int64_t channels, std::int64_t height,
                        std::int64_t width, std::int64_t window, void* stream) {
  check_dtype("cuda::maxpool2d_backward", dtype);
  check_pool_shape("cuda::maxpool2d_backward", batch, channels, height, width, window);
  const std::int64_t total = batch * channels * height * width;
  const std::int64_t outputs = batch * channels * (height / window) * (width / window);
  if (total == 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  const std::size_t element = dtype == DType::bf16 ? 2 : 4;
  TROUPE_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<std::size_t>(total) * element, s));
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    maxpool_backward_kernel<<<blocks_for(outputs), kThreads, 0, s>>>(
        static_cast<const T*>(dy), argmax, static_cast<T*>(dx), outputs, total);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

namespace detail {

void conv_bias_add_bf16(const void* bias, void* y, std::int64_t batch, std::int64_t channels,
                        std::int64_t pixels, void* stream) {
  const std::int64_t n = batch * channels * pixels;
  if (n == 0) return;
  bias_add_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __nv_bfloat16*>(bias), static_cast<__nv_bfloat16*>(y), n, channels, pixels);
  TROUPE_CUDA_CHECK_LAUNCH();
}

void conv_bias_grad_bf16(const void* dy, void* dbias, std::int64_t batch, std::int64_t channels,
                         std::int64_t pixels, void* stream) {
  if (channels == 0) return;
  bias_grad_kernel<<<static_cast<unsigned>(channels < 65535 ? channels : 65535), kThreads, 0,
                     static_cast<cudaStream_t>(stream)>>>(static_cast<const __nv_bfloat16*>(dy),
                                                          static_cast<__nv_bfloat16*>(dbias), batch,
                                                          channels, pixels);
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

}  // namespace troupe::cuda
