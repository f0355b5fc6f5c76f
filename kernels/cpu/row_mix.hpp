// Residual MoE's per-token two-way mix (DeepSpeed's use_residual): out = a · c₀ + b · c₁, where
// [c₀, c₁] is the token's row of a [rows, 2] coefficient matrix (a softmax over two logits), and
// the pieces of its backward. Rows are independent, so with `threads` > 1 they are split over the
// intra-op pool with results bit-identical to one thread.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// out[r, i] = a[r, i] · coef[r, 0] + b[r, i] · coef[r, 1]
void row_mix_forward(const float* a, const float* b, const float* coef, float* out,
                     std::int64_t rows, std::int64_t cols, int threads = 1);
// out[r, i] = x[r, i] · coef[r, column]: the gradient reaching a or b (column 0 or 1).
void scale_rows_by_coefficient(const float* x, const float* coef, std::int64_t column, float* out,
                               std::int64_t rows, std::int64_t cols, int threads = 1);
// grad_coef[r, 0] = Σ_i g[r, i] · a[r, i], grad_coef[r, 1] = Σ_i g[r, i] · b[r, i], each summed in
// fp32 in index order.
void row_mix_coefficient_backward(const float* g, const float* a, const float* b, float* grad_coef,
                                  std::int64_t rows, std::int64_t cols, int threads = 1);

}  // namespace troupe::cpu
