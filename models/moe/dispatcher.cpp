// Dispatcher: RoutingPlan index maps handed to the permute kernels (see dispatcher.hpp).
#include "models/moe/dispatcher.hpp"

#include "kernels/ops/permute.hpp"
#include "models/moe/tensor_checks.hpp"

namespace troupe {
namespace {

// Allocates `t` with `shape` when undefined, else checks it has that shape.
void prepare_output(const char* function, const char* name, Tensor& t, const Shape& shape) {
  if (!t.defined()) t = Tensor::empty(shape);
  check_shape(function, name, t, shape);
}

}  // namespace

Tensor permute_tokens(const Tensor& x, const RoutingPlan& plan, const ExecContext& ctx) {
  const std::int64_t d = check_token_matrix("permute_tokens", "x", plan, x);
  Tensor rows = Tensor::empty({plan.rows(), d});
  ops::permute_rows(ctx, x, plan.row_token, rows);
  return rows;
}

void permute_tokens_backward(const Tensor& grad_rows, const RoutingPlan& plan, Tensor& grad_x,
                             const ExecContext& ctx) {
  const std::int64_t d = check_token_matrix("permute_tokens_backward", "grad_x", plan, grad_x);
  check_shape("permute_tokens_backward", "grad_rows", grad_rows, {plan.rows(), d});
  ops::permute_rows_backward(ctx, grad_rows, plan.choice_row, plan.k, grad_x);
}

Tensor combine(const Tensor& expert_out, const RoutingPlan& plan, const ExecContext& ctx) {
  check_plan("combine", plan);
  const std::int64_t d = expert_out.dim() == 2 ? expert_out.size(1) : 0;
  check_shape("combine", "expert_out", expert_out, {plan.rows(), d});
  Tensor out = Tensor::empty({plan.tokens, d});
  ops::unpermute_combine(ctx, expert_out, plan.choice_row, plan.weight, plan.k, out);
  return out;
}

void combine_backward(const Tensor& grad_out, const Tensor& expert_out, const RoutingPlan& plan,
                      Tensor& grad_expert_out, Tensor& grad_combine_weights,
                      const ExecContext& ctx) {
  const std::int64_t d = check_token_matrix("combine_backward", "grad_out", plan, grad_out);
  check_shape("combine_backward", "expert_out", expert_out, {plan.rows(), d});
  prepare_output("combine_backward", "grad_expert_out", grad_expert_out, {plan.rows(), d});
  prepare_output("combine_backward", "grad_combine_weights", grad_combine_weights,
                 {plan.tokens * plan.k});
  ops::unpermute_combine_backward(ctx, grad_out, expert_out, plan.choice_row, plan.weight, plan.k,
                                  grad_expert_out, grad_combine_weights);
}

}  // namespace troupe
