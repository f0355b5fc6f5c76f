// LeNet-MoE: segments, forward and backward (see lenet_moe.hpp).
#include "models/lenet_moe.hpp"

#include <cmath>
#include <optional>
#include <stdexcept>

#include "models/moe/moe_layer.hpp"

namespace troupe {
namespace {

constexpr std::int64_t kKernel = 5, kConv1Channels = 6, kConv2Channels = 16, kFc1Width = 120;

// Spatial size after conv 5×5 (zero padding `padding`) → pool 2 → conv 5×5 → pool 2.
std::int64_t pooled_extent(std::int64_t extent, std::int64_t padding) {
  return ((extent + 2 * padding - kKernel + 1) / 2 - kKernel + 1) / 2;
}

[[noreturn]] void config_error(const std::string& field, const std::string& value,
                               const std::string& allowed) {
  throw std::invalid_argument("LeNetMoEConfig: " + field + " = " + value + ", " + allowed);
}

const LeNetMoEConfig& validated(const LeNetMoEConfig& config) {
  config.validate();
  return config;
}

}  // namespace

MoEConfig lenet_default_moe_config() {
  MoEConfig moe;
  moe.hidden_size = 84;
  moe.ffn_hidden_size = 84;
  moe.activation = Activation::relu;
  return moe;
}

void LeNetMoEConfig::validate() const {
  if (channels < 1) config_error("channels", std::to_string(channels), "must be >= 1");
  if (conv1_padding < 0 || conv1_padding > 8)
    config_error("conv1_padding", std::to_string(conv1_padding), "must be between 0 and 8");
  // The second pool needs a 2×2 input: (H − 4) / 2 − 4 ≥ 2.
  if (height < 16) config_error("height", std::to_string(height), "must be >= 16");
  if (width < 16) config_error("width", std::to_string(width), "must be >= 16");
  if (num_classes < 2) config_error("num_classes", std::to_string(num_classes), "must be >= 2");
  if (!std::isfinite(aux_loss_coef) || aux_loss_coef < 0.0f)
    config_error("aux_loss_coef", std::to_string(aux_loss_coef), "must be finite and >= 0");
  moe.validate();
}

std::int64_t LeNetMoEConfig::flat_features() const {
  return kConv2Channels * pooled_extent(height, conv1_padding) *
         pooled_extent(width, conv1_padding);
}

// Saved activations of one micro-batch; names follow the layers that produced them.
struct LeNetMoE::Cache final : SegmentCache {
  Tensor conv1, relu1, pool1, pool1_argmax;
  Tensor conv2, relu2, pool2, pool2_argmax;
  Tensor flat, fc1, relu3, fc2, features;  // features = ReLU(fc2), fc3's input
  MLPActivations mlp;                      // dense twin's fc3
  Tensor head_input, logits, probs;        // head_input = fc3's output
  std::optional<LossResult> result;
};

LeNetMoE::LeNetMoE(const LeNetMoEConfig& config)
    : config_(validated(config)),
      conv1_("conv1", config.channels, kConv1Channels, kKernel, config.conv1_padding),
      conv2_("conv2", kConv1Channels, kConv2Channels, kKernel),
      fc1_("fc1", config.flat_features(), kFc1Width, true),
      fc2_("fc2", kFc1Width, config.moe.hidden_size, true),
      fc4_("fc4", config.moe.hidden_size, config.num_classes, true) {
  std::mt19937_64 rng(config_.init_seed);
  conv1_.init_pytorch(rng);
  conv2_.init_pytorch(rng);
  fc1_.init_pytorch(rng);
  fc2_.init_pytorch(rng);
  fc4_.init_pytorch(rng);
  if (config_.use_moe) {
    moe_ = std::make_unique<MoELayer>(config_.moe, rng(), "fc3", config_.ep_rank);
  } else {
    dense_ = std::make_unique<DenseMLP>("fc3", config_.moe.hidden_size, config_.moe.ffn_hidden_size,
                                        config_.moe.activation);
    dense_->fc().init_pytorch(rng);
    dense_->proj().init_pytorch(rng);
  }
}

LeNetMoE::~LeNetMoE() = default;

std::string LeNetMoE::name() const {
  return config_.use_moe ? "lenet_moe" : "lenet_dense";
}

MoELayer& LeNetMoE::moe_layer(std::int64_t index) {
  if (index < 0 || index >= num_moe_layers())
    throw std::out_of_range("LeNetMoE::moe_layer: index = " + std::to_string(index) +
                            ", the model has " + std::to_string(num_moe_layers()) + " MoE layers");
  return *moe_;
}

std::vector<Parameter*> LeNetMoE::parameters() {
  std::vector<Parameter*> out = segment_parameters(0);
  if (config_.use_moe) {
    for (Parameter* p : moe_->parameters()) out.push_back(p);
    fc4_.append_parameters(out);
  }
  return out;
}

std::vector<Parameter*> LeNetMoE::segment_parameters(std::int64_t segment) {
  check_segment("LeNetMoE::segment_parameters", segment);
  std::vector<Parameter*> out;
  if (segment == 0) {
    conv1_.append_parameters(out);
    conv2_.append_parameters(out);
    fc1_.append_parameters(out);
    fc2_.append_parameters(out);
    if (dense_) dense_->append_parameters(out);
  }
  if (segment == last_segment()) fc4_.append_parameters(out);
  return out;
}

std::unique_ptr<SegmentCache> LeNetMoE::make_cache() const {
  return std::make_unique<Cache>();
}

void LeNetMoE::check_segment(const char* function, std::int64_t segment) const {
  if (segment < 0 || segment > last_segment())
    throw std::out_of_range(std::string(function) + ": segment = " + std::to_string(segment) +
                            ", allowed 0.." + std::to_string(last_segment()));
}

std::int64_t LeNetMoE::batch_size(const Batch& batch) const {
  const std::int64_t b =
      batch.inputs.defined() && batch.inputs.dim() == 4 ? batch.inputs.size(0) : 0;
  if (b < 1)
    throw std::invalid_argument(
        "LeNetMoE: batch.inputs must be f32 [B >= 1, " + std::to_string(config_.channels) + ", " +
        std::to_string(config_.height) + ", " + std::to_string(config_.width) + "], got " +
        (batch.inputs.defined() ? shape_string(batch.inputs.shape())
                                : std::string("an undefined tensor")));
  require_tensor(batch.inputs, DType::f32, {b, config_.channels, config_.height, config_.width},
                 "LeNetMoE: batch.inputs");
  return b;
}

Tensor LeNetMoE::forward_segment(std::int64_t segment, const Batch& batch, const Tensor& moe_output,
                                 SegmentCache& cache, bool /*training: no dropout here*/) {
  check_segment("LeNetMoE::forward_segment", segment);
  Cache& c = cache_cast<Cache>(cache, "LeNetMoE::forward_segment");
  if (segment == 0) {
    c.result.reset();
    const Tensor features = features_forward(batch, c);
    if (config_.use_moe) return features;
    return head_forward(dense_->forward(features, c.mlp), batch, c);
  }
  require_tensor(moe_output, DType::f32, {batch_size(batch), config_.moe.hidden_size},
                 "LeNetMoE::forward_segment(1): moe_output");
  return head_forward(moe_output, batch, c);
}

LossResult LeNetMoE::loss(const SegmentCache& cache) const {
  const Cache& c = cache_cast<const Cache>(cache, "LeNetMoE::loss");
  if (!c.result)
    throw std::logic_error("LeNetMoE::loss: the last segment has not run forward on this cache");
  return *c.result;
}

Tensor LeNetMoE::backward_segment(std::int64_t segment, const Batch& batch,
                                  const Tensor& grad_output, SegmentCache& cache) {
  check_segment("LeNetMoE::backward_segment", segment);
  Cache& c = cache_cast<Cache>(cache, "LeNetMoE::backward_segment");
  if (segment == last_segment()) {
    const Tensor grad_head_input = head_backward(grad_output, batch, c);
    if (config_.use_moe) return grad_head_input;
    features_backward(batch, dense_->backward(c.features, c.mlp, grad_head_input), c);
    return Tensor();
  }
  require_tensor(grad_output, DType::f32, {batch_size(batch), config_.moe.hidden_size},
                 "LeNetMoE::backward_segment(0): grad_output");
  features_backward(batch, grad_output, c);
  return Tensor();
}

Tensor LeNetMoE::features_forward(const Batch& batch, Cache& c) const {
  const std::int64_t b = batch_size(batch);
  c.conv1 = conv1_.forward(batch.inputs);
  c.relu1 = apply_activation(ctx_, Activation::relu, c.conv1);
  c.pool1 = max_pool2(ctx_, c.relu1, c.pool1_argmax);
  c.conv2 = conv2_.forward(c.pool1);
  c.relu2 = apply_activation(ctx_, Activation::relu, c.conv2);
  c.pool2 = max_pool2(ctx_, c.relu2, c.pool2_argmax);
  c.flat = c.pool2.view({b, config_.flat_features()});
  c.fc1 = fc1_.forward(c.flat);
  c.relu3 = apply_activation(ctx_, Activation::relu, c.fc1);
  c.fc2 = fc2_.forward(c.relu3);
  c.features = apply_activation(ctx_, Activation::relu, c.fc2);
  return c.features;
}

void LeNetMoE::features_backward(const Batch& batch, const Tensor& grad_features, Cache& c) {
  if (!c.features.defined())
    throw std::logic_error(
        "LeNetMoE::backward_segment(0): segment 0 has not run forward on "
        "this cache");
  const Tensor d_relu3 =
      fc2_.backward(c.relu3, activation_grad(ctx_, Activation::relu, c.fc2, grad_features));
  const Tensor d_flat =
      fc1_.backward(c.flat, activation_grad(ctx_, Activation::relu, c.fc1, d_relu3));
  const Tensor d_relu2 =
      max_pool2_grad(ctx_, c.relu2, c.pool2_argmax, d_flat.view(c.pool2.shape()));
  const Tensor d_pool1 =
      conv2_.backward(c.pool1, activation_grad(ctx_, Activation::relu, c.conv2, d_relu2), true);
  const Tensor d_relu1 = max_pool2_grad(ctx_, c.relu1, c.pool1_argmax, d_pool1);
  conv1_.backward(batch.inputs, activation_grad(ctx_, Activation::relu, c.conv1, d_relu1), false);
}

Tensor LeNetMoE::head_forward(const Tensor& fc3_output, const Batch& batch, Cache& c) const {
  const std::int64_t b = fc3_output.size(0);
  require_tensor(batch.targets, DType::i32, {b}, "LeNetMoE: batch.targets");
  c.head_input = fc3_output;
  c.logits = fc4_.forward(fc3_output);
  c.result = cross_entropy(ctx_, c.logits, batch.targets, c.probs);
  return loss_tensor(c.result->loss);
}

Tensor LeNetMoE::head_backward(const Tensor& grad_output, const Batch& batch, Cache& c) {
  const std::string function = "LeNetMoE::backward_segment(" + std::to_string(last_segment()) + ")";
  const float dloss = loss_gradient(grad_output, function);
  if (!c.result)
    throw std::logic_error(function + ": the last segment has not run forward on this cache");
  return fc4_.backward(c.head_input, cross_entropy_grad(ctx_, c.probs, batch.targets, dloss));
}

std::shared_ptr<Model> LeNetMoE::make_replica() {
  auto replica = std::make_shared<LeNetMoE>(config_);
  share_parameter_values(*replica, *this);
  return replica;
}

}  // namespace troupe
