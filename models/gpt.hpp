// A character-level GPT-2 (llm.c's train_gpt2 structure) whose FFNs may be MoE layers:
//
//   x = wte[tokens] + wpe[positions]
//   per block l:  x = x + c_proj(attention(c_attn(ln_1(x))));  h = ln_2(x);  x = x + FFN_l(h)
//   logits = lm_head(ln_f(x)),  loss = mean cross-entropy over all B·T positions
//
// The lm head is untied from wte (its own [V, C] weight, no bias): a tied head would be written by
// the first and the last segment, and a segment must own its parameters' gradients alone.
//
// With use_moe every block's FFN is an MoE layer (L = n_layer) and the model is cut at them:
//   segment 0      embeddings, block 0's attention, ln_2          → MoE 0's input [B·T, C]
//   segment s < L  x = residual + MoE s−1's output, block s's attention, ln_2 → MoE s's input
//   segment L      x = residual + MoE L−1's output, ln_f, lm_head, loss
// The residual stream stays in the cache: segment s's forward reads the residual segment s−1
// left there, and segment s's backward leaves the residual gradient there for segment s−1's
// backward (it equals the gradient it returns for MoE s−1's output, since x = residual + moe).
// The dense twin (use_moe = false) has one segment and FFN = Linear(C, f) → act → Linear(f, C).
//
// Initialisation is GPT-2's from std::mt19937_64(init_seed): weights and embeddings N(0, 0.02²),
// the residual projections (attn c_proj, mlp proj) N(0, (0.02/√(2·n_layer))²), biases 0, LayerNorm
// γ = 1, β = 0. The MoE layers initialise themselves (PyTorch's U(±1/√fan_in), keyed by global
// expert id so the model does not depend on ep_size) from seeds drawn from the same generator.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/activation_kind.hpp"
#include "models/dense_layers.hpp"
#include "models/model.hpp"
#include "models/moe/moe_config.hpp"

namespace troupe {

struct GPTConfig {
  std::int64_t vocab_size = 0;  // V
  std::int64_t seq_len = 0;     // maximum T (rows of wpe)
  std::int64_t n_layer = 0;     // L
  std::int64_t n_head = 0;
  std::int64_t n_embd = 0;           // C, a multiple of n_head
  std::int64_t ffn_hidden_size = 0;  // f: the dense FFN's width, or each expert's with use_moe
  Activation activation = Activation::gelu_tanh;
  bool use_moe = false;
  // The MoE layers' options. Their widths come from the GPT: moe.hidden_size and
  // moe.ffn_hidden_size must be 0 (filled in) or equal n_embd and ffn_hidden_size, and
  // moe.activation must equal activation.
  MoEConfig moe;
  float aux_loss_coef = 0.01f;
  std::uint64_t init_seed = 0;
  // This process's rank in its expert-parallel group: each MoE layer holds experts
  // [ep_rank·L, (ep_rank+1)·L), L = moe.num_experts / ep_size.
  std::int64_t ep_rank = 0;

  // Throws std::invalid_argument naming the field, its value and what is allowed.
  void validate() const;
  // `moe` with the widths filled in: the configuration of every MoE layer.
  MoEConfig layer_moe_config() const;
};

// Forward FLOPs per token (2 per multiply-add) of the matrix products with weights (embedding
// lookups excluded) plus attention's q·kᵀ and att·v at full context (2·2·T·C per layer, as in
// Kaplan et al. 2020; the causal mask's savings are not subtracted). Bias and element-wise work
// is not counted. With use_moe the FFN counts the k experts a token visits, and the router its
// C·E logits, so a dense twin with ffn_hidden_size = k·f has the same ffn FLOPs as the MoE model
// with top-k experts of width f.
struct GPTFlops {
  std::int64_t attention = 0;  // c_attn, q·kᵀ, att·v, c_proj over all blocks
  std::int64_t ffn = 0;        // dense FFNs or the experts a token visits, all blocks
  std::int64_t router = 0;     // MoE gates, all blocks (0 for the dense twin)
  std::int64_t head = 0;       // lm_head
  std::int64_t total() const { return attention + ffn + router + head; }
};
GPTFlops gpt_forward_flops_per_token(const GPTConfig& config);

class GPT final : public Model {
 public:
  explicit GPT(const GPTConfig& config);
  ~GPT() override;
  GPT(const GPT&) = delete;  // parameters are handed out by address
  GPT& operator=(const GPT&) = delete;

  const GPTConfig& config() const { return config_; }

  std::string name() const override;
  std::int64_t num_moe_layers() const override;
  MoELayer& moe_layer(std::int64_t index) override;
  float aux_loss_coef() const override { return config_.aux_loss_coef; }
  // wte, wpe, then per block ln_1, c_attn, c_proj, ln_2, FFN (MoE layer or dense MLP), then ln_f,
  // lm_head.
  std::vector<Parameter*> parameters() override;
  std::vector<Parameter*> segment_parameters(std::int64_t segment) override;

  std::unique_ptr<SegmentCache> make_cache() const override;
  // Batch: inputs and targets i32 [B, T] with B ≥ 1, 1 ≤ T ≤ seq_len. MoE inputs and outputs are
  // [B·T, C].
  Tensor forward_segment(std::int64_t segment, const Batch& batch, const Tensor& moe_output,
                         SegmentCache& cache, bool training) override;
  LossResult loss(const SegmentCache& cache) const override;
  std::shared_ptr<Model> make_replica() override;
  // The residual stream x_mid of block s − 1 and its gradient cross MoE layer s − 1 this way.
  Tensor forward_carry(std::int64_t segment, const SegmentCache& cache) const override;
  void accept_forward_carry(std::int64_t segment, SegmentCache& cache,
                            const Tensor& carry) override;
  Tensor backward_carry(std::int64_t segment, const SegmentCache& cache) const override;
  void accept_backward_carry(std::int64_t segment, SegmentCache& cache,
                             const Tensor& carry) override;
  Tensor backward_segment(std::int64_t segment, const Batch& batch, const Tensor& grad_output,
                          SegmentCache& cache) override;

 private:
  ExecContext ctx_ = cpu_context();  // where this model's own ops run (its layers hold theirs)

  struct Block {
    Block(const GPTConfig& config, std::int64_t index);
    LayerNorm ln_1;
    Linear c_attn;  // (3C, C)
    Linear c_proj;  // (C, C)
    LayerNorm ln_2;
    std::optional<DenseMLP> mlp;  // dense twin only
  };
  struct BlockActivations;
  struct Cache;

  std::int64_t last_segment() const { return num_moe_layers(); }
  // Block b's dense parameters: ln_1, c_attn, c_proj, ln_2 (and the dense twin's mlp).
  void append_block_parameters(std::int64_t b, std::vector<Parameter*>& out);
  void check_segment(const char* function, std::int64_t segment) const;
  // Checks the batch and records its B and T in the cache; returns B·T.
  std::int64_t read_batch(const char* function, const Batch& batch, Cache& cache) const;

  Tensor embed(const Batch& batch, Cache& cache) const;
  void embed_backward(const Batch& batch, const Tensor& grad);
  // Block `b` up to ln_2 from residual input x: returns ln_2's output (the FFN input).
  Tensor attention_forward(std::int64_t b, const Tensor& x, Cache& cache) const;
  // From the gradients of x_mid = x + attention (its residual part) and of ln_2's output, back to
  // the gradient of the block input x.
  Tensor attention_backward(std::int64_t b, const Tensor& grad_residual, const Tensor& grad_ln2,
                            Cache& cache);
  Tensor head_forward(const Tensor& x, const Batch& batch, Cache& cache) const;
  Tensor head_backward(const Tensor& grad_output, const Batch& batch, Cache& cache);

  GPTConfig config_;
  Parameter wte_;  // (V, C)
  Parameter wpe_;  // (seq_len, C)
  std::vector<Block> blocks_;
  std::vector<std::unique_ptr<MoELayer>> moe_;  // use_moe: one per block
  LayerNorm ln_f_;
  Linear lm_head_;  // (V, C), no bias
};

}  // namespace troupe
