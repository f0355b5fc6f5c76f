// Ops for LayerNorm over the last axis of x [rows, cols], with the statistics saved for the
// backward (kernels/cpu/norm.hpp has the numerics). y and dx are overwritten; dgamma and dbeta
// accumulate (`+=`, parameter gradients).
#pragma once

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// gamma, beta [cols]; y [rows, cols]; mean, rstd [rows].
void layernorm_forward(const ExecContext& ctx, const Tensor& x, const Tensor& gamma,
                       const Tensor& beta, const Tensor& y, const Tensor& mean, const Tensor& rstd,
                       float eps);
void layernorm_backward(const ExecContext& ctx, const Tensor& x, const Tensor& gamma,
                        const Tensor& mean, const Tensor& rstd, const Tensor& dy, const Tensor& dx,
                        const Tensor& dgamma, const Tensor& dbeta);

}  // namespace troupe::ops
