// Ops for the causal multi-head self-attention core, GPT-2 layout (kernels/cpu/attention.hpp has
// the algorithm): qkv holds batch·seq rows of [q | k | v] (3·C columns), out batch·seq rows of C.
#pragma once

#include <cstdint>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// qkv [batch·seq, 3C], out [batch·seq, C] overwritten, att [batch, heads, seq, seq] keeps the
// softmax probabilities for the backward.
void attention_forward(const ExecContext& ctx, std::int64_t batch, std::int64_t seq,
                       std::int64_t heads, const Tensor& qkv, const Tensor& out, const Tensor& att);
// dqkv (qkv's shape) overwritten.
void attention_backward(const ExecContext& ctx, std::int64_t batch, std::int64_t seq,
                        std::int64_t heads, const Tensor& qkv, const Tensor& att,
                        const Tensor& dout, const Tensor& dqkv);

}  // namespace troupe::ops
