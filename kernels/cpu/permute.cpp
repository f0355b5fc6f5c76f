// CPU permutation kernels (see permute.hpp): plain row copies and axpys in a fixed loop order.
#include "kernels/cpu/permute.hpp"

#include <algorithm>

namespace troupe::cpu {

void permute_rows(const float* x, const std::int64_t* row_token, std::int64_t rows,
                  std::int64_t width, float* out) {
  for (std::int64_t r = 0; r < rows; ++r)
    std::copy_n(x + row_token[r] * width, width, out + r * width);
}

void permute_rows_backward(const float* grad_rows, const std::int64_t* choice_row,
                           std::int64_t tokens, std::int64_t k, std::int64_t width, float* grad_x) {
  for (std::int64_t s = 0; s < tokens; ++s) {
    float* dx = grad_x + s * width;
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t row = choice_row[s * k + j];
      if (row < 0) continue;
      const float* dr = grad_rows + row * width;
      for (std::int64_t i = 0; i < width; ++i) dx[i] += dr[i];
    }
  }
}

void unpermute_combine(const float* rows, const std::int64_t* choice_row, const float* weight,
                       std::int64_t tokens, std::int64_t k, std::int64_t width, float* out) {
  for (std::int64_t s = 0; s < tokens; ++s) {
    float* y = out + s * width;
    std::fill_n(y, width, 0.0f);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t row = choice_row[s * k + j];
      if (row < 0) continue;
      const float w = weight[s * k + j];
      const float* x = rows + row * width;
      for (std::int64_t i = 0; i < width; ++i) y[i] += w * x[i];
    }
  }
}

void unpermute_combine_backward(const float* grad_out, const float* rows,
                                const std::int64_t* choice_row, const float* weight,
                                std::int64_t tokens, std::int64_t k, std::int64_t width,
                                float* grad_rows, float* grad_weight) {
  for (std::int64_t s = 0; s < tokens; ++s) {
    const float* dy = grad_out + s * width;
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t c = s * k + j, row = choice_row[c];
      if (row < 0) {
        grad_weight[c] = 0.0f;
        continue;
      }
      const float* x = rows + row * width;
      float* dx = grad_rows + row * width;
      float dot = 0.0f;
      for (std::int64_t i = 0; i < width; ++i) {
        dot += dy[i] * x[i];
        dx[i] = weight[c] * dy[i];
      }
      grad_weight[c] = dot;
    }
  }
}

}  // namespace troupe::cpu
