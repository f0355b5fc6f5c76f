// MoELayer: the pieces composed (see moe_layer.hpp).
#include "models/moe/moe_layer.hpp"

#include <stdexcept>
#include <utility>

#include "kernels/ops/gemm.hpp"
#include "kernels/ops/reduce.hpp"
#include "kernels/ops/row_mix.hpp"
#include "kernels/ops/softmax.hpp"
#include "models/moe/dispatcher.hpp"
#include "models/moe/moe_init.hpp"
#include "models/moe/tensor_checks.hpp"

namespace troupe {

MoELayer::MoELayer(const MoEConfig& config, std::uint64_t init_seed, const std::string& prefix,
                   std::int64_t ep_rank)
    : config_(config),
      router_(config, init_seed, prefix),
      experts_(config, init_seed, prefix, ep_rank) {
  if (!config_.use_residual) return;
  const std::int64_t d = config_.hidden_size;
  residual_mlp_.emplace(Experts::residual_mlp(config_, init_seed, prefix));
  coefficient_weight_ = make_parameter(prefix + ".coefficient.weight", {2, d}, false);
  coefficient_bias_ = make_parameter(prefix + ".coefficient.bias", {2}, false);
  init_linear_uniform(coefficient_weight_.value.data<float>(), 2 * d, d, init_seed,
                      InitFamily::coefficient, 0, 0);
  init_linear_uniform(coefficient_bias_.value.data<float>(), 2, d, init_seed,
                      InitFamily::coefficient, 0, 1);
}

std::vector<Parameter*> MoELayer::parameters() {
  std::vector<Parameter*> params{&router_.weight()};
  for (Parameter* p : experts_.parameters()) params.push_back(p);
  if (residual_mlp_) {
    for (Parameter* p : residual_mlp_->parameters()) params.push_back(p);
    params.push_back(&coefficient_weight_);
    params.push_back(&coefficient_bias_);
  }
  return params;
}

MoEOutput MoELayer::forward(const Tensor& x, bool training, NoiseSource& noise,
                            MoEForwardState& st) const {
  if (config_.ep_size != 1)
    throw std::invalid_argument(
        "MoELayer::forward: ep_size = " + std::to_string(config_.ep_size) +
        " but one process holds only its local experts; run the pieces (route, permute, "
        "experts, finish_forward) across the expert-parallel group instead");
  RoutingPlan plan = router_.route(x, training, noise);
  const Tensor rows = permute_tokens(x, plan, ctx_);
  const Tensor expert_out =
      experts_.forward(0, experts_.count(), rows, plan.expert_offsets, st.experts);
  return finish_forward(x, std::move(plan), expert_out, st);
}

Tensor MoELayer::backward(const Tensor& grad_out, float grad_l_aux, const Tensor& x,
                          MoEForwardState& st) {
  const Tensor grad_expert_out = begin_backward(grad_out, x, st);
  const Tensor grad_rows = experts_.backward(0, experts_.count(), grad_expert_out, st.experts);
  return end_backward(grad_rows, grad_l_aux, x, st);
}

MoEOutput MoELayer::finish_forward(const Tensor& x, RoutingPlan plan, const Tensor& expert_out,
                                   MoEForwardState& st) const {
  const std::int64_t S = check_plan_input("MoELayer::finish_forward", plan, x, config_.hidden_size);
  const std::int64_t d = config_.hidden_size;
  st.plan = std::move(plan);
  st.expert_out = expert_out;
  MoEOutput result{combine(expert_out, st.plan, ctx_), st.plan.l_aux, st.plan.exp_counts};
  if (!residual_mlp_) return result;

  // out = moe(x) · c₀ + mlp(x) · c₁ with [c₀, c₁] = softmax(Linear(d, 2)(x)).
  st.moe_out = result.output;
  st.residual_out = residual_mlp_->forward(0, 1, x, {0, S}, st.residual);
  Tensor logits = Tensor::empty({S, 2});
  ops::linear_forward(ctx_, x, coefficient_weight_.value, coefficient_bias_.value, logits);
  st.coefficient = Tensor::empty({S, 2});
  ops::softmax_forward(ctx_, logits, st.coefficient);
  result.output = Tensor::empty({S, d});
  ops::row_mix_forward(ctx_, st.moe_out, st.residual_out, st.coefficient, result.output);
  return result;
}

Tensor MoELayer::begin_backward(const Tensor& grad_out, const Tensor& x,
                                MoEForwardState& st) const {
  const std::int64_t S =
      check_plan_input("MoELayer::begin_backward", st.plan, x, config_.hidden_size);
  const std::int64_t d = config_.hidden_size;
  check_shape("MoELayer::begin_backward", "grad_out", grad_out, {S, d});
  st.grad_out = grad_out;
  Tensor grad_moe = grad_out;
  if (residual_mlp_) {
    grad_moe = Tensor::empty({S, d});
    ops::scale_rows_by_coefficient(ctx_, grad_out, st.coefficient, 0, grad_moe);
  }
  Tensor grad_expert_out;
  st.grad_combine_weights = Tensor();
  combine_backward(grad_moe, st.expert_out, st.plan, grad_expert_out, st.grad_combine_weights,
                   ctx_);
  return grad_expert_out;
}

Tensor MoELayer::end_backward(const Tensor& grad_rows, float grad_l_aux, const Tensor& x,
                              MoEForwardState& st) {
  const std::int64_t S =
      check_plan_input("MoELayer::end_backward", st.plan, x, config_.hidden_size);
  const std::int64_t d = config_.hidden_size;
  if (!st.grad_combine_weights.defined())
    throw std::invalid_argument("MoELayer::end_backward: call begin_backward first");
  Tensor grad_x = Tensor::zeros({S, d});
  permute_tokens_backward(grad_rows, st.plan, grad_x, ctx_);
  router_.backward(st.plan, x, st.grad_combine_weights, grad_l_aux, grad_x);
  if (!residual_mlp_) return grad_x;

  // Residual MoE: gradients of the mix weights (through the 2-way softmax into the coefficient
  // layer) and of the dense mlp, which sees grad_out · c₁.
  Tensor grad_c = Tensor::empty({S, 2});
  ops::row_mix_coefficient_backward(ctx_, st.grad_out, st.moe_out, st.residual_out, grad_c);
  Tensor grad_mlp = Tensor::empty({S, d});
  ops::scale_rows_by_coefficient(ctx_, st.grad_out, st.coefficient, 1, grad_mlp);
  Tensor grad_logits = Tensor::empty({S, 2});
  ops::softmax_backward(ctx_, st.coefficient, grad_c, grad_logits);
  Tensor grad_x_coef = Tensor::empty({S, d});
  ops::linear_backward(ctx_, x, coefficient_weight_.value, grad_logits, grad_x_coef,
                       coefficient_weight_.grad, coefficient_bias_.grad);
  ops::axpy(ctx_, 1.0f, grad_x_coef, grad_x);
  ops::axpy(ctx_, 1.0f, residual_mlp_->backward(0, 1, grad_mlp, st.residual), grad_x);
  return grad_x;
}

}  // namespace troupe
