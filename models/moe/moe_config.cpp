// MoEConfig validation and option parsing.
#include "models/moe/moe_config.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace troupe {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("MoEConfig: " + message);
}

std::string str(std::int64_t v) {
  return std::to_string(v);
}

}  // namespace

NoisyGatePolicy MoEConfig::noise_policy() const {
  if (noisy_gate_policy == "None" || noisy_gate_policy == "none") return NoisyGatePolicy::none;
  if (noisy_gate_policy == "Jitter") return NoisyGatePolicy::jitter;
  if (noisy_gate_policy == "RSample") return NoisyGatePolicy::rsample;
  fail("noisy_gate_policy = \"" + noisy_gate_policy +
       "\" is unknown; allowed: \"None\" (or \"none\"), \"Jitter\", \"RSample\"");
}

DropPolicy MoEConfig::drop_policy_kind() const {
  if (drop_policy == "probs") return DropPolicy::probs;
  if (drop_policy == "position") return DropPolicy::position;
  fail("drop_policy = \"" + drop_policy + "\" is unknown; allowed: \"probs\", \"position\"");
}

void MoEConfig::validate() const {
  if (hidden_size < 1) fail("hidden_size = " + str(hidden_size) + ", must be ≥ 1 (it is required)");
  if (ffn_hidden_size < 1)
    fail("ffn_hidden_size = " + str(ffn_hidden_size) + ", must be ≥ 1 (it is required)");
  if (num_experts < 1) fail("num_experts = " + str(num_experts) + ", must be ≥ 1");
  if (ep_size < 1) fail("ep_size = " + str(ep_size) + ", must be ≥ 1");
  if (num_experts % ep_size != 0)
    fail("num_experts = " + str(num_experts) + " is not divisible by ep_size = " + str(ep_size) +
         "; every rank of the expert-parallel group must hold the same number of experts");
  if (k < 1 || k > num_experts)
    fail("k = " + str(k) + ", allowed 1 ≤ k ≤ num_experts = " + str(num_experts));
  for (auto [name, value] : {std::pair{"capacity_factor", capacity_factor},
                             std::pair{"eval_capacity_factor", eval_capacity_factor}})
    if (!(value > 0.0) || !std::isfinite(value))
      fail(std::string(name) + " = " + std::to_string(value) + ", must be finite and > 0");
  if (min_capacity < 0) fail("min_capacity = " + str(min_capacity) + ", must be ≥ 0");
  if (noise_policy() == NoisyGatePolicy::rsample && k != 1)
    fail("noisy_gate_policy = \"RSample\" needs k = 1 (k = " + str(k) +
         "); use \"Jitter\" or \"None\" with k > 1");
  drop_policy_kind();
  if (enable_expert_tensor_parallelism)
    fail(
        "enable_expert_tensor_parallelism = true is not implemented yet: needs tensor "
        "parallelism; set it to false");
}

}  // namespace troupe
