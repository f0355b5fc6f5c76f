// Dispatcher: RoutingPlan index maps handed to the permute kernels (see dispatcher.hpp).
#include "models/moe/dispatcher.hpp"

#include "kernels/permute.hpp"
#include "models/moe/tensor_checks.hpp"

namespace troupe {
namespace {

// Allocates `t` with `shape` when undefined, else checks it has that shape.
void prepare_output(const char* function, const char* name, Tensor& t, const Shape& shape) {
  if (!t.defined()) t = Tensor::empty(shape);
  check_shape(function, name, t, shape);
}

}  // namespace

Tensor permute_tokens(const Tensor& x, const RoutingPlan& plan) {
  const std::int64_t d = check_token_matrix("permute_tokens", "x", plan, x);
  Tensor rows = Tensor::empty({plan.rows(), d});
  cpu::permute_rows(x.data<float>(), plan.row_token.data(), plan.rows(), d, rows.data<float>());
  return rows;
}

void permute_tokens_backward(const Tensor& grad_rows, const RoutingPlan& plan, Tensor& grad_x) {
  const std::int64_t d = check_token_matrix("permute_tokens_backward", "grad_x", plan, grad_x);
  check_shape("permute_tokens_backward", "grad_rows", grad_rows, {plan.rows(), d});
  cpu::permute_rows_backward(grad_rows.data<float>(), plan.choice_row.data(), plan.tokens, plan.k,
                             d, grad_x.data<float>());
}

Tensor combine(const Tensor& expert_out, const RoutingPlan& plan) {
  check_plan("combine", plan);
  const std::int64_t d = expert_out.dim() == 2 ? expert_out.size(1) : 0;
  check_shape("combine", "expert_out", expert_out, {plan.rows(), d});
  Tensor out = Tensor::empty({plan.tokens, d});
  cpu::unpermute_combine(expert_out.data<float>(), plan.choice_row.data(), plan.weight.data(),
                         plan.tokens, plan.k, d, out.data<float>());
  return out;
}

void combine_backward(const Tensor& grad_out, const Tensor& expert_out, const RoutingPlan& plan,
                      Tensor& grad_expert_out, Tensor& grad_combine_weights) {
  const std::int64_t d = check_token_matrix("combine_backward", "grad_out", plan, grad_out);
  check_shape("combine_backward", "expert_out", expert_out, {plan.rows(), d});
  prepare_output("combine_backward", "grad_expert_out", grad_expert_out, {plan.rows(), d});
  prepare_output("combine_backward", "grad_combine_weights", grad_combine_weights,
                 {plan.tokens * plan.k});
  cpu::unpermute_combine_backward(
      grad_out.data<float>(), expert_out.data<float>(), plan.choice_row.data(), plan.weight.data(),
      plan.tokens, plan.k, d, grad_expert_out.data<float>(), grad_combine_weights.data<float>());
}

}  // namespace troupe
