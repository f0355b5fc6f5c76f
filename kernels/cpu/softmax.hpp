// Row-wise softmax over the last axis, in fp32, and its backward; top-k selection and its backward.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// y[r, :] = softmax(x[r, :]) for rows × cols; subtracts the row max first (stable), and divides
// each exp by the row sum (one rounding per entry, rather than a multiply by the rounded
// reciprocal). The row max's entry is exactly fl(1 / Σ exp(x − max)).
void softmax_forward(const float* x, float* y, std::int64_t rows, std::int64_t cols);
// dx = y ⊙ (dy − Σ_j dy_j y_j) per row (overwrites dx; dx may alias dy); y is the forward output.
void softmax_backward(const float* y, const float* dy, float* dx, std::int64_t rows,
                      std::int64_t cols);

// Indices and values of the k largest entries of each row, largest first; ties keep the lower
// index first. indices / values are [rows, k]. k outside [0, cols] throws std::invalid_argument.
void topk(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t k,
          std::int64_t* indices, float* values);
// dx [rows, cols] = 0 except dx[r, indices[r, j]] += dvalues[r, j]: the gradient of the values goes
// back to the entries topk chose, so among tied entries only the kept (lower-index) ones get one.
// k outside [0, cols] throws std::invalid_argument, an index outside [0, cols) std::out_of_range
// (both before dx is written).
void topk_backward(const std::int64_t* indices, const float* dvalues, std::int64_t rows,
                   std::int64_t cols, std::int64_t k, float* dx);

}  // namespace troupe::cpu
