// Router gating kernels of a Mixture-of-Experts layer: the fp32 softmax over experts fused with
// expert selection (top-1, top-2, top-k), capacity-based dropping, slot assignment, exp_counts and
// the load-balancing loss l_aux; and the backward from combine weights and l_aux to the logits.
//
// Semantics are /work/shared/MOE-SPEC.md (DeepSpeed's top1gating / top2gating / topkgating), but
// the routing comes out as indices per (token, choice) instead of dense [S, E, C] one-hot tensors,
// so memory is O(S·k + S·E). Choice c = s·k + j is token s's j-th expert (j = 0 is its first).
// Randomness (Gumbel noise, RTS priorities) comes in as arrays: the kernels are deterministic
// functions of their inputs, and tests can inject the noise they want.
#pragma once

#include <cstdint>

#include "kernels/op_params.hpp"

namespace troupe::cpu {

// C = max(ceil(S / E · capacity_factor · k), min_capacity). The product is formed in float32 as
// the reference does (Python float S / E times a float32 tensor), so C matches it at the
// boundaries where float32 and float64 round differently.
std::int64_t gating_capacity(std::int64_t tokens, std::int64_t experts, std::int64_t k,
                             double capacity_factor, std::int64_t min_capacity);

// Where a gating kernel writes its results (caller-owned arrays).
struct GatingOutput {
  float* gates;               // (S, E) softmax(logits) in fp32
  std::int64_t* expert;       // (S, k) chosen expert per choice
  float* weight;              // (S, k) combine weight, 0 when the choice is dropped
  std::int64_t* slot;         // (S, k) row within its expert's buffer, −1 when dropped
  std::int64_t* exp_counts;   // (E) choices requested per expert, counted before drops
  std::int64_t* kept_counts;  // (E) choices kept per expert
  float* l_aux;               // scalar load-balancing loss
};

// Top-1 (weights are the raw gates; l_aux = E·Σ me·ce over all choices). The expert is
// argmax(gates), or argmax(logits + gumbel) when gumbel ((S, E), RSample) is given. An over-full
// expert keeps the C tokens with the highest priority ((S,), RTS) or, when priority is null, its
// first C tokens. capacity < 0 drops nothing. Slot = rank in position order among the kept tokens
// of the expert. Ties (equal maxima, equal priorities) go to the lower index.
void top1_gating(const float* logits, const float* gumbel, const float* priority,
                 std::int64_t tokens, std::int64_t experts, std::int64_t capacity,
                 const GatingOutput& out);

// Top-2. First expert = argmax(gates); second = argmax over the other experts of logits + gumbel
// ((S, E), or null for no sampling). All first choices of an expert take slots before its second
// choices; a choice whose slot is ≥ capacity is dropped (capacity < 0: none). Weights are the
// gates renormalised over the kept choices: g / max(Σ kept g, FLT_EPSILON); l_aux = E·Σ me·ce over
// first choices only.
void top2_gating(const float* logits, const float* gumbel, std::int64_t tokens,
                 std::int64_t experts, std::int64_t capacity, const GatingOutput& out);

// General top-k (1 ≤ k ≤ E): the k largest logits, largest first, ties to the lower expert index.
// An over-full expert keeps the C routed tokens with the largest logit for it (keep_highest_logits;
// ties keep the earlier token) or else its first C tokens. Slots and weights as for top-2 but in
// plain position order; l_aux = E/k·Σ me·ce over all choices.
void topk_gating(const float* logits, std::int64_t tokens, std::int64_t experts, std::int64_t k,
                 std::int64_t capacity, bool keep_highest_logits, const GatingOutput& out);

// grad_logits (S, E) = ∂(Σ grad_weight · weight + grad_l_aux · l_aux) / ∂logits for the routing in
// expert / slot (selection and drops are piecewise constant: no gradient). `loss` must be what the
// forward used (top-1: {}, top-2: {true, true, false}, top-k: {true, false, true}). Overwrites
// grad_logits.
void gating_backward(const GatingLoss& loss, const float* gates, const std::int64_t* expert,
                     const std::int64_t* slot, const float* grad_weight, float grad_l_aux,
                     std::int64_t tokens, std::int64_t experts, std::int64_t k, float* grad_logits);

}  // namespace troupe::cpu
