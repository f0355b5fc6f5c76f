// Element-wise activations and their gradients: ReLU, GELU (tanh approximation and exact erf),
// SiLU, and the SwiGLU gate. Backward functions overwrite dx (activation gradients are `=`).
#pragma once

#include <cstdint>
#include <string_view>

namespace troupe {

enum class Activation { relu, gelu_tanh, gelu_erf, silu };

// "relu", "gelu" (= gelu_tanh, as in GPT-2), "gelu_tanh", "gelu_erf", "silu".
bool parse_activation(std::string_view name, Activation& out);
std::string_view activation_name(Activation activation);

namespace cpu {

void activation_forward(Activation activation, const float* x, float* y, std::int64_t n);
// dx = dy · f'(x); x is the forward input.
void activation_backward(Activation activation, const float* x, const float* dy, float* dx,
                         std::int64_t n);

// y = silu(gate) · up
void swiglu_forward(const float* gate, const float* up, float* y, std::int64_t n);
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                     std::int64_t n);

}  // namespace cpu
}  // namespace troupe
