// CPU permutation kernels (see permute.hpp): plain row copies and axpys in a fixed loop order,
// the outer loop split over the intra-op pool.
#include "kernels/cpu/permute.hpp"

#include <algorithm>

#include "kernels/cpu/intra_op_pool.hpp"

namespace troupe::cpu {
namespace {

// Outer iterations per chunk worth waking a thread for: a chunk should move ≳ 256 KiB.
std::int64_t row_grain(std::int64_t width) {
  return std::max<std::int64_t>(1, (64 * 1024) / std::max<std::int64_t>(width, 1));
}

}  // namespace

void permute_rows(const float* x, const std::int64_t* row_token, std::int64_t rows,
                  std::int64_t width, float* out, int threads) {
  parallel_for(rows, row_grain(width), threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r)
      std::copy_n(x + row_token[r] * width, width, out + r * width);
  });
}

void permute_rows_backward(const float* grad_rows, const std::int64_t* choice_row,
                           std::int64_t tokens, std::int64_t k, std::int64_t width, float* grad_x,
                           int threads) {
  parallel_for(tokens, row_grain(width * k), threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t s = begin; s < end; ++s) {
      float* dx = grad_x + s * width;
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t row = choice_row[s * k + j];
        if (row < 0) continue;
        const float* dr = grad_rows + row * width;
        for (std::int64_t i = 0; i < width; ++i) dx[i] += dr[i];
      }
    }
  });
}

void unpermute_combine(const float* rows, const std::int64_t* choice_row, const float* weight,
                       std::int64_t tokens, std::int64_t k, std::int64_t width, float* out,
                       int threads) {
  parallel_for(tokens, row_grain(width * k), threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t s = begin; s < end; ++s) {
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
  });
}

void unpermute_combine_backward(const float* grad_out, const float* rows,
                                const std::int64_t* choice_row, const float* weight,
                                std::int64_t tokens, std::int64_t k, std::int64_t width,
                                float* grad_rows, float* grad_weight, int threads) {
  parallel_for(tokens, row_grain(width * k), threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t s = begin; s < end; ++s) {
      const float* dy = grad_out + s * width;
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t c = s * k + j, row = choice_row[c];
        if (row < 0) {
          grad_weight[c] = 0.0f;
          continue;
        }
        const float* x = rows + row * width;
        float* dx = grad_rows + row * width;
        const float w = weight[c];
        for (std::int64_t i = 0; i < width; ++i) dx[i] = w * dy[i];
        // A separate pass so the scale above vectorises; the dot keeps its sequential order.
        float dot = 0.0f;
        for (std::int64_t i = 0; i < width; ++i) dot += dy[i] * x[i];
        grad_weight[c] = dot;
      }
    }
  });
}

}  // namespace troupe::cpu
