// Causal multi-head self-attention core (after the QKV projection, before the output projection),
// GPT-2 layout: qkv [B, T, 3·C] holds q, k, v for all heads (head h uses columns h·hs .. h·hs+hs−1
// of each third, hs = C / heads); out [B, T, C]. Scores are scaled by 1/sqrt(hs) and masked so a
// position attends to itself and earlier positions only. Requires batch >= 0, seq_len >= 1,
// heads >= 1 and channels a positive multiple of heads (else std::invalid_argument).
// Each (batch, head) is two GEMMs forward and four backward on strided views of qkv (no copies).
#pragma once

#include <cstdint>

namespace troupe::cpu {

struct AttentionShape {
  std::int64_t batch, seq_len, channels, heads;
};

// att [B, heads, T, T] keeps the softmax probabilities for the backward (entries above the
// diagonal are 0).
void attention_forward(const AttentionShape& s, const float* qkv, float* out, float* att);
// dqkv overwritten. Allocates one T×T scratch matrix per call (not per head).
void attention_backward(const AttentionShape& s, const float* qkv, const float* att,
                        const float* dout, float* dqkv);

}  // namespace troupe::cpu
