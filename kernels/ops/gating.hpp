// Ops for MoE router gating: softmax over experts fused with top-1 / top-2 / top-k selection,
// capacity drops, slots, exp_counts and l_aux, and the backward to the logits
// (kernels/cpu/gating.hpp has the semantics). The logits, gates and gradients are tensors; the
// per-choice routing (expert, weight, slot, counts) is host index data, which is where the
// routing plan keeps it today (the dispatcher reads it on the host).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/exec_context.hpp"
#include "kernels/op_params.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// C = max(ceil(S / E · capacity_factor · k), min_capacity), formed in float32 as the reference
// does. Host arithmetic: the same on every backend.
std::int64_t gating_capacity(std::int64_t tokens, std::int64_t experts, std::int64_t k,
                             double capacity_factor, std::int64_t min_capacity);

// Where a gating op writes: gates [S, E] (tensor on ctx's device); per choice c = s·k + j
// (S·k entries) expert, weight and slot (−1 when dropped); per expert (E entries) exp_counts
// (before drops) and kept_counts; the scalar l_aux.
struct GatingResult {
  Tensor gates;
  std::span<std::int64_t> expert;
  std::span<float> weight;
  std::span<std::int64_t> slot;
  std::span<std::int64_t> exp_counts;
  std::span<std::int64_t> kept_counts;
  float* l_aux = nullptr;
};

// Top-1 on logits [S, E]; gumbel (S·E) and priority (S) are empty for "none". capacity < 0 drops
// nothing.
void top1_gating(const ExecContext& ctx, const Tensor& logits, std::span<const float> gumbel,
                 std::span<const float> priority, std::int64_t capacity, const GatingResult& out);
// Top-2; gumbel (S·E) samples the second expert, empty for none.
void top2_gating(const ExecContext& ctx, const Tensor& logits, std::span<const float> gumbel,
                 std::int64_t capacity, const GatingResult& out);
// General top-k. An over-full expert keeps its tokens with the highest logits
// (keep_highest_logits) or else its first C tokens.
void topk_gating(const ExecContext& ctx, const Tensor& logits, std::int64_t k,
                 std::int64_t capacity, bool keep_highest_logits, const GatingResult& out);

// grad_logits [S, E] (overwritten) from grad_weight (S·k elements) and grad_l_aux, for the routing
// in expert / slot (S·k each); `loss` must be what the forward used.
void gating_backward(const ExecContext& ctx, const GatingLoss& loss, const Tensor& gates,
                     std::span<const std::int64_t> expert, std::span<const std::int64_t> slot,
                     const Tensor& grad_weight, float grad_l_aux, std::int64_t k,
                     const Tensor& grad_logits);

}  // namespace troupe::ops
