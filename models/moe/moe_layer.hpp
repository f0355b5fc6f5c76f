// A Mixture-of-Experts layer (DeepSpeed's MoE module) as explicit pieces:
//   route (Router) → permute (dispatcher) → experts → combine (+ Residual MoE mix)
// with a forward and backward for each, and no autograd.
//
// The actor runtime calls the pieces from different actors with several micro-batches in flight,
// so the layer keeps no per-call state: forward() fills a caller-owned MoEForwardState, which its
// backward reads. forward() / backward() are exactly the pieces composed, so both paths give
// bit-identical numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memory/tensor.hpp"
#include "models/moe/experts.hpp"
#include "models/moe/moe_config.hpp"
#include "models/moe/router.hpp"
#include "models/moe/routing_plan.hpp"
#include "models/noise.hpp"
#include "models/parameter.hpp"

namespace troupe {

struct MoEOutput {
  Tensor output;                         // (S, d)
  float l_aux = 0.0f;                    // add it to the loss with a coefficient yourself
  std::vector<std::int64_t> exp_counts;  // (E) tokens requested per expert, before drops
};

// Everything one micro-batch's backward needs.
struct MoEForwardState {
  RoutingPlan plan;
  ExpertActivations experts;  // forward() only; in the actor path the expert actors keep these
  Tensor expert_out;          // (R, d) expert outputs, for the combine weights' gradient
  // Residual MoE (use_residual):
  Tensor moe_out;              // (S, d) combined expert output
  ExpertActivations residual;  // the dense mlp's activations
  Tensor residual_out;         // (S, d) mlp(x)
  Tensor coefficient;          // (S, 2) softmax(Linear(d, 2)(x))
  // Set by begin_backward for end_backward:
  Tensor grad_out;              // (S, d)
  Tensor grad_combine_weights;  // (S·k)
};

class MoELayer {
 public:
  // Parameter names start with `prefix` ("moe.gate.weight", "moe.experts.w1", …). The layer holds
  // the local experts of rank ep_rank of its expert-parallel group.
  MoELayer(const MoEConfig& config, std::uint64_t init_seed, const std::string& prefix = "moe",
           std::int64_t ep_rank = 0);

  const MoEConfig& config() const { return config_; }
  Router& router() { return router_; }
  Experts& experts() { return experts_; }
  // Gate, experts, then (use_residual) the residual mlp and the coefficient layer.
  std::vector<Parameter*> parameters();

  // The whole layer on one process (needs ep_size = 1: all experts local).
  MoEOutput forward(const Tensor& x, bool training, NoiseSource& noise, MoEForwardState& st) const;
  // Returns grad_x (S, d) and accumulates (+=) every parameter gradient.
  Tensor backward(const Tensor& grad_out, float grad_l_aux, const Tensor& x, MoEForwardState& st);

  // The halves around the experts, for the actor runtime. finish_forward: combine + residual mix;
  // it keeps `plan` and `expert_out` (R, d) in st.
  MoEOutput finish_forward(const Tensor& x, RoutingPlan plan, const Tensor& expert_out,
                           MoEForwardState& st) const;
  // grad_out (S, d) → gradient of the expert outputs (R, d); saves what end_backward needs in st.
  Tensor begin_backward(const Tensor& grad_out, const Tensor& x, MoEForwardState& st) const;
  // grad_rows (R, d), the gradient of the experts' input rows → grad_x (S, d): unpermute + router
  // backward + residual backward, accumulating the router's and residual parameters' gradients.
  Tensor end_backward(const Tensor& grad_rows, float grad_l_aux, const Tensor& x,
                      MoEForwardState& st);

 private:
  ExecContext ctx_ = cpu_context();
  MoEConfig config_;
  Router router_;
  Experts experts_;
  std::optional<Experts> residual_mlp_;
  Parameter coefficient_weight_;  // (2, d), use_residual only
  Parameter coefficient_bias_;    // (2)
};

}  // namespace troupe
