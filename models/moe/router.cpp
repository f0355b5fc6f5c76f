// Router: gate logits, gating kernels, and the index maps of the permuted buffer (see router.hpp).
#include "models/moe/router.hpp"

#include <algorithm>
#include <stdexcept>

#include "kernels/ops/gating.hpp"
#include "kernels/ops/gemm.hpp"
#include "kernels/ops/reduce.hpp"
#include "models/moe/moe_init.hpp"
#include "models/moe/tensor_checks.hpp"

namespace troupe {
namespace {

constexpr float kJitterEps = 0.01f;  // DeepSpeed's multiplicative_jitter epsilon

Tensor jittered(const ExecContext& ctx, const Tensor& x, const Tensor& jitter) {
  Tensor out = Tensor::empty(x.shape());
  ops::mul(ctx, x, jitter, out);
  return out;
}

// Rows of the permuted buffer: expert-major, and within an expert by slot.
void index_rows(RoutingPlan& plan, const std::vector<std::int64_t>& slot) {
  plan.expert_offsets.assign(static_cast<std::size_t>(plan.experts) + 1, 0);
  for (std::int64_t e = 0; e < plan.experts; ++e)
    plan.expert_offsets[e + 1] = plan.expert_offsets[e] + plan.tokens_per_expert[e];
  const std::int64_t choices = plan.tokens * plan.k;
  plan.choice_row.assign(static_cast<std::size_t>(choices), -1);
  plan.row_token.assign(static_cast<std::size_t>(plan.rows()), 0);
  plan.row_choice.assign(static_cast<std::size_t>(plan.rows()), 0);
  for (std::int64_t c = 0; c < choices; ++c) {
    if (slot[c] < 0) continue;
    const std::int64_t row = plan.expert_offsets[plan.expert[c]] + slot[c];
    plan.choice_row[c] = row;
    plan.row_token[row] = c / plan.k;
    plan.row_choice[row] = c;
  }
}

}  // namespace

Router::Router(const MoEConfig& config, std::uint64_t init_seed, const std::string& prefix)
    : config_(config) {
  config_.validate();
  weight_ = make_parameter(prefix + ".gate.weight", {config_.num_experts, config_.hidden_size},
                           /*is_expert=*/false);
  init_linear_uniform(weight_.value.data<float>(), weight_.value.numel(), config_.hidden_size,
                      init_seed, InitFamily::gate, 0, 0);
}

RoutingPlan Router::route(const Tensor& x, bool training, NoiseSource& noise) const {
  const std::int64_t S = check_rows("Router::route", "x", x, config_.hidden_size);
  if (S == 0) throw std::invalid_argument("Router::route: x has no tokens (shape [0, d])");
  const std::int64_t E = config_.num_experts, d = config_.hidden_size, k = config_.k;
  RoutingPlan plan;
  plan.tokens = S;
  plan.experts = E;
  plan.k = k;
  plan.rule = k == 1 ? GatingRule::top1 : k == 2 ? GatingRule::top2 : GatingRule::topk;
  if (config_.drop_tokens) {
    if (S < config_.min_capacity)
      throw std::invalid_argument(
          "Router::route: S = " + std::to_string(S) +
          " tokens is less than min_capacity = " + std::to_string(config_.min_capacity) +
          " with drop_tokens = true; use a larger micro-batch or lower min_capacity");
    plan.capacity = ops::gating_capacity(
        S, E, k, training ? config_.capacity_factor : config_.eval_capacity_factor,
        config_.min_capacity);
  }

  const NoisyGatePolicy policy = training ? config_.noise_policy() : NoisyGatePolicy::none;
  Tensor gate_input = x;
  if (policy == NoisyGatePolicy::jitter) {
    plan.jitter = Tensor::empty({S, d});
    noise.uniform(plan.jitter.data<float>(), S * d, 1.0f - kJitterEps, 1.0f + kJitterEps);
    gate_input = jittered(ctx_, x, plan.jitter);
  }
  Tensor logits = Tensor::empty({S, E});
  ops::linear_forward(ctx_, gate_input, weight_.value, Tensor(), logits);

  plan.gates = Tensor::empty({S, E});
  plan.expert.resize(static_cast<std::size_t>(S * k));
  plan.weight.resize(static_cast<std::size_t>(S * k));
  plan.exp_counts.resize(static_cast<std::size_t>(E));
  plan.tokens_per_expert.resize(static_cast<std::size_t>(E));
  std::vector<std::int64_t> slot(static_cast<std::size_t>(S * k));
  const ops::GatingResult out{plan.gates, plan.expert,     plan.weight,
                              slot,       plan.exp_counts, plan.tokens_per_expert,
                              &plan.l_aux};
  std::vector<float> gumbel;
  const bool sample = (k == 1 && policy == NoisyGatePolicy::rsample) ||
                      (k == 2 && training && config_.top2_2nd_expert_sampling);
  if (sample) {
    gumbel.resize(static_cast<std::size_t>(S * E));
    noise.gumbel(gumbel.data(), S * E);
  }
  if (k == 1) {
    std::vector<float> priority;
    // As in DeepSpeed, Random Token Selection also decides evaluation's drops (its noise comes
    // from the evaluation stream ids, so evaluation stays reproducible); the noise policy is
    // training-only.
    if (config_.use_rts && config_.drop_tokens) {
      priority.resize(static_cast<std::size_t>(S));
      noise.uniform(priority.data(), S, 0.0f, 1.0f);
    }
    ops::top1_gating(ctx_, logits, gumbel, priority, plan.capacity, out);
  } else if (k == 2) {
    ops::top2_gating(ctx_, logits, gumbel, plan.capacity, out);
  } else {
    ops::topk_gating(ctx_, logits, k, plan.capacity,
                     config_.drop_policy_kind() == DropPolicy::probs, out);
  }
  index_rows(plan, slot);
  return plan;
}

void Router::backward(const RoutingPlan& plan, const Tensor& x, const Tensor& grad_combine_weights,
                      float grad_l_aux, Tensor& grad_x) {
  const std::int64_t S = check_plan_input("Router::backward", plan, x, config_.hidden_size);
  const std::int64_t E = config_.num_experts, d = config_.hidden_size;
  if (plan.experts != E || plan.k != config_.k)
    throw std::invalid_argument("Router::backward: plan routes to " + std::to_string(plan.experts) +
                                " experts with k = " + std::to_string(plan.k) +
                                ", this router has " + std::to_string(E) +
                                " and k = " + std::to_string(config_.k));
  check_numel("Router::backward", "grad_combine_weights", grad_combine_weights, S * plan.k);
  check_shape("Router::backward", "grad_x", grad_x, {S, d});

  Tensor grad_logits = Tensor::empty({S, E});
  ops::gating_backward(ctx_, gating_loss(plan.rule), plan.gates, plan.expert, plan.choice_row,
                       grad_combine_weights, grad_l_aux, plan.k, grad_logits);
  const Tensor gate_input = plan.jitter.defined() ? jittered(ctx_, x, plan.jitter) : x;
  Tensor grad_input = Tensor::empty({S, d});
  ops::linear_backward(ctx_, gate_input, weight_.value, grad_logits, grad_input, weight_.grad,
                       Tensor());
  // The gate saw x · jitter, so x's gradient is the gate input's times the jitter.
  if (plan.jitter.defined()) {
    ops::mul_add(ctx_, grad_input, plan.jitter, grad_x);
  } else {
    ops::axpy(ctx_, 1.0f, grad_input, grad_x);
  }
}

}  // namespace troupe
