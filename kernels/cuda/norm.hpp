// CUDA twins of kernels/cpu/norm.hpp's LayerNorm and RMSNorm, forward and backward, declared without
// CUDA headers (`stream` is a cudaStream_t). x, y, dy and dx are `dtype` (f32 or bf16, computed in
// fp32); gamma, beta, the saved statistics and the parameter gradients are always fp32.
//
// Agreement with the CPU (tests/gpu/norm_test.cpp): the per-row sums are reductions (double, in a
// tree rather than the CPU's chain), so mean, rstd and dx agree within the reduction bound and in
// practice to the last bit; everything element-wise after them uses the CPU's operation order with
// no FMA contraction. dgamma and dbeta are summed over rows in row order, one thread per column, so
// given the same saved statistics they match the CPU bit for bit (and are deterministic).
#pragma once

#include <cstdint>

#include "memory/dtype.hpp"

namespace troupe::cuda {

// cols ≥ 1 when rows > 0 (std::invalid_argument otherwise, as on the CPU).
void layernorm_forward(DType dtype, const void* x, const float* gamma, const float* beta, void* y,
                       float* mean, float* rstd, std::int64_t rows, std::int64_t cols, float eps,
                       void* stream);
// dx overwritten; dgamma, dbeta accumulated (+=).
void layernorm_backward(DType dtype, const void* x, const float* gamma, const float* mean,
                        const float* rstd, const void* dy, void* dx, float* dgamma, float* dbeta,
                        std::int64_t rows, std::int64_t cols, void* stream);

void rmsnorm_forward(DType dtype, const void* x, const float* gamma, void* y, float* rstd,
                     std::int64_t rows, std::int64_t cols, float eps, void* stream);
// dx overwritten; dgamma accumulated (+=).
void rmsnorm_backward(DType dtype, const void* x, const float* gamma, const float* rstd,
                      const void* dy, void* dx, float* dgamma, std::int64_t rows, std::int64_t cols,
                      void* stream);

}  // namespace troupe::cuda
