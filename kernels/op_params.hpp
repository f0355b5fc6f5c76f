// Backend-neutral parameters of kernels: the same plain structs reach the ops layer
// (kernels/ops/) and every backend's kernels (kernels/cpu/, kernels/cuda/), so a model fills them
// in once and never needs a backend's header to do it.
#pragma once

#include <cstdint>

namespace troupe {

// Adam / AdamW hyperparameters (kernels/ops/optimizer.hpp has the update rule).
struct AdamParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool adam_w_mode = false;  // false: Adam (L2 into the gradient); true: AdamW (decoupled)
  bool bias_correction = true;
};

// How a gating kernel forms the combine weights and the load-balancing loss l_aux from the gates;
// the backward must be given the same values. These are the knobs the MoE gating rules differ in
// (models/moe/gating_rule.hpp maps each rule onto them), kept out of the model's vocabulary so a
// kernel only knows arithmetic.
struct GatingLoss {
  // true: weight = gate renormalised over the token's kept choices, g / max(Σ kept g, FLT_EPSILON);
  // false: weight = the raw gate.
  bool renormalize = false;
  // true: l_aux counts only each token's first choice; false: all k choices.
  bool aux_first_choice_only = false;
  // true: l_aux = E/k · Σ_e me·ce; false: E · Σ_e me·ce.
  bool aux_divide_by_k = false;
};

}  // namespace troupe
