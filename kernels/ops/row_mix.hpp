// Ops of the residual MoE mix (kernels/cpu/row_mix.hpp): x, a, b, g and out are [rows, cols],
// coef and grad_coef [rows, 2].
#pragma once

#include <cstdint>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// out = a · coef[:, 0] + b · coef[:, 1], row by row.
void row_mix_forward(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& coef,
                     const Tensor& out);
// out = x · coef[:, column], row by row (column 0 or 1).
void scale_rows_by_coefficient(const ExecContext& ctx, const Tensor& x, const Tensor& coef,
                               std::int64_t column, const Tensor& out);
// grad_coef[:, 0] = rowwise Σ g · a, grad_coef[:, 1] = rowwise Σ g · b.
void row_mix_coefficient_backward(const ExecContext& ctx, const Tensor& g, const Tensor& a,
                                  const Tensor& b, const Tensor& grad_coef);

}  // namespace troupe::ops
