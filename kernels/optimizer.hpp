// Adam and AdamW steps on fp32 parameters with fp32 state (DeepSpeed's FusedAdam semantics):
// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; with bias correction m̂ = m / (1−β1^t),
// v̂ = v / (1−β2^t); p −= lr · m̂ / (sqrt(v̂) + eps).
// Without bias correction m̂ = m and v̂ = v. Adam adds weight decay to the gradient (g += wd·p,
// L2); AdamW decays the weight directly (p −= lr·wd·p, decoupled) before the Adam update.
#pragma once

#include <cstdint>

namespace troupe {

struct AdamParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool adam_w_mode = false;  // false: Adam (L2 into the gradient); true: AdamW (decoupled)
  bool bias_correction = true;
};

namespace cpu {

// One step for n parameters; `step` is the 1-based step count after this update. grad_scale
// multiplies the gradient first (gradient clipping and loss-scale removal use it). step < 1 or a
// beta outside [0, 1) throws std::invalid_argument.
void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::int64_t n,
               const AdamParams& hp, std::int64_t step, float grad_scale);

}  // namespace cpu
}  // namespace troupe
