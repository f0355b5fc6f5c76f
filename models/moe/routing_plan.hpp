// The routing of one micro-batch through one MoE layer: which experts each token goes to, with
// what weight, where its rows sit in the expert-major permuted buffer, and what the router's
// backward needs. It is a plain value made by Router::route and read by the dispatcher, the
// experts and the backward passes, so several micro-batches can be in flight at once.
// Memory is O(S·k + S·E) (+ S·d under Jitter), never O(S·E·C).
#pragma once

#include <cstdint>
#include <vector>

#include "memory/tensor.hpp"
#include "models/moe/gating_rule.hpp"

namespace troupe {

struct RoutingPlan {
  std::int64_t tokens = 0;     // S
  std::int64_t experts = 0;    // E, all experts of the layer
  std::int64_t k = 1;          // choices per token
  std::int64_t capacity = -1;  // C; −1 when drop_tokens = false (no capacity at all)
  GatingRule rule = GatingRule::top1;

  Tensor gates;  // (S, E) softmax of the router logits, fp32
  Tensor
      jitter;  // (S, d) multiplier applied to the gate's input (Jitter, training); else undefined

  // Per choice c = s·k + j (token s's j-th expert):
  std::vector<std::int64_t> expert;      // (S·k) expert id
  std::vector<float> weight;             // (S·k) combine weight, 0 when dropped
  std::vector<std::int64_t> choice_row;  // (S·k) row in the permuted buffer, −1 when dropped

  std::vector<std::int64_t> exp_counts;         // (E) choices requested, before drops
  std::vector<std::int64_t> tokens_per_expert;  // (E) choices kept
  std::vector<std::int64_t> expert_offsets;     // (E + 1) prefix sums of tokens_per_expert

  // Per row r of the permuted buffer (expert-major, slot order within an expert):
  std::vector<std::int64_t> row_token;   // (R) token
  std::vector<std::int64_t> row_choice;  // (R) choice c

  float l_aux = 0.0f;

  std::int64_t rows() const { return expert_offsets.empty() ? 0 : expert_offsets.back(); }
  bool kept(std::int64_t choice) const { return choice_row.at(choice) >= 0; }
  // Offsets of experts [first, last) relative to the first one's first row (last − first + 1
  // entries, starting at 0): what Experts::forward takes for that shard of the buffer.
  std::vector<std::int64_t> local_offsets(std::int64_t first, std::int64_t last) const;
};

}  // namespace troupe
