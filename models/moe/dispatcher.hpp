// The MoE dispatcher: moves token rows into the expert-major permuted buffer a RoutingPlan
// describes and combines expert outputs back into token order, with both backwards (Megatron's
// token dispatcher, without the communication step, which the actor runtime adds between them).
// Work is O(S·k·d): no dense [S, E, C] dispatch or combine tensors.
#pragma once

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"
#include "models/moe/routing_plan.hpp"

namespace troupe {

// x: (S, d) → (R, d): row r is x[plan.row_token[r]]; experts' rows are contiguous, in expert order.
Tensor permute_tokens(const Tensor& x, const RoutingPlan& plan,
                      const ExecContext& ctx = cpu_context());

// grad_x (S, d) += the rows of grad_rows (R, d) summed back onto their tokens.
void permute_tokens_backward(const Tensor& grad_rows, const RoutingPlan& plan, Tensor& grad_x,
                             const ExecContext& ctx = cpu_context());

// expert_out: (R, d) → (S, d): out[s] = Σ over kept choices c of s of weight[c] ·
// expert_out[row(c)]; a token whose choices were all dropped gets 0.
Tensor combine(const Tensor& expert_out, const RoutingPlan& plan,
               const ExecContext& ctx = cpu_context());

// Overwrites grad_expert_out (R, d) and grad_combine_weights (S·k), allocating them when undefined.
void combine_backward(const Tensor& grad_out, const Tensor& expert_out, const RoutingPlan& plan,
                      Tensor& grad_expert_out, Tensor& grad_combine_weights,
                      const ExecContext& ctx = cpu_context());

}  // namespace troupe
