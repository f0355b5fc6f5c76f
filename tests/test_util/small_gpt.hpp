// The small two-MoE-layer GPT the runtime tests share: every MLP an MoE layer of 4 experts, top-2,
// small enough that a step takes milliseconds, big enough to have two MoE layers (the collective
// schedule's interesting case) and a residual stream crossing them.
#pragma once

#include <memory>

#include "models/gpt.hpp"

namespace troupe::test {

inline std::shared_ptr<Model> make_small_moe_gpt() {
  GPTConfig c;
  c.vocab_size = 11;
  c.seq_len = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.ffn_hidden_size = 8;
  c.use_moe = true;
  c.moe.num_experts = 4;
  c.moe.k = 2;
  c.moe.min_capacity = 2;
  c.init_seed = 3;
  return std::make_shared<GPT>(c);
}

}  // namespace troupe::test
