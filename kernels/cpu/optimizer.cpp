// CPU Adam / AdamW step (see optimizer.hpp). The bias corrections are folded into two per-call
// scalars, as DeepSpeed's CPU Adam does: m̂ / (sqrt(v̂) + eps) = (m / bc1) / (sqrt(v) / sqrt(bc2)
// + eps), so the element loop is a handful of multiplies and one sqrt.
#include "kernels/cpu/optimizer.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace troupe::cpu {
namespace {

void check_beta(const char* name, float beta) {
  if (!(beta >= 0.0f && beta < 1.0f)) {
    throw std::invalid_argument(std::string("adam_step: ") + name + " = " + std::to_string(beta) +
                                " must lie in [0, 1)");
  }
}

}  // namespace

void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::int64_t n,
               const AdamParams& hp, std::int64_t step, float grad_scale) {
  if (step < 1) {
    throw std::invalid_argument("adam_step: step = " + std::to_string(step) +
                                " must be at least 1 (it counts this update)");
  }
  check_beta("beta1", hp.beta1);
  check_beta("beta2", hp.beta2);
  const double t = static_cast<double>(step);
  const float bc1 = hp.bias_correction ? static_cast<float>(1.0 - std::pow(hp.beta1, t)) : 1.0f;
  const float bc2 = hp.bias_correction ? static_cast<float>(1.0 - std::pow(hp.beta2, t)) : 1.0f;
  const float step_size = hp.lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float b1 = hp.beta1, b2 = hp.beta2, one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
  const float eps = hp.eps;
  // L2 (Adam) folds the decay into the gradient; decoupled (AdamW) shrinks the weight, computed
  // as one factor so the loop does not branch per element.
  const float l2 = hp.adam_w_mode ? 0.0f : hp.weight_decay;
  const float shrink = hp.adam_w_mode ? 1.0f - hp.lr * hp.weight_decay : 1.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * grad_scale + l2 * params[i];
    const float m = b1 * exp_avg[i] + one_minus_b1 * g;
    const float v = b2 * exp_avg_sq[i] + one_minus_b2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    params[i] = params[i] * shrink - step_size * m / (std::sqrt(v) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace troupe::cpu
