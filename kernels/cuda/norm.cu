// LayerNorm and RMSNorm on the GPU (see norm.hpp). Row kernels: one block per row (grid-stride),
// the row sums in double through detail::block_sum, then the element-wise part in the CPU's order
// with explicitly rounded operations (__fmul_rn and friends are never fused into an FMA; the
// double arithmetic likewise, since nvcc would otherwise contract sq · inv_cols + eps).
// Parameter gradients: one thread per column walking the rows in order, as the CPU does.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/element_access.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/norm.hpp"
#include "kernels/cuda/reduce.cuh"

namespace troupe::cuda {
namespace {

constexpr int kRowThreads = 256;
constexpr int kColumnThreads = 128;


// float(1 / sqrt(sq · inv_cols + eps)), every double operation rounded as the CPU rounds it.
__device__ float inverse_std(double sq, double inv_cols, float eps) {
  return static_cast<float>(
      __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(__dmul_rn(sq, inv_cols), static_cast<double>(eps)))));
}

template <class T>
__global__ void layernorm_forward_kernel(const T* x, const float* gamma, const float* beta, T* y,
                                         float* mean, float* rstd, std::int64_t rows,
                                         std::int64_t cols, double inv_cols, float eps) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    double total = 0.0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) total += load(xr, c);
    const auto m = static_cast<float>(__dmul_rn(detail::block_sum(total), inv_cols));
    double sq = 0.0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const double d = __fsub_rn(load(xr, c), m);
      sq = __dadd_rn(sq, __dmul_rn(d, d));
    }
    const float s = inverse_std(detail::block_sum(sq), inv_cols, eps);
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      store(yr, c,
            __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(load(xr, c), m), s), gamma[c]), beta[c]));
    if (threadIdx.x == 0) mean[r] = m, rstd[r] = s;
  }
}

template <class T>
__global__ void layernorm_backward_kernel(const T* x, const float* gamma, const float* mean,
                                          const float* rstd, const T* dy, T* dx, std::int64_t rows,
                                          std::int64_t cols, double inv_cols) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const float m = mean[r], s = rstd[r];
    double g_sum = 0.0, gx_sum = 0.0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xhat = __fmul_rn(__fsub_rn(load(xr, c), m), s);
      const float g = __fmul_rn(load(dyr, c), gamma[c]);
      g_sum += g;
      gx_sum += __fmul_rn(g, xhat);
    }
    const auto g_mean = static_cast<float>(__dmul_rn(detail::block_sum(g_sum), inv_cols));
    const auto gx_mean = static_cast<float>(__dmul_rn(detail::block_sum(gx_sum), inv_cols));
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xhat = __fmul_rn(__fsub_rn(load(xr, c), m), s);
      const float inner =
          __fsub_rn(__fsub_rn(__fmul_rn(load(dyr, c), gamma[c]), g_mean), __fmul_rn(xhat, gx_mean));
      store(dx + r * cols, c, __fmul_rn(s, inner));
    }
  }
}

// dgamma[c] += Σ_r dy·x̂ and dbeta[c] += Σ_r dy in row order (mean null: RMSNorm, x̂ = x·rstd).
template <class T>
__global__ void norm_params_backward_kernel(const T* x, const float* mean, const float* rstd,
                                            const T* dy, float* dgamma, float* dbeta,
                                            std::int64_t rows, std::int64_t cols) {
  const std::int64_t c = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  float dg = dgamma[c], db = dbeta ? dbeta[c] : 0.0f;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float xc = load(x, r * cols + c);
    const float xhat = mean ? __fmul_rn(__fsub_rn(xc, mean[r]), rstd[r]) : __fmul_rn(xc, rstd[r]);
    const float d = load(dy, r * cols + c);
    dg = __fadd_rn(dg, __fmul_rn(d, xhat));
    db = __fadd_rn(db, d);
  }
  dgamma[c] = dg;
  if (dbeta) dbeta[c] = db;
}

template <class T>
__global__ void rmsnorm_forward_kernel(const T* x, const float* gamma, T* y, float* rstd,
                                       std::int64_t rows, std::int64_t cols, double inv_cols,
                                       float eps) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    double sq = 0.0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const double v = load(xr, c);
      sq = __dadd_rn(sq, __dmul_rn(v, v));
    }
    const float s = inverse_std(detail::block_sum(sq), inv_cols, eps);
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      store(y + r * cols, c, __fmul_rn(__fmul_rn(load(xr, c), s), gamma[c]));
    if (threadIdx.x == 0) rstd[r] = s;
  }
}

template <class T>
__global__ void rmsnorm_backward_kernel(const T* x, const float* gamma, const float* rstd,
                                        const T* dy, T* dx, std::int64_t rows, std::int64_t cols,
                                        double inv_cols) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const float s = rstd[r];
    double gx_sum = 0.0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      gx_sum += __fmul_rn(__fmul_rn(load(dyr, c), gamma[c]), __fmul_rn(load(xr, c), s));
    const auto gx_mean = static_cast<float>(__dmul_rn(detail::block_sum(gx_sum), inv_cols));
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float inner = __fsub_rn(__fmul_rn(load(dyr, c), gamma[c]),
                                    __fmul_rn(__fmul_rn(load(xr, c), s), gx_mean));
      store(dx + r * cols, c, __fmul_rn(s, inner));
    }
  }
}

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

unsigned row_blocks(std::int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
}

unsigned column_blocks(std::int64_t cols) {
  return static_cast<unsigned>((cols + kColumnThreads - 1) / kColumnThreads);
}

void check(const char* function, DType dtype, std::int64_t rows, std::int64_t cols) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument(std::string(function) + ": dtype " +
                                std::string(dtype_name(dtype)) + " not supported (f32 or bf16)");
  if (rows < 0 || (rows > 0 && cols < 1))
    throw std::invalid_argument(std::string(function) + ": rows = " + std::to_string(rows) +
                                ", cols = " + std::to_string(cols) +
                                " (cols must be at least 1 when rows > 0)");
}

// Calls f with the element type of dtype (float or __nv_bfloat16).
template <class F>
void with_type(DType dtype, F f) {
  if (dtype == DType::f32)
    f(static_cast<float*>(nullptr));
  else
    f(static_cast<__nv_bfloat16*>(nullptr));
}

}  // namespace

void layernorm_forward(DType dtype, const void* x, const float* gamma, const float* beta, void* y,
                       float* mean, float* rstd, std::int64_t rows, std::int64_t cols, float eps,
                       void* stream) {
  check("cuda::layernorm_forward", dtype, rows, cols);
  if (rows == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    layernorm_forward_kernel<<<row_blocks(rows), kRowThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), gamma, beta, static_cast<T*>(y), mean, rstd, rows, cols,
        1.0 / static_cast<double>(cols), eps);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void layernorm_backward(DType dtype, const void* x, const float* gamma, const float* mean,
                        const float* rstd, const void* dy, void* dx, float* dgamma, float* dbeta,
                        std::int64_t rows, std::int64_t cols, void* stream) {
  check("cuda::layernorm_backward", dtype, rows, cols);
  if (rows == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* xt = static_cast<const T*>(x);
    const T* dyt = static_cast<const T*>(dy);
    layernorm_backward_kernel<<<row_blocks(rows), kRowThreads, 0, as_stream(stream)>>>(
        xt, gamma, mean, rstd, dyt, static_cast<T*>(dx), rows, cols,
        1.0 / static_cast<double>(cols));
    TROUPE_CUDA_CHECK_LAUNCH();
    norm_params_backward_kernel<<<column_blocks(cols), kColumnThreads, 0, as_stream(stream)>>>(
        xt, mean, rstd, dyt, dgamma, dbeta, rows, cols);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void rmsnorm_forward(DType dtype, const void* x, const float* gamma, void* y, float* rstd,
                     std::int64_t rows, std::int64_t cols, float eps, void* stream) {
  check("cuda::rmsnorm_forward", dtype, rows, cols);
  if (rows == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    rmsnorm_forward_kernel<<<row_blocks(rows), kRowThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), gamma, static_cast<T*>(y), rstd, rows, cols,
        1.0 / static_cast<double>(cols), eps);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(DType dtype, const void* x, const float* gamma, const float* rstd,
                      const void* dy, void* dx, float* dgamma, std::int64_t rows, std::int64_t cols,
                      void* stream) {
  check("cuda::rmsnorm_backward", dtype, rows, cols);
  if (rows == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* xt = static_cast<const T*>(x);
    const T* dyt = static_cast<const T*>(dy);
    rmsnorm_backward_kernel<<<row_blocks(rows), kRowThreads, 0, as_stream(stream)>>>(
        xt, gamma, rstd, dyt, static_cast<T*>(dx), rows, cols, 1.0 / static_cast<double>(cols));
    TROUPE_CUDA_CHECK_LAUNCH();
    norm_params_backward_kernel<<<column_blocks(cols), kColumnThreads, 0, as_stream(stream)>>>(
        xt, nullptr, rstd, dyt, dgamma, nullptr, rows, cols);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace troupe::cuda
