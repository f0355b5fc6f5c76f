// CPU row softmax, top-k selection and their backwards (see softmax.hpp). One pass per quantity
// over a contiguous row; no allocation, so these stay cheap inside attention and the MoE gate.
#include "kernels/cpu/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace troupe::cpu {

void softmax_forward(const float* x, float* y, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float row_max = -INFINITY;
    for (std::int64_t c = 0; c < cols; ++c) row_max = xr[c] > row_max ? xr[c] : row_max;
    float total = 0.0f;
    for (std::int64_t c = 0; c < cols; ++c) {
      yr[c] = std::exp(xr[c] - row_max);
      total += yr[c];
    }
    // Division, not a multiply by 1 / total: one rounding instead of two, and the rounding the MoE
    // gate was built and tested with. The gate picks experts by argmax over these values (ties to
    // the lower index), so a 1-ulp change in rounding can change which expert a token goes to.
    for (std::int64_t c = 0; c < cols; ++c) yr[c] /= total;
  }
}

void softmax_backward(const float* y, const float* dy, float* dx, std::int64_t rows,
                      std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    float* dxr = dx + r * cols;
    float dot = 0.0f;
    for (std::int64_t c = 0; c < cols; ++c) dot += dyr[c] * yr[c];
    // dot is complete before dx is written, so dx may alias dy.
    for (std::int64_t c = 0; c < cols; ++c) dxr[c] = yr[c] * (dyr[c] - dot);
  }
}

namespace {

void check_k(const char* function, std::int64_t k, std::int64_t cols) {
  if (k < 0 || k > cols) {
    throw std::invalid_argument(std::string(function) + ": k = " + std::to_string(k) +
                                " must lie in [0, cols = " + std::to_string(cols) + "]");
  }
}

}  // namespace

void topk(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t k,
          std::int64_t* indices, float* values) {
  check_k("topk", k, cols);
  if (k == 0) return;
  // Insertion into the sorted output row: O(cols·k), which beats a sort for the small k of MoE
  // gating (1–2 of a few dozen experts). A new value goes behind every equal one already kept, and
  // an equal value never displaces a kept one, so ties keep the lower index first.
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    std::int64_t* ir = indices + r * k;
    float* vr = values + r * k;
    std::int64_t kept = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float v = xr[c];
      if (kept == k && !(v > vr[k - 1])) continue;
      std::int64_t pos = kept < k ? kept++ : k - 1;
      for (; pos > 0 && vr[pos - 1] < v; --pos) {
        vr[pos] = vr[pos - 1];
        ir[pos] = ir[pos - 1];
      }
      vr[pos] = v;
      ir[pos] = c;
    }
  }
}

void topk_backward(const std::int64_t* indices, const float* dvalues, std::int64_t rows,
                   std::int64_t cols, std::int64_t k, float* dx) {
  check_k("topk_backward", k, cols);
  for (std::int64_t i = 0; i < rows * k; ++i) {
    if (indices[i] < 0 || indices[i] >= cols) {
      throw std::out_of_range("topk_backward: indices[" + std::to_string(i) +
                              "] = " + std::to_string(indices[i]) +
                              " is outside [0, cols = " + std::to_string(cols) + ")");
    }
  }
  std::fill_n(dx, rows * cols, 0.0f);
  // += so that a repeated index (not something topk produces) still sums its gradients.
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < k; ++j) dx[r * cols + indices[r * k + j]] += dvalues[r * k + j];
}

}  // namespace troupe::cpu
