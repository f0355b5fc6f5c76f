// Token permutation for Mixture-of-Experts dispatch and combine: gather token rows into
// expert-major order by index, and the weighted unpermute-combine back to token order, with their
// backwards. This replaces the reference's dense [S, E, C] dispatch/combine einsums: O(S·k·d) work.
//
// A routing is described by index maps: row_token[r] is the token whose row r is (r < R, the kept
// choices); choice_row[s·k + j] is the row of token s's j-th choice, −1 when that choice was
// dropped. Every kernel loops in a fixed order (by row, or by token then choice), so results are
// deterministic; the token-major loops also write each output row from one place only, which is
// what lets them run in parallel without atomics: with `threads` > 1 each kernel splits its outer
// loop (rows or tokens) over the intra-op pool, and every output element is still computed by one
// thread with the same arithmetic, so results do not depend on the thread count.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// out[r, :] = x[row_token[r], :] for r < rows.
void permute_rows(const float* x, const std::int64_t* row_token, std::int64_t rows,
                  std::int64_t width, float* out, int threads = 1);

// grad_x[s, :] += Σ_j grad_rows[choice_row[s·k + j], :], kept choices in order j = 0, 1, ….
void permute_rows_backward(const float* grad_rows, const std::int64_t* choice_row,
                           std::int64_t tokens, std::int64_t k, std::int64_t width, float* grad_x,
                           int threads = 1);

// out[s, :] = Σ_j weight[s·k + j] · rows[choice_row[s·k + j], :] over kept choices (overwrites; a
// token with every choice dropped gets 0).
void unpermute_combine(const float* rows, const std::int64_t* choice_row, const float* weight,
                       std::int64_t tokens, std::int64_t k, std::int64_t width, float* out,
                       int threads = 1);

// The backward of unpermute_combine (both outputs overwritten):
// grad_rows[choice_row[c], :] = weight[c] · grad_out[s, :], and
// grad_weight[c] = ⟨grad_out[s, :], rows[choice_row[c], :]⟩ (0 for a dropped choice).
void unpermute_combine_backward(const float* grad_out, const float* rows,
                                const std::int64_t* choice_row, const float* weight,
                                std::int64_t tokens, std::int64_t k, std::int64_t width,
                                float* grad_rows, float* grad_weight, int threads = 1);

}  // namespace troupe::cpu
