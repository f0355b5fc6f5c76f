// Element-wise activations and their gradients: ReLU, GELU (tanh approximation and exact erf),
// SiLU, and the SwiGLU gate. One kernel per function (the model's choice of activation is mapped
// onto them above the kernels, models/activation_kind.hpp). Backward functions overwrite dx
// (activation gradients are `=`); x is always the forward input. With `threads` > 1 the elements
// are split over the intra-op pool; each element's arithmetic is the same, so results do not
// depend on the thread count.
#pragma once

#include <cstdint>

namespace troupe::cpu {

void relu_forward(const float* x, float* y, std::int64_t n, int threads = 1);
void relu_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads = 1);
// GPT-2's tanh approximation, evaluated as x · sigmoid(2u) = 0.5 · x · (1 + tanh(u)) with Cephes'
// polynomial expf, which the compiler vectorises: glibc's tanhf is a scalar call per element and
// was most of the MoE layer's non-GEMM time.
void gelu_tanh_forward(const float* x, float* y, std::int64_t n, int threads = 1);
void gelu_tanh_backward(const float* x, const float* dy, float* dx, std::int64_t n,
                        int threads = 1);
// The exact GELU, x · Φ(x) with erf.
void gelu_erf_forward(const float* x, float* y, std::int64_t n, int threads = 1);
void gelu_erf_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads = 1);
void silu_forward(const float* x, float* y, std::int64_t n, int threads = 1);
void silu_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads = 1);

// y = silu(gate) · up
void swiglu_forward(const float* gate, const float* up, float* y, std::int64_t n, int threads = 1);
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                     std::int64_t n, int threads = 1);

}  // namespace troupe::cpu
