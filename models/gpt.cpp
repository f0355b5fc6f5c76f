// GPT with dense or MoE FFNs: segments, forward and backward (see gpt.hpp).
#include "models/gpt.hpp"

#include <cmath>
#include <stdexcept>

#include "kernels/ops/attention.hpp"
#include "kernels/ops/embedding.hpp"
#include "kernels/ops/reduce.hpp"
#include "models/moe/moe_layer.hpp"

namespace troupe {
namespace {

constexpr float kInitStd = 0.02f;  // GPT-2's

[[noreturn]] void config_error(const std::string& field, const std::string& value,
                               const std::string& allowed) {
  throw std::invalid_argument("GPTConfig: " + field + " = " + value + ", " + allowed);
}

void require_at_least(const char* field, std::int64_t value, std::int64_t minimum) {
  if (value < minimum)
    config_error(field, std::to_string(value), "must be >= " + std::to_string(minimum));
}

const GPTConfig& validated(const GPTConfig& config) {
  config.validate();
  return config;
}

Tensor sum(const ExecContext& ctx, const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape());
  ops::add(ctx, a, b, out);
  return out;
}

void add_into(const ExecContext& ctx, Tensor& dst, const Tensor& src) {
  ops::axpy(ctx, 1.0f, src, dst);
}

}  // namespace

void GPTConfig::validate() const {
  require_at_least("vocab_size", vocab_size, 2);
  require_at_least("seq_len", seq_len, 1);
  require_at_least("n_layer", n_layer, 1);
  require_at_least("n_head", n_head, 1);
  require_at_least("ffn_hidden_size", ffn_hidden_size, 1);
  if (n_embd < 1 || n_embd % n_head != 0)
    config_error("n_embd", std::to_string(n_embd),
                 "must be a positive multiple of n_head = " + std::to_string(n_head));
  if (!std::isfinite(aux_loss_coef) || aux_loss_coef < 0.0f)
    config_error("aux_loss_coef", std::to_string(aux_loss_coef), "must be finite and >= 0");
  if (!use_moe) return;  // the dense twin has no MoE layer to configure
  if (moe.hidden_size != 0 && moe.hidden_size != n_embd)
    config_error("moe.hidden_size", std::to_string(moe.hidden_size),
                 "must be 0 (taken from the model) or n_embd = " + std::to_string(n_embd));
  if (moe.ffn_hidden_size != 0 && moe.ffn_hidden_size != ffn_hidden_size)
    config_error(
        "moe.ffn_hidden_size", std::to_string(moe.ffn_hidden_size),
        "must be 0 (taken from the model) or ffn_hidden_size = " + std::to_string(ffn_hidden_size));
  if (moe.activation != activation)
    config_error("moe.activation", std::string(activation_name(moe.activation)),
                 "must equal activation = " + std::string(activation_name(activation)));
  layer_moe_config().validate();
}

MoEConfig GPTConfig::layer_moe_config() const {
  MoEConfig layer = moe;
  layer.hidden_size = n_embd;
  layer.ffn_hidden_size = ffn_hidden_size;
  return layer;
}

GPTFlops gpt_forward_flops_per_token(const GPTConfig& config) {
  config.validate();
  const std::int64_t c = config.n_embd, f = config.ffn_hidden_size, layers = config.n_layer;
  GPTFlops flops;
  flops.attention = layers * 2 * (c * 3 * c + 2 * config.seq_len * c + c * c);
  const std::int64_t experts_per_token = config.use_moe ? config.moe.k : 1;
  flops.ffn = layers * experts_per_token * 2 * (c * f + f * c);
  flops.router = config.use_moe ? layers * 2 * c * config.moe.num_experts : 0;
  flops.head = 2 * c * config.vocab_size;
  return flops;
}

// ---- Parameters --------------------------------------------------------------------------------

GPT::Block::Block(const GPTConfig& config, std::int64_t index)
    : ln_1("h." + std::to_string(index) + ".ln_1", config.n_embd),
      c_attn("h." + std::to_string(index) + ".attn.c_attn", config.n_embd, 3 * config.n_embd, true),
      c_proj("h." + std::to_string(index) + ".attn.c_proj", config.n_embd, config.n_embd, true),
      ln_2("h." + std::to_string(index) + ".ln_2", config.n_embd) {
  if (!config.use_moe)
    mlp.emplace("h." + std::to_string(index) + ".mlp", config.n_embd, config.ffn_hidden_size,
                config.activation);
}

GPT::GPT(const GPTConfig& config)
    : config_(validated(config)),
      wte_(make_parameter("wte.weight", {config.vocab_size, config.n_embd}, false)),
      wpe_(make_parameter("wpe.weight", {config.seq_len, config.n_embd}, false)),
      ln_f_("ln_f", config.n_embd),
      lm_head_("lm_head", config.n_embd, config.vocab_size, false) {
  std::mt19937_64 rng(config_.init_seed);
  // GPT-2 scales the projections into the residual stream so its variance does not grow with depth.
  const float residual_std = kInitStd / std::sqrt(2.0f * static_cast<float>(config_.n_layer));
  init_normal(wte_.value, kInitStd, rng);
  init_normal(wpe_.value, kInitStd, rng);
  blocks_.reserve(static_cast<std::size_t>(config_.n_layer));
  for (std::int64_t b = 0; b < config_.n_layer; ++b) {
    Block& block = blocks_.emplace_back(config_, b);
    block.c_attn.init_normal(kInitStd, rng);
    block.c_proj.init_normal(residual_std, rng);
    if (block.mlp) {
      block.mlp->fc().init_normal(kInitStd, rng);
      block.mlp->proj().init_normal(residual_std, rng);
    } else {
      moe_.push_back(std::make_unique<MoELayer>(
          config_.layer_moe_config(), rng(), "h." + std::to_string(b) + ".moe", config_.ep_rank));
    }
  }
  lm_head_.init_normal(kInitStd, rng);
}

GPT::~GPT() = default;

std::string GPT::name() const {
  return config_.use_moe ? "gpt_moe" : "gpt_dense";
}

std::int64_t GPT::num_moe_layers() const {
  return static_cast<std::int64_t>(moe_.size());
}

MoELayer& GPT::moe_layer(std::int64_t index) {
  if (index < 0 || index >= num_moe_layers())
    throw std::out_of_range("GPT::moe_layer: index = " + std::to_string(index) +
                            ", the model has " + std::to_string(num_moe_layers()) + " MoE layers");
  return *moe_[static_cast<std::size_t>(index)];
}

void GPT::append_block_parameters(std::int64_t b, std::vector<Parameter*>& out) {
  Block& block = blocks_[static_cast<std::size_t>(b)];
  block.ln_1.append_parameters(out);
  block.c_attn.append_parameters(out);
  block.c_proj.append_parameters(out);
  block.ln_2.append_parameters(out);
  if (block.mlp) block.mlp->append_parameters(out);
}

std::vector<Parameter*> GPT::parameters() {
  std::vector<Parameter*> out{&wte_, &wpe_};
  for (std::int64_t b = 0; b < config_.n_layer; ++b) {
    append_block_parameters(b, out);
    if (config_.use_moe)
      for (Parameter* p : moe_layer(b).parameters()) out.push_back(p);
  }
  ln_f_.append_parameters(out);
  lm_head_.append_parameters(out);
  return out;
}

std::vector<Parameter*> GPT::segment_parameters(std::int64_t segment) {
  check_segment("GPT::segment_parameters", segment);
  std::vector<Parameter*> out;
  if (segment == 0) out = {&wte_, &wpe_};
  if (config_.use_moe) {
    if (segment < last_segment()) append_block_parameters(segment, out);
  } else {
    for (std::int64_t b = 0; b < config_.n_layer; ++b) append_block_parameters(b, out);
  }
  if (segment == last_segment()) {
    ln_f_.append_parameters(out);
    lm_head_.append_parameters(out);
  }
  return out;
}

void GPT::check_segment(const char* function, std::int64_t segment) const {
  if (segment < 0 || segment > last_segment())
    throw std::out_of_range(std::string(function) + ": segment = " + std::to_string(segment) +
                            ", allowed 0.." + std::to_string(last_segment()));
}

// ---- Cache -------------------------------------------------------------------------------------

// Block b's saved activations for one micro-batch (rows = B·T).
struct GPT::BlockActivations {
  Tensor x;  // (rows, C) the block's input, the residual stream
  LayerNormActivations ln_1;
  Tensor qkv;    // (rows, 3C)
  Tensor att;    // (B, n_head, T, T) attention probabilities
  Tensor atty;   // (rows, C) attention output before c_proj
  Tensor x_mid;  // (rows, C) x + c_proj(atty): the residual the FFN's output is added to
  LayerNormActivations ln_2;
  MLPActivations mlp;  // dense twin
  // MoE: d(loss)/d(x_mid) through the residual path, left by the next segment's backward.
  Tensor grad_x_mid;
};

struct GPT::Cache final : SegmentCache {
  explicit Cache(std::int64_t layers) : blocks(static_cast<std::size_t>(layers)) {}
  std::int64_t batch = 0, seq = 0;
  std::vector<BlockActivations> blocks;
  Tensor x_final;  // (rows, C) ln_f's input
  LayerNormActivations ln_f;
  Tensor logits, probs;  // (rows, V)
  std::optional<LossResult> result;
};

std::unique_ptr<SegmentCache> GPT::make_cache() const {
  return std::make_unique<Cache>(config_.n_layer);
}

std::int64_t GPT::read_batch(const char* function, const Batch& batch, Cache& cache) const {
  const Tensor& in = batch.inputs;
  const bool ok = in.defined() && in.dim() == 2 && in.size(0) >= 1 && in.size(1) >= 1 &&
                  in.size(1) <= config_.seq_len;
  if (!ok)
    throw std::invalid_argument(
        std::string(function) + ": batch.inputs must be i32 [B >= 1, 1 <= T <= seq_len = " +
        std::to_string(config_.seq_len) + "], got " +
        (in.defined() ? shape_string(in.shape()) : std::string("an undefined tensor")));
  require_tensor(in, DType::i32, in.shape(), std::string(function) + ": batch.inputs");
  require_tensor(batch.targets, DType::i32, in.shape(), std::string(function) + ": batch.targets");
  cache.batch = in.size(0);
  cache.seq = in.size(1);
  return cache.batch * cache.seq;
}

// ---- Segments ----------------------------------------------------------------------------------

Tensor GPT::forward_segment(std::int64_t segment, const Batch& batch, const Tensor& moe_output,
                            SegmentCache& cache, bool /*training: no dropout here*/) {
  const char* function = "GPT::forward_segment";
  check_segment(function, segment);
  Cache& c = cache_cast<Cache>(cache, function);
  const std::int64_t rows = read_batch(function, batch, c);
  if (!config_.use_moe) {
    Tensor x = embed(batch, c);
    for (std::int64_t b = 0; b < config_.n_layer; ++b) {
      BlockActivations& a = c.blocks[static_cast<std::size_t>(b)];
      const Tensor h = attention_forward(b, x, c);
      x = sum(ctx_, a.x_mid, blocks_[static_cast<std::size_t>(b)].mlp->forward(h, a.mlp));
    }
    return head_forward(x, batch, c);
  }
  if (segment == 0) {
    c.result.reset();
    return attention_forward(0, embed(batch, c), c);
  }
  const Tensor& residual = c.blocks[static_cast<std::size_t>(segment - 1)].x_mid;
  if (!residual.defined() || residual.size(0) != rows)
    throw std::logic_error(std::string(function) + "(" + std::to_string(segment) + "): segment " +
                           std::to_string(segment - 1) +
                           " has not run forward on this batch and cache");
  require_tensor(moe_output, DType::f32, {rows, config_.n_embd},
                 std::string(function) + "(" + std::to_string(segment) + "): moe_output");
  const Tensor x = sum(ctx_, residual, moe_output);
  if (segment == last_segment()) return head_forward(x, batch, c);
  return attention_forward(segment, x, c);
}

LossResult GPT::loss(const SegmentCache& cache) const {
  const Cache& c = cache_cast<const Cache>(cache, "GPT::loss");
  if (!c.result)
    throw std::logic_error("GPT::loss: the last segment has not run forward on this cache");
  return *c.result;
}

Tensor GPT::backward_segment(std::int64_t segment, const Batch& batch, const Tensor& grad_output,
                             SegmentCache& cache) {
  const char* function = "GPT::backward_segment";
  check_segment(function, segment);
  Cache& c = cache_cast<Cache>(cache, function);
  const std::int64_t rows = read_batch(function, batch, c);
  if (!config_.use_moe) {
    Tensor grad_x = head_backward(grad_output, batch, c);
    for (std::int64_t b = config_.n_layer - 1; b >= 0; --b) {
      const BlockActivations& a = c.blocks[static_cast<std::size_t>(b)];
      // x_out = x_mid + mlp(ln_2(x_mid)): grad_x flows into both terms.
      const Tensor grad_h =
          blocks_[static_cast<std::size_t>(b)].mlp->backward(a.ln_2.y, a.mlp, grad_x);
      grad_x = attention_backward(b, grad_x, grad_h, c);
    }
    embed_backward(batch, grad_x);
    return Tensor();
  }
  Tensor grad_x;
  if (segment == last_segment()) {
    grad_x = head_backward(grad_output, batch, c);
  } else {
    BlockActivations& a = c.blocks[static_cast<std::size_t>(segment)];
    const std::string where = std::string(function) + "(" + std::to_string(segment) + ")";
    require_tensor(grad_output, DType::f32, {rows, config_.n_embd}, where + ": grad_output");
    if (!a.grad_x_mid.defined())
      throw std::logic_error(where + ": segment " + std::to_string(segment + 1) +
                             " has not run backward on this cache");
    grad_x = attention_backward(segment, a.grad_x_mid, grad_output, c);
    a.grad_x_mid = Tensor();  // consumed: a repeated backward must not reuse it
  }
  if (segment == 0) {
    embed_backward(batch, grad_x);
    return Tensor();
  }
  // x = residual + moe_output: both get grad_x. The cache keeps its own copy, so the caller may
  // modify the returned gradient.
  c.blocks[static_cast<std::size_t>(segment - 1)].grad_x_mid = grad_x;
  return grad_x.clone();
}

// ---- Layers ------------------------------------------------------------------------------------

Tensor GPT::embed(const Batch& batch, Cache& c) const {
  const std::int64_t rows = c.batch * c.seq, ch = config_.n_embd;
  Tensor x = Tensor::empty({rows, ch});
  ops::embedding_forward(ctx_, batch.inputs, wte_.value, x);
  // Position embeddings, one sequence at a time: element for element the same additions as a
  // per-row loop, so the result is bit-identical.
  const Tensor wpe = wpe_.value.slice_rows(0, c.seq);
  for (std::int64_t b = 0; b < c.batch; ++b)
    ops::axpy(ctx_, 1.0f, wpe, x.slice_rows(b * c.seq, (b + 1) * c.seq));
  return x;
}

void GPT::embed_backward(const Batch& batch, const Tensor& grad) {
  const std::int64_t rows = grad.size(0), seq = batch.inputs.size(1);
  ops::embedding_backward(ctx_, batch.inputs, grad, wte_.grad);
  // Each dwpe row gets its sequences' gradients in batch order, as a per-row loop would add them.
  const Tensor dwpe = wpe_.grad.slice_rows(0, seq);
  for (std::int64_t b = 0; b < rows / seq; ++b)
    ops::axpy(ctx_, 1.0f, grad.slice_rows(b * seq, (b + 1) * seq), dwpe);
}

Tensor GPT::attention_forward(std::int64_t b, const Tensor& x, Cache& c) const {
  const Block& block = blocks_[static_cast<std::size_t>(b)];
  BlockActivations& a = c.blocks[static_cast<std::size_t>(b)];
  a.x = x;
  a.qkv = block.c_attn.forward(block.ln_1.forward(x, a.ln_1));
  a.att = Tensor::empty({c.batch, config_.n_head, c.seq, c.seq});
  a.atty = Tensor::empty(x.shape());
  ops::attention_forward(ctx_, c.batch, c.seq, config_.n_head, a.qkv, a.atty, a.att);
  a.x_mid = sum(ctx_, x, block.c_proj.forward(a.atty));
  a.grad_x_mid = Tensor();
  return block.ln_2.forward(a.x_mid, a.ln_2);
}

Tensor GPT::attention_backward(std::int64_t b, const Tensor& grad_residual, const Tensor& grad_ln2,
                               Cache& c) {
  Block& block = blocks_[static_cast<std::size_t>(b)];
  const BlockActivations& a = c.blocks[static_cast<std::size_t>(b)];
  if (!a.x_mid.defined())
    throw std::logic_error("GPT: block " + std::to_string(b) +
                           " has not run forward on this cache");
  Tensor grad_x_mid = block.ln_2.backward(a.x_mid, a.ln_2, grad_ln2);
  add_into(ctx_, grad_x_mid, grad_residual);
  const Tensor grad_atty = block.c_proj.backward(a.atty, grad_x_mid);
  Tensor grad_qkv = Tensor::empty(a.qkv.shape());
  ops::attention_backward(ctx_, c.batch, c.seq, config_.n_head, a.qkv, a.att, grad_atty, grad_qkv);
  const Tensor grad_ln1 = block.c_attn.backward(a.ln_1.y, grad_qkv);
  // x_mid = x + attention(ln_1(x)): the residual path adds grad_x_mid unchanged.
  Tensor grad_x = block.ln_1.backward(a.x, a.ln_1, grad_ln1);
  add_into(ctx_, grad_x, grad_x_mid);
  return grad_x;
}

Tensor GPT::head_forward(const Tensor& x, const Batch& batch, Cache& c) const {
  c.x_final = x;
  c.logits = lm_head_.forward(ln_f_.forward(x, c.ln_f));
  c.result = cross_entropy(ctx_, c.logits, batch.targets, c.probs);
  return loss_tensor(c.result->loss);
}

Tensor GPT::head_backward(const Tensor& grad_output, const Batch& batch, Cache& c) {
  const std::string function = "GPT::backward_segment(" + std::to_string(last_segment()) + ")";
  const float dloss = loss_gradient(grad_output, function);
  if (!c.result)
    throw std::logic_error(function + ": the last segment has not run forward on this cache");
  const Tensor grad_y =
      lm_head_.backward(c.ln_f.y, cross_entropy_grad(ctx_, c.probs, batch.targets, dloss));
  return ln_f_.backward(c.x_final, c.ln_f, grad_y);
}

std::shared_ptr<Model> GPT::make_replica() {
  auto replica = std::make_shared<GPT>(config_);
  share_parameter_values(*replica, *this);
  return replica;
}

// The residual x_mid of block s leaves segment s (s < L) and is added to MoE layer s's output in
// segment s + 1; its gradient goes the other way. Without MoE layers there is one segment and
// nothing to carry.
Tensor GPT::forward_carry(std::int64_t segment, const SegmentCache& cache) const {
  check_segment("GPT::forward_carry", segment);
  if (!config_.use_moe || segment == last_segment()) return Tensor();
  const Cache& c = cache_cast<const Cache>(cache, "GPT::forward_carry");
  return c.blocks[static_cast<std::size_t>(segment)].x_mid;
}

void GPT::accept_forward_carry(std::int64_t segment, SegmentCache& cache, const Tensor& carry) {
  check_segment("GPT::accept_forward_carry", segment);
  if (!config_.use_moe || segment == 0) return;
  Cache& c = cache_cast<Cache>(cache, "GPT::accept_forward_carry");
  c.blocks[static_cast<std::size_t>(segment - 1)].x_mid = carry;
}

Tensor GPT::backward_carry(std::int64_t segment, const SegmentCache& cache) const {
  check_segment("GPT::backward_carry", segment);
  if (!config_.use_moe || segment == 0) return Tensor();
  const Cache& c = cache_cast<const Cache>(cache, "GPT::backward_carry");
  return c.blocks[static_cast<std::size_t>(segment - 1)].grad_x_mid;
}

void GPT::accept_backward_carry(std::int64_t segment, SegmentCache& cache, const Tensor& carry) {
  check_segment("GPT::accept_backward_carry", segment);
  if (!config_.use_moe || segment == last_segment()) return;
  Cache& c = cache_cast<Cache>(cache, "GPT::accept_backward_carry");
  c.blocks[static_cast<std::size_t>(segment)].grad_x_mid = carry;
}

}  // namespace troupe
