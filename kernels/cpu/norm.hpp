// LayerNorm and RMSNorm over the last axis, with saved statistics for the backward pass.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// y = (x − mean) · rstd · gamma + beta per row of width `cols`, rstd = 1 / sqrt(var + eps) with the
// biased variance (÷ cols); saves mean[rows] and rstd[rows]. rows > 0 with cols < 1 throws
// std::invalid_argument (as does rmsnorm_forward).
void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                       float* rstd, std::int64_t rows, std::int64_t cols, float eps);
// dx overwritten; dgamma, dbeta accumulated (+=).
void layernorm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                        const float* dy, float* dx, float* dgamma, float* dbeta, std::int64_t rows,
                        std::int64_t cols);

// y = x · rstd · gamma with rstd = 1 / sqrt(mean(x²) + eps); saves rstd[rows].
void rmsnorm_forward(const float* x, const float* gamma, float* y, float* rstd, std::int64_t rows,
                     std::int64_t cols, float eps);
// dx overwritten; dgamma accumulated (+=).
void rmsnorm_backward(const float* x, const float* gamma, const float* rstd, const float* dy,
                      float* dx, float* dgamma, std::int64_t rows, std::int64_t cols);

}  // namespace troupe::cpu
