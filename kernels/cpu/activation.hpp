// Element-wise activations and their gradients: ReLU, GELU (tanh approximation and exact erf),
// SiLU, and the SwiGLU gate. One kernel per function (the model's choice of activation is mapped
// onto them above the kernels, models/activation_kind.hpp). Backward functions overwrite dx
// (activation gradients are `=`); x is always the forward input.
#pragma once

#include <cstdint>

namespace troupe::cpu {

void relu_forward(const float* x, float* y, std::int64_t n);
void relu_backward(const float* x, const float* dy, float* dx, std::int64_t n);
// GPT-2's tanh approximation.
void gelu_tanh_forward(const float* x, float* y, std::int64_t n);
void gelu_tanh_backward(const float* x, const float* dy, float* dx, std::int64_t n);
// The exact GELU, x · Φ(x) with erf.
void gelu_erf_forward(const float* x, float* y, std::int64_t n);
void gelu_erf_backward(const float* x, const float* dy, float* dx, std::int64_t n);
void silu_forward(const float* x, float* y, std::int64_t n);
void silu_backward(const float* x, const float* dy, float* dx, std::int64_t n);

// y = silu(gate) · up
void swiglu_forward(const float* gate, const float* up, float* y, std::int64_t n);
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                     std::int64_t n);

}  // namespace troupe::cpu
