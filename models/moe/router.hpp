// The MoE router (DeepSpeed's TopKGate): logits = x · Wgᵀ in fp32, softmax over experts, expert
// selection, capacity drops and l_aux, producing a RoutingPlan; and its explicit backward.
//
// route() is const and keeps no per-call state: everything the backward needs is in the plan, so
// several micro-batches can be routed before any of them is differentiated.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"
#include "models/moe/moe_config.hpp"
#include "models/moe/routing_plan.hpp"
#include "models/noise.hpp"
#include "models/parameter.hpp"

namespace troupe {

class Router {
 public:
  // Wg ([E, d], no bias, non-expert: reduced over the whole data-parallel group) is named
  // "<prefix>.gate.weight" and drawn from U(±1/√d) (nn.Linear's default) keyed by init_seed.
  Router(const MoEConfig& config, std::uint64_t init_seed, const std::string& prefix = "moe");

  Parameter& weight() { return weight_; }
  const Parameter& weight() const { return weight_; }

  // x: (S, d). In training the configured noise is drawn from `noise`, in this order: Jitter
  // multipliers (S·d uniforms), Gumbel noise (S·E; RSample for k = 1, 2nd-expert sampling for
  // k = 2), RTS priorities (S uniforms; k = 1 with drop_tokens). In evaluation `noise` is never
  // called: no jitter, no sampling, and over-full experts keep tokens by position, so inference is
  // deterministic. Throws std::invalid_argument when S < min_capacity with drop_tokens.
  RoutingPlan route(const Tensor& x, bool training, NoiseSource& noise) const;

  // Accumulates Wg's gradient (+=) and adds the gradient for x to grad_x ((S, d), +=), given the
  // gradient of the plan's combine weights ((S·k) elements) and of l_aux.
  void backward(const RoutingPlan& plan, const Tensor& x, const Tensor& grad_combine_weights,
                float grad_l_aux, Tensor& grad_x);

 private:
  ExecContext ctx_ = cpu_context();
  MoEConfig config_;
  Parameter weight_;  // (E, d)
};

}  // namespace troupe
