// CPU LayerNorm and RMSNorm (see norm.hpp). Statistics are two-pass (mean, then the centred second
// moment), which stays accurate when |mean| ≫ std, unlike E[x²] − E[x]². Row sums accumulate in
// double: without -ffast-math a float reduction does not vectorize either, so the serial add chain
// costs the same, and the mean of a row with a large offset keeps full fp32 accuracy.
#include "kernels/cpu/norm.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace troupe::cpu {
namespace {

void require_positive_cols(const char* function, std::int64_t rows, std::int64_t cols) {
  if (rows > 0 && cols < 1) {
    throw std::invalid_argument(std::string(function) + ": cols = " + std::to_string(cols) +
                                " must be at least 1 when rows > 0");
  }
}

}  // namespace

void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                       float* rstd, std::int64_t rows, std::int64_t cols, float eps) {
  require_positive_cols("layernorm_forward", rows, cols);
  const double inv_cols = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double total = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) total += xr[c];
    const auto m = static_cast<float>(total * inv_cols);
    double sq = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) sq += static_cast<double>(xr[c] - m) * (xr[c] - m);
    const auto s = static_cast<float>(1.0 / std::sqrt(sq * inv_cols + eps));
    for (std::int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * s * gamma[c] + beta[c];
    mean[r] = m;
    rstd[r] = s;
  }
}

// With x̂ = (x − mean)·rstd and g = dy ⊙ gamma:
//   dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)).
void layernorm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                        const float* dy, float* dx, float* dgamma, float* dbeta, std::int64_t rows,
                        std::int64_t cols) {
  const double inv_cols = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    float* dxr = dx + r * cols;
    const float m = mean[r], s = rstd[r];
    double g_sum = 0.0, gx_sum = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float xhat = (xr[c] - m) * s;
      const float g = dyr[c] * gamma[c];
      g_sum += g;
      gx_sum += g * xhat;
      dgamma[c] += dyr[c] * xhat;
      dbeta[c] += dyr[c];
    }
    const auto g_mean = static_cast<float>(g_sum * inv_cols);
    const auto gx_mean = static_cast<float>(gx_sum * inv_cols);
    for (std::int64_t c = 0; c < cols; ++c) {
      const float xhat = (xr[c] - m) * s;
      dxr[c] = s * (dyr[c] * gamma[c] - g_mean - xhat * gx_mean);
    }
  }
}

void rmsnorm_forward(const float* x, const float* gamma, float* y, float* rstd, std::int64_t rows,
                     std::int64_t cols, float eps) {
  require_positive_cols("rmsnorm_forward", rows, cols);
  const double inv_cols = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double sq = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) sq += static_cast<double>(xr[c]) * xr[c];
    const auto s = static_cast<float>(1.0 / std::sqrt(sq * inv_cols + eps));
    for (std::int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * s * gamma[c];
    rstd[r] = s;
  }
}

// With x̂ = x·rstd and g = dy ⊙ gamma: dx = rstd · (g − x̂ · mean(g ⊙ x̂)).
void rmsnorm_backward(const float* x, const float* gamma, const float* rstd, const float* dy,
                      float* dx, float* dgamma, std::int64_t rows, std::int64_t cols) {
  const double inv_cols = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    float* dxr = dx + r * cols;
    const float s = rstd[r];
    double gx_sum = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float xhat = xr[c] * s;
      gx_sum += dyr[c] * gamma[c] * xhat;
      dgamma[c] += dyr[c] * xhat;
    }
    const auto gx_mean = static_cast<float>(gx_sum * inv_cols);
    for (std::int64_t c = 0; c < cols; ++c) {
      dxr[c] = s * (dyr[c] * gamma[c] - xr[c] * s * gx_mean);
    }
  }
}

}  // namespace troupe::cpu
