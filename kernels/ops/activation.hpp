// Ops for element-wise activations, one per function (the model maps its choice of activation
// onto them, models/activation_kind.hpp). y and dx have x's shape and are overwritten; x is the
// forward input (kernels/cpu/activation.hpp has the formulas).
#pragma once

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

void relu_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y);
void relu_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& dx);
void gelu_tanh_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y);
void gelu_tanh_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy,
                        const Tensor& dx);
void gelu_erf_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y);
void gelu_erf_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& dx);
void silu_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y);
void silu_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& dx);

}  // namespace troupe::ops
