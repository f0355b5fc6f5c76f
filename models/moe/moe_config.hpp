// Configuration of one Mixture-of-Experts layer, with the names and defaults DeepSpeed users know
// (see /work/shared/MOE-SPEC.md), plus the shape of the expert MLP.
#pragma once

#include <cstdint>
#include <string>

#include "models/activation_kind.hpp"
#include "models/moe/gating_rule.hpp"

namespace troupe {

enum class NoisyGatePolicy { none, jitter, rsample };

struct MoEConfig {
  std::int64_t hidden_size = 0;  // d, required
  std::int64_t num_experts = 1;  // E, over the whole expert-parallel group
  std::int64_t ep_size = 1;      // ranks in one expert-parallel group
  std::int64_t k = 1;            // experts per token
  double capacity_factor = 1.0;
  double eval_capacity_factor = 1.0;
  std::int64_t min_capacity = 4;
  bool use_residual = false;
  std::string noisy_gate_policy = "None";  // "None" (or "none"), "Jitter", "RSample"
  bool drop_tokens = true;
  bool use_rts = true;  // Random Token Selection for k = 1 drops, in training and evaluation
  bool top2_2nd_expert_sampling = true;
  bool enable_expert_tensor_parallelism = false;
  std::string drop_policy = "probs";  // k > 2: "probs" or "position"

  // The expert: Linear(d, f) → activation → Linear(f, d).
  std::int64_t ffn_hidden_size = 0;  // f, required
  Activation activation = Activation::gelu_tanh;

  // Throws std::invalid_argument naming the offending field, its value and what is allowed.
  void validate() const;

  std::int64_t local_experts() const { return num_experts / ep_size; }
  // The parsed forms of the string options (validate() first).
  NoisyGatePolicy noise_policy() const;
  DropPolicy drop_policy_kind() const;
};

}  // namespace troupe
