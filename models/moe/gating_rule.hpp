// The MoE gating rules and drop policies (MOE-SPEC.md's top1gating / top2gating / topkgating) as
// the model and its config name them, and how each maps onto the gating kernels' arithmetic
// (kernels/op_params.hpp's GatingLoss): the kernels know weights and losses, not rule names.
#pragma once

#include "kernels/op_params.hpp"

namespace troupe {

// Which gating function produced a routing; the backward needs it for the combine weights
// (top-1: raw probability; top-2 and top-k: renormalised over the kept choices) and for l_aux
// (top-1: E·Σ me·ce over all choices; top-2: E·Σ me·ce over first choices only;
// top-k: E/k·Σ me·ce over all choices).
enum class GatingRule { top1, top2, topk };

// How top-k gating picks the C tokens an over-full expert keeps: "probs" keeps the highest router
// logits, "position" the first C tokens.
enum class DropPolicy { probs, position };

constexpr GatingLoss gating_loss(GatingRule rule) {
  switch (rule) {
    case GatingRule::top1:
      return GatingLoss{
          .renormalize = false, .aux_first_choice_only = false, .aux_divide_by_k = false};
    case GatingRule::top2:
      return GatingLoss{
          .renormalize = true, .aux_first_choice_only = true, .aux_divide_by_k = false};
    case GatingRule::topk:
      break;
  }
  return GatingLoss{.renormalize = true, .aux_first_choice_only = false, .aux_divide_by_k = true};
}

}  // namespace troupe
