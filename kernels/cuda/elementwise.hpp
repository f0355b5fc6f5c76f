// CUDA twins of the element-wise kernel families: casts, activations, the fused Adam/AdamW step,
// the seeded uniform noise, and MoE token permutation (permute, unpermute fused with the weighted
// combine, and their backwards). Declared without CUDA headers; `stream` is a cudaStream_t.
//
// In fp32 every kernel here computes exactly what its CPU twin (kernels/cpu/) computes, in the
// same order with the same roundings (each product and sum rounded separately: no FMA contraction,
// as g++ compiles the CPU code), so results match bit for bit — except the activations that call
// tanh / erf / exp: the GPU evaluates those in double and rounds once (correctly rounded but for
// rare double-rounding cases), glibc's float versions are within an ulp or two, so those agree to
// a few ulp, not bitwise. The one reduction, combine-backward's grad_weight, sums in a tree.
// bf16 variants store bf16 and compute in fp32.
#pragma once

#include <cstdint>

#include "kernels/cpu/activation.hpp"
#include "kernels/cpu/optimizer.hpp"
#include "memory/dtype.hpp"

namespace troupe::cuda {

// Casts, bit-identical to memory/dtype.hpp's scalar conversions (round to nearest even, NaN stays a
// quiet NaN, overflow to infinity, subnormals kept).
void cast_f32_to_bf16(const float* x, std::uint16_t* y, std::int64_t n, void* stream);
void cast_bf16_to_f32(const std::uint16_t* x, float* y, std::int64_t n, void* stream);
void cast_f32_to_f16(const float* x, std::uint16_t* y, std::int64_t n, void* stream);
void cast_f16_to_f32(const std::uint16_t* x, float* y, std::int64_t n, void* stream);

// Which element-wise function an activation kernel applies (the kernel's own vocabulary; the
// model's Activation maps onto it).
enum class ActivationFunction { relu, gelu_tanh, gelu_erf, silu };

// dtype f32 or bf16 for x, y, dy, dx.
void activation_forward(ActivationFunction activation, DType dtype, const void* x, void* y,
                        std::int64_t n, void* stream);
void activation_backward(ActivationFunction activation, DType dtype, const void* x, const void* dy,
                         void* dx, std::int64_t n, void* stream);

// cpu::adam_step on the device (same argument checks, same per-call scalars computed on the host).
void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::int64_t n,
               const AdamParams& hp, std::int64_t step, float grad_scale, void* stream);

// out[i] = lo + (hi − lo)·U_i, where U_i is SeededNoise(seed, noise_stream)'s draw number
// first_draw + i (models/noise.hpp): the same values bit for bit, on the device.
void seeded_uniform(std::uint64_t seed, std::uint64_t noise_stream, std::uint64_t first_draw,
                    float* out, std::int64_t n, float lo, float hi, void* stream);

// Permutation (kernels/cpu/permute.hpp's contracts; dtype f32 or bf16 for the rows, fp32 weights).
void permute_rows(DType dtype, const void* x, const std::int64_t* row_token, std::int64_t rows,
                  std::int64_t width, void* out, void* stream);
// grad_x[s] (+)= Σ_j grad_rows[choice_row[s·k+j]]; accumulate = false overwrites instead (the CPU
// twin always accumulates).
void permute_rows_backward(DType dtype, const void* grad_rows, const std::int64_t* choice_row,
                           std::int64_t tokens, std::int64_t k, std::int64_t width, void* grad_x,
                           bool accumulate, void* stream);
void unpermute_combine(DType dtype, const void* rows, const std::int64_t* choice_row,
                       const float* weight, std::int64_t tokens, std::int64_t k, std::int64_t width,
                       void* out, void* stream);
void unpermute_combine_backward(DType dtype, const void* grad_out, const void* rows,
                                const std::int64_t* choice_row, const float* weight,
                                std::int64_t tokens, std::int64_t k, std::int64_t width,
                                void* grad_rows, float* grad_weight, void* stream);

}  // namespace troupe::cuda
