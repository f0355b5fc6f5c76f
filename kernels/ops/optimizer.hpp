// The Adam / AdamW op (DeepSpeed's FusedAdam semantics, kernels/cpu/optimizer.hpp has the update
// rule) on a flat slice of parameters with its gradient and fp32 state.
#pragma once

#include <cstdint>

#include "kernels/exec_context.hpp"
#include "kernels/op_params.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// One step; params, grads, exp_avg, exp_avg_sq hold the same number of elements. `step` is the
// 1-based step count after this update; grad_scale multiplies the gradient first.
void adam_step(const ExecContext& ctx, const Tensor& params, const Tensor& grads,
               const Tensor& exp_avg, const Tensor& exp_avg_sq, const AdamParams& hp,
               std::int64_t step, float grad_scale);

}  // namespace troupe::ops
