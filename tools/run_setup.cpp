// Config → datasets and model (see run_setup.hpp).
#include "tools/run_setup.hpp"

#include <stdexcept>

#include "data/cifar10_reader.hpp"
#include "data/idx_reader.hpp"
#include "data/text_dataset.hpp"
#include "models/gpt.hpp"
#include "models/lenet_moe.hpp"

namespace troupe {

MoEConfig moe_config_from(const RunConfig& config) {
  const ModelSection& m = config.model;
  MoEConfig moe;
  moe.hidden_size = m.n_embd;
  moe.num_experts = m.moe.num_experts;
  moe.ep_size = m.moe.ep_size;
  moe.k = m.moe.k;
  moe.capacity_factor = m.moe.capacity_factor;
  moe.eval_capacity_factor = m.moe.eval_capacity_factor;
  moe.min_capacity = m.moe.min_capacity;
  moe.use_residual = m.moe.use_residual;
  moe.noisy_gate_policy = m.moe.noisy_gate_policy;
  moe.drop_tokens = m.moe.drop_tokens;
  moe.use_rts = m.moe.use_rts;
  moe.top2_2nd_expert_sampling = m.moe.top2_2nd_expert_sampling;
  moe.enable_expert_tensor_parallelism = m.moe.enable_expert_tensor_parallelism;
  moe.drop_policy = m.moe.drop_policy;
  moe.ffn_hidden_size = m.ffn_hidden_size > 0 ? m.ffn_hidden_size : m.n_embd;
  if (!parse_activation(m.activation, moe.activation))
    throw std::invalid_argument("model.activation = \"" + m.activation + "\" is not an activation");
  return moe;
}

namespace {

void load_images(RunConfig& config, RunSetup& setup) {
  const DataSection& d = config.data;
  std::shared_ptr<ImageDataset> train, test;
  if (d.dataset == DatasetKind::fashion_mnist) {
    train = std::make_shared<ImageDataset>(load_fashion_mnist(d.path, DataSplit::train));
    test = std::make_shared<ImageDataset>(load_fashion_mnist(d.path, DataSplit::test));
  } else {
    train = std::make_shared<ImageDataset>(load_cifar10(d.path, DataSplit::train));
    test = std::make_shared<ImageDataset>(load_cifar10(d.path, DataSplit::test));
  }
  ModelSection& m = config.model;
  m.image_channels = train->channels();
  m.image_height = train->height();
  m.image_width = train->width();
  m.num_classes = train->num_classes();
  setup.data_summary = std::to_string(train->size()) + " training and " +
                       std::to_string(test->size()) + " test images of " +
                       std::to_string(train->channels()) + "x" + std::to_string(train->height()) +
                       "x" + std::to_string(train->width()) + ", " +
                       std::to_string(train->num_classes()) + " classes, from " + d.path;
  setup.train = train;
  setup.eval = test;
}

void load_text(RunConfig& config, RunSetup& setup) {
  const std::string text = load_kjv_text(config.data.path);
  const CharVocab vocab = CharVocab::from_text(text);
  TokenSplit split = split_tokens(vocab.encode(text), config.data.validation_fraction);
  ModelSection& m = config.model;
  if (m.vocab_size != 0 && m.vocab_size != vocab.size())
    throw std::invalid_argument("model.vocab_size = " + std::to_string(m.vocab_size) +
                                " but the text has " + std::to_string(vocab.size()) +
                                " distinct characters (set 0 to take it from the data)");
  m.vocab_size = vocab.size();
  setup.data_summary = std::to_string(text.size()) + " characters (" +
                       std::to_string(vocab.size()) + " distinct), " +
                       std::to_string(split.train.size()) + " for training, " +
                       std::to_string(split.validation.size()) + " held out for validation";
  setup.train = std::make_shared<TokenWindows>(std::move(split.train), m.seq_len);
  setup.eval = std::make_shared<TokenWindows>(std::move(split.validation), m.seq_len);
  setup.language_model = true;
}

}  // namespace

RunSetup build_run(RunConfig& config, std::int64_t ep_rank) {
  RunSetup setup;
  if (config.data.dataset == DatasetKind::kjv_text) {
    if (!config.model.is_gpt())
      throw std::invalid_argument(
          "data.dataset = \"kjv_text\" needs model.type gpt_moe or gpt_dense");
    load_text(config, setup);
  } else {
    if (config.model.is_gpt())
      throw std::invalid_argument("model.type gpt_* needs data.dataset = \"kjv_text\"");
    load_images(config, setup);
  }
  const ModelSection& m = config.model;
  if (!m.is_gpt()) {
    LeNetMoEConfig c;
    c.channels = m.image_channels;
    c.height = m.image_height;
    c.width = m.image_width;
    c.conv1_padding = m.conv1_padding;
    c.num_classes = m.num_classes;
    c.use_moe = m.has_moe();
    c.moe = moe_config_from(config);
    c.aux_loss_coef = static_cast<float>(m.aux_loss_coef);
    c.init_seed = m.init_seed;
    c.ep_rank = ep_rank;
    setup.model = std::make_shared<LeNetMoE>(c);
  } else {
    GPTConfig c;
    c.vocab_size = m.vocab_size;
    c.seq_len = m.seq_len;
    c.n_layer = m.n_layer;
    c.n_head = m.n_head;
    c.n_embd = m.n_embd;
    c.ffn_hidden_size = m.ffn_hidden_size > 0 ? m.ffn_hidden_size : 4 * m.n_embd;
    c.use_moe = m.has_moe();
    c.moe = moe_config_from(config);
    c.moe.ffn_hidden_size = c.ffn_hidden_size;
    c.activation = c.moe.activation;
    c.aux_loss_coef = static_cast<float>(m.aux_loss_coef);
    c.init_seed = m.init_seed;
    c.ep_rank = ep_rank;
    setup.model = std::make_shared<GPT>(c);
  }
  return setup;
}

}  // namespace troupe
