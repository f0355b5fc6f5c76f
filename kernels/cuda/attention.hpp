// CUDA twin of kernels/cpu/attention.hpp's causal self-attention core, fp32, declared without CUDA
// headers (`stream` is a cudaStream_t). Composed like the CPU version: per batch item, the heads'
// GEMMs run as one strided-batched cuBLASLt call on views of qkv (fp32 arithmetic, no TF32), and a
// row kernel does the causal softmax (forward) or its backward between them. Shapes, layouts and
// the meaning of att are cpu::attention_forward / _backward's; shape errors throw the same way.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention.hpp"
#include "kernels/cuda/gemm.hpp"

namespace troupe::cuda {

// Device scratch attention_backward needs: one T×T matrix per head (heads·T·T floats).
std::size_t attention_workspace_bytes(const cpu::AttentionShape& s);

// out [B, T, C] and att [B, heads, T, T] (softmax probabilities, 0 above the diagonal).
void attention_forward(Blas& blas, const cpu::AttentionShape& s, const float* qkv, float* out,
                       float* att, void* stream);
// dqkv [B, T, 3C] overwritten; workspace of attention_workspace_bytes(s).
void attention_backward(Blas& blas, const cpu::AttentionShape& s, const float* qkv,
                        const float* att, const float* dout, float* dqkv, void* workspace,
                        void* stream);

}  // namespace troupe::cuda
