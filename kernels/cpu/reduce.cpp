// CPU reductions and element-wise helpers (see reduce.hpp).
#include "kernels/cpu/reduce.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace troupe::cpu {
namespace {

// One selection rule for max and max_backward, so the gradient lands on the element whose value
// max returned: strict > keeps the first of equal maxima and never moves onto a NaN.
std::int64_t first_argmax(const char* function, const float* x, std::int64_t n) {
  if (n < 1)
    throw std::invalid_argument(std::string(function) + ": n = " + std::to_string(n) +
                                " must be at least 1");
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < n; ++i) best = x[i] > x[best] ? i : best;
  return best;
}

}  // namespace

double sum(const float* x, std::int64_t n) {
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += x[i];
  return total;
}

void sum_backward(double dout, float* dx, std::int64_t n) {
  const auto grad = static_cast<float>(dout);
  for (std::int64_t i = 0; i < n; ++i) dx[i] = grad;
}

float max(const float* x, std::int64_t n) {
  return x[first_argmax("max", x, n)];
}

void max_backward(const float* x, float dout, float* dx, std::int64_t n) {
  const std::int64_t best = first_argmax("max_backward", x, n);
  for (std::int64_t i = 0; i < n; ++i) dx[i] = 0.0f;
  dx[best] = dout;
}

double squared_l2_norm(const float* x, std::int64_t n) {
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

void squared_l2_norm_backward(const float* x, double dout, float* dx, std::int64_t n) {
  const double twice_dout = 2.0 * dout;
  for (std::int64_t i = 0; i < n; ++i) dx[i] = static_cast<float>(twice_dout * x[i]);
}

void sum_rows(const float* x, float* out, std::int64_t rows, std::int64_t cols) {
  // Row-outer order keeps the inner loop contiguous in both x and out.
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) out[c] += xr[c];
  }
}

void sum_rows_backward(const float* dout, float* dx, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) std::copy_n(dout, cols, dx + r * cols);
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

void mul(const float* a, const float* b, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

void mul_add(const float* a, const float* b, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += a[i] * b[i];
}

}  // namespace troupe::cpu
