// CPU reductions and element-wise helpers (see reduce.hpp).
#include "kernels/reduce.hpp"

#include <stdexcept>
#include <string>

namespace troupe::cpu {

double sum(const float* x, std::int64_t n) {
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += x[i];
  return total;
}

float max(const float* x, std::int64_t n) {
  if (n < 1) throw std::invalid_argument("max: n = " + std::to_string(n) + " must be at least 1");
  float best = x[0];
  for (std::int64_t i = 1; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

double squared_l2_norm(const float* x, std::int64_t n) {
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

void sum_rows(const float* x, float* out, std::int64_t rows, std::int64_t cols) {
  // Row-outer order keeps the inner loop contiguous in both x and out.
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) out[c] += xr[c];
  }
}

void scale(float* x, float factor, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) x[i] *= factor;
}

void axpy(float alpha, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void add(const float* a, const float* b, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace troupe::cpu
