// Adam and AdamW steps on fp32 parameters with fp32 state (DeepSpeed's FusedAdam semantics):
// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; with bias correction m̂ = m / (1−β1^t),
// v̂ = v / (1−β2^t); p −= lr · m̂ / (sqrt(v̂) + eps).
// Without bias correction m̂ = m and v̂ = v. Adam adds weight decay to the gradient (g += wd·p,
// L2); AdamW decays the weight directly (p −= lr·wd·p, decoupled) before the Adam update.
#pragma once

#include <cstdint>

#include "kernels/op_params.hpp"

namespace troupe::cpu {

// One step for n parameters; `step` is the 1-based step count after this update. grad_scale
// multiplies the gradient first (gradient clipping and loss-scale removal use it). step < 1 or a
// beta outside [0, 1) throws std::invalid_argument.
void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::int64_t n,
               const AdamParams& hp, std::int64_t step, float grad_scale);

}  // namespace troupe::cpu
