// CUDA twin of kernels/cpu/attention.hpp's causal self-attention core, fp32, declared without CUDA
// headers (`stream` is a cudaStream_t). Composed like the CPU version: per batch item, the heads'
// GEMMs run as one strided-batched cuBLASLt call on views of qkv (fp32 arithmetic, no TF32), and a
// row kernel does the causal softmax (forward) or its backward between them. Shapes, layouts and
// the meaning of att are cpu::attention_forward / _backward's; shape errors throw the same way.
//
// bf16: qkv, out, dout and dqkv are bf16; the GEMMs take bf16 operands with fp32 accumulation
// (cuBLASLt, as the fp32 path), the scores come out in fp32, and the softmax and its backward run
// in fp32. att (the saved probabilities) stays fp32; a bf16 copy of it (forward: att·V; backward:
// attᵀ·dout) and of dpre (dQ, dK) is made in the workspace for the GEMMs that read them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention.hpp"
#include "kernels/cuda/gemm.hpp"

namespace troupe::cuda {

// Device scratch attention_backward needs: one T×T matrix per head (heads·T·T floats).
std::size_t attention_workspace_bytes(const cpu::AttentionShape& s);
// Device scratch for the dtype overloads below (f32: as above; bf16: heads·T·T floats, rounded up
// to 256 bytes, plus heads·T·T bf16). Forward and backward take the same size.
std::size_t attention_workspace_bytes(const cpu::AttentionShape& s, DType dtype);

// out [B, T, C] and att [B, heads, T, T] (softmax probabilities, 0 above the diagonal).
void attention_forward(Blas& blas, const cpu::AttentionShape& s, const float* qkv, float* out,
                       float* att, void* stream);
// dqkv [B, T, 3C] overwritten; workspace of attention_workspace_bytes(s).
void attention_backward(Blas& blas, const cpu::AttentionShape& s, const float* qkv,
                        const float* att, const float* dout, float* dqkv, void* workspace,
                        void* stream);

// The same for `dtype` qkv / out / dout / dqkv (f32 or bf16; std::invalid_argument otherwise); att
// is fp32 either way. workspace: attention_workspace_bytes(s, dtype) (forward: unused for f32).
void attention_forward(Blas& blas, DType dtype, const cpu::AttentionShape& s, const void* qkv,
                       void* out, float* att, void* workspace, void* stream);
void attention_backward(Blas& blas, DType dtype, const cpu::AttentionShape& s, const void* qkv,
                        const float* att, const void* dout, void* dqkv, void* workspace,
                        void* stream);

}  // namespace troupe::cuda
