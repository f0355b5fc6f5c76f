// Ops for MoE token permutation: gather token rows into expert-major order, the weighted
// unpermute-combine back to token order, and their backwards (kernels/cpu/permute.hpp has the
// index-map conventions). Token matrices are [tokens, width], row matrices [rows, width]; the
// index maps and combine weights are host data, as the routing plan keeps them.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// out[r, :] = x[row_token[r], :] (out overwritten, rows = row_token.size()).
void permute_rows(const ExecContext& ctx, const Tensor& x, std::span<const std::int64_t> row_token,
                  const Tensor& out);
// grad_x[s, :] += Σ_j grad_rows[choice_row[s·k + j], :] over kept choices (accumulates).
void permute_rows_backward(const ExecContext& ctx, const Tensor& grad_rows,
                           std::span<const std::int64_t> choice_row, std::int64_t k,
                           const Tensor& grad_x);
// out[s, :] = Σ_j weight[c] · rows[choice_row[c], :], c = s·k + j (overwritten).
void unpermute_combine(const ExecContext& ctx, const Tensor& rows,
                       std::span<const std::int64_t> choice_row, std::span<const float> weight,
                       std::int64_t k, const Tensor& out);
// grad_rows and grad_weight (S·k elements) overwritten.
void unpermute_combine_backward(const ExecContext& ctx, const Tensor& grad_out, const Tensor& rows,
                                std::span<const std::int64_t> choice_row,
                                std::span<const float> weight, std::int64_t k,
                                const Tensor& grad_rows, const Tensor& grad_weight);

}  // namespace troupe::ops
