// The fused MoE router on the GPU, declared without CUDA headers: softmax gates, expert selection
// (top-1 with optional RSample noise, top-2 with optional Gumbel sampling of the second expert,
// general top-k), capacity with Random Token Selection or the drop policies, per-expert counts,
// combine weights, and the permutation indices that dispatch uses — all on the device, with no
// host synchronisation. Semantics are kernels/cpu/gating.hpp's (../shared/MOE-SPEC.md); given the
// same fp32 logits and noise it agrees exactly with the CPU kernels on expert, slot, kept / dropped
// and counts, ties included (the lower index, and the earlier token, win). Selection compares
// logits (plus noise), never recomputed gates: argmax(softmax(x)) = argmax(x), and comparing logits
// avoids depending on how exp rounds. Gates and weights agree to a few ulp (exp differs by at most
// one rounding from glibc's). The load-balancing loss l_aux is computed when asked for (a column
// sum of the gates in double: within the reduction bound of the CPU's), and its gradient term in
// the backward matches the CPU's bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/op_params.hpp"

#include "kernels/cpu/gating.hpp"

namespace troupe::cuda {

// Device arrays the router writes (S tokens, E experts, k choices; choice c = s·k + j).
struct RouterOutput {
  float* gates;               // (S, E) softmax(logits), fp32
  std::int64_t* expert;       // (S, k)
  float* weight;              // (S, k) combine weight, 0 when dropped
  std::int64_t* slot;         // (S, k) row within its expert's block, −1 when dropped
  std::int64_t* exp_counts;   // (E) choices requested per expert, before drops
  std::int64_t* kept_counts;  // (E) choices kept per expert
  std::int64_t* row_offsets;  // (E + 1) expert e's rows are [row_offsets[e], row_offsets[e+1])
  std::int64_t* choice_row;  // (S, k) row of each choice in the expert-major buffer, −1 if dropped
  std::int64_t* row_token;   // (S·k) token of each row (rows past row_offsets[E] are untouched)
  // Optional (null: not computed). l_aux = Σ_e colsum(gates)[e] · coef · aux_counts[e] / S², with
  // aux_counts the choices per expert that l_aux counts (all of them for top-1 and top-k, first
  // choices only for top-2) and coef = E (top-1, top-2) or E / k (top-k), as cpu::*_gating. The
  // backward takes aux_counts back to add grad_l_aux · ∂l_aux/∂gates.
  float* l_aux = nullptr;              // () scalar
  std::int64_t* aux_counts = nullptr;  // (E); needed whenever l_aux is asked for
};

// Which selection the router runs: cpu::top1_gating, cpu::top2_gating or cpu::topk_gating.
enum class RouterSelection { top1, top2, topk };

// The combine-weight and l_aux knobs (kernels/op_params.hpp) each selection uses, as the CPU
// gating kernels' callers pass them (models/moe/gating_rule.hpp).
inline GatingLoss gating_loss_of(RouterSelection selection) {
  switch (selection) {
    case RouterSelection::top1:
      return GatingLoss{false, false, false};
    case RouterSelection::top2:
      return GatingLoss{true, true, false};
    case RouterSelection::topk:
      return GatingLoss{true, false, true};
  }
  return GatingLoss{};
}

struct RouterConfig {
  RouterSelection rule = RouterSelection::topk;
  std::int64_t tokens = 0, experts = 0, k = 1;
  std::int64_t capacity = -1;       // < 0: dropless
  bool keep_highest_logits = true;  // top-k: the drop policy "probs" (true) or "position"
};

// Device scratch the router needs for `tokens`·`k` choices.
std::size_t router_workspace_bytes(std::int64_t tokens, std::int64_t k);

// logits (S, E); gumbel (S, E) or null (top-1: RSample selection; top-2: second-expert sampling);
// priority (S) or null (top-1 RTS keys). All device pointers; workspace of router_workspace_bytes.
void route(const RouterConfig& config, const float* logits, const float* gumbel,
           const float* priority, void* workspace, const RouterOutput& out, void* stream);

// grad_logits (S, E) from grad_weight (S, k) through the combine weights and the softmax
// (cpu::gating_backward with grad_l_aux = 0). Overwrites grad_logits.
void router_backward(RouterSelection rule, const float* gates, const std::int64_t* expert,
                     const std::int64_t* slot, const float* grad_weight, std::int64_t tokens,
                     std::int64_t experts, std::int64_t k, float* grad_logits, void* stream);
// The same plus grad_l_aux · ∂l_aux/∂logits (cpu::gating_backward in full); aux_counts (device,
// (E)) is what route() wrote to RouterOutput::aux_counts.
void router_backward(RouterSelection rule, const float* gates, const std::int64_t* expert,
                     const std::int64_t* slot, const float* grad_weight, float grad_l_aux,
                     const std::int64_t* aux_counts, std::int64_t tokens, std::int64_t experts,
                     std::int64_t k, float* grad_logits, void* stream);

}  // namespace troupe::cuda
