// Loading and validating run configs (see run_config.hpp). Each parse_* function reads one section
// through a JsonSection, so the keys it reads are the section's schema; cross-section rules (batch
// sizes, MoE layout against the world size, model against dataset) follow once every section is
// read.
#include "configs/run_config.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "configs/deepspeed_keys.hpp"
#include "configs/json_section.hpp"

namespace troupe {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

[[noreturn]] void not_implemented(const JsonSection& section, std::string_view key,
                                  const std::string& area, const std::string& instead) {
  section.fail(key, "valid DeepSpeed, but not implemented yet in troupe: " + area + "; " + instead);
}

// ---- DeepSpeed sections -------------------------------------------------------------------------

OptimizerSection parse_optimizer(JsonSection& root, std::int64_t world_size) {
  JsonSection section = root.required_section(
      "optimizer",
      "{\"type\": \"Adam\", \"params\": {\"lr\": 0.001}} (troupe has no client-side "
      "optimizer)");
  const std::string raw_type = section.string("type", "");
  static const std::set<std::string> kOtherDeepSpeedOptimizers = {
      "adagrad", "lamb",   "onebitadam", "onebitlamb", "zerooneadam",
      "lion",    "muadam", "muadamw",    "musgd",      "muon"};
  std::string lowered;
  for (char c : raw_type) lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (kOtherDeepSpeedOptimizers.count(lowered))
    not_implemented(section, "type", "optimizers (troupe runs Adam and AdamW)",
                    "use \"Adam\" or \"AdamW\"");

  OptimizerSection out;
  out.type = section.required_choice("type", {"Adam", "AdamW"}, /*case_insensitive=*/true) == "Adam"
                 ? OptimizerType::adam
                 : OptimizerType::adamw;
  JsonSection params = section.required_section("params", "{\"lr\": 0.001}");
  out.lr = params.required_number("lr", 0.0, kInf, /*min_exclusive=*/true);
  auto betas = params.number_array("betas", {out.betas[0], out.betas[1]}, 2, 0.0, 1.0);
  // beta = 1 never forgets and makes Adam's bias correction 1 − beta^t divide by zero.
  if (betas[0] >= 1.0 || betas[1] >= 1.0) params.fail("betas", "each beta must be < 1");
  out.betas = {betas[0], betas[1]};
  out.eps = params.number("eps", out.eps, 0.0, kInf, /*min_exclusive=*/true);
  out.weight_decay = params.number("weight_decay", out.weight_decay, 0.0, kInf);
  out.bias_correction = params.boolean("bias_correction", out.bias_correction);
  out.adam_w_mode = params.boolean("adam_w_mode", out.adam_w_mode);
  if (out.type == OptimizerType::adamw && !out.adam_w_mode)
    params.fail(
        "adam_w_mode",
        "false contradicts type \"AdamW\" (DeepSpeed ignores it and runs AdamW); remove it, "
        "or use type \"Adam\" for L2-style weight decay");
  apply_key_rules(params, "optimizer.params", world_size);
  params.finish();
  apply_key_rules(section, "optimizer", world_size);
  section.finish();
  return out;
}

std::optional<SchedulerSection> parse_scheduler(JsonSection& root,
                                                const OptimizerSection& optimizer,
                                                std::int64_t world_size) {
  auto section = root.section("scheduler");
  if (!section) return std::nullopt;
  const std::string raw_type = section->string("type", "");
  if (raw_type == "LRRangeTest" || raw_type == "OneCycle" || raw_type == "WarmupCosineLR")
    not_implemented(*section, "type", "learning-rate schedulers",
                    "use \"WarmupLR\" or \"WarmupDecayLR\"");
  SchedulerSection out;
  out.type = section->required_choice("type", {"WarmupLR", "WarmupDecayLR"}) == "WarmupLR"
                 ? SchedulerType::warmup_lr
                 : SchedulerType::warmup_decay_lr;
  const bool decay = out.type == SchedulerType::warmup_decay_lr;
  auto params = decay ? std::optional<JsonSection>(section->required_section(
                            "params", "{\"total_num_steps\": 10000, \"warmup_num_steps\": 500}"))
                      : section->section("params");
  // DeepSpeed's defaults: WarmupLR's warmup_max_lr is the optimizer's lr, WarmupDecayLR's 0.001.
  out.warmup_max_lr = decay ? 1e-3 : optimizer.lr;
  if (params) {
    out.warmup_min_lr = params->number("warmup_min_lr", out.warmup_min_lr, 0.0, kInf);
    out.warmup_max_lr = params->number("warmup_max_lr", out.warmup_max_lr, 0.0, kInf);
    out.warmup_num_steps = params->integer("warmup_num_steps", out.warmup_num_steps, 1);
    out.warmup_type = params->choice("warmup_type", "log", {"log", "linear"}) == "log"
                          ? WarmupType::log
                          : WarmupType::linear;
    if (decay) {
      out.total_num_steps = params->required_integer("total_num_steps", 1);
      // DeepSpeed only warns here; a schedule that decays before it has warmed up is a mistake.
      if (out.total_num_steps < out.warmup_num_steps)
        params->fail("total_num_steps",
                     "must be >= warmup_num_steps = " + std::to_string(out.warmup_num_steps));
    } else {
      params->forbid("total_num_steps", "only WarmupDecayLR takes total_num_steps");
    }
    apply_key_rules(*params, "scheduler.params", world_size);
    params->finish();
  }
  apply_key_rules(*section, "scheduler", world_size);
  section->finish();
  return out;
}

// fp16 and bf16 are refused when enabled; every other key of theirs is then a no-op (the table
// says why), so the table alone decides these sections.
FP16Section parse_fp16(JsonSection& root, std::int64_t world_size) {
  FP16Section out;
  if (auto section = root.section("fp16")) {
    apply_key_rules(*section, "fp16", world_size);
    section->finish();
  }
  return out;
}

BF16Section parse_bf16(JsonSection& root, std::int64_t world_size) {
  BF16Section out;
  if (auto section = root.section("bf16")) {
    apply_key_rules(*section, "bf16", world_size);
    section->finish();
  }
  return out;
}

ZeroSection parse_zero(JsonSection& root, std::int64_t world_size) {
  ZeroSection out;
  auto section = root.section("zero_optimization");
  if (!section) return out;
  out.stage = section->integer("stage", out.stage, 0, 3);
  if (out.stage == 2)
    not_implemented(*section, "stage", "ZeRO stage 2 (gradient partitioning)", "use stage 0 or 1");
  if (out.stage == 3)
    not_implemented(*section, "stage", "ZeRO stage 3 (parameter partitioning)", "use stage 0 or 1");
  if (auto offload = section->section("offload_optimizer")) {
    const std::string device = offload->choice("device", "none", {"none", "cpu", "nvme"});
    if (device == "nvme")
      not_implemented(*offload, "device", "NVMe offload (ZeRO-Infinity)",
                      "use \"cpu\" or \"none\"");
    out.offload_optimizer.device = device == "cpu" ? OffloadDevice::cpu : OffloadDevice::none;
    apply_key_rules(*offload, "zero_optimization.offload_optimizer", world_size);
    offload->finish();
  }
  // DeepSpeed's deprecated spelling of offload_optimizer.device "cpu" (the seed tutorial uses it).
  if (section->contains("cpu_offload")) {
    const bool cpu_offload = section->boolean("cpu_offload", false);
    if (section->contains("offload_optimizer") &&
        cpu_offload != (out.offload_optimizer.device == OffloadDevice::cpu))
      section->fail("cpu_offload",
                    "contradicts offload_optimizer.device (cpu_offload is the deprecated spelling "
                    "of offload_optimizer.device \"cpu\"): keep only offload_optimizer");
    if (cpu_offload) out.offload_optimizer.device = OffloadDevice::cpu;
  }
  if (auto offload_param = section->section("offload_param")) {
    apply_key_rules(*offload_param, "zero_optimization.offload_param", world_size);
    offload_param->finish();
  }
  apply_key_rules(*section, "zero_optimization", world_size);
  section->finish();
  if (out.stage == 0 && out.offload_optimizer.device == OffloadDevice::cpu)
    section->fail("stage",
                  "must be 1 when offload_optimizer.device is \"cpu\": ZeRO-Offload offloads the "
                  "partitioned optimizer state, and stage 0 (the default) has none (DeepSpeed "
                  "silently ignores the offload there)");
  return out;
}

// ---- model --------------------------------------------------------------------------------------

// kernels/activation.hpp's parse_activation names.
std::string parse_activation(JsonSection& model, std::string_view fallback) {
  return model.choice("activation", fallback, {"relu", "gelu", "gelu_tanh", "gelu_erf", "silu"});
}

MoESection parse_moe(JsonSection& model) {
  MoESection out;
  auto section = model.section("moe");
  if (!section) return out;
  out.num_experts = section->integer("num_experts", out.num_experts, 1);
  out.ep_size = section->integer("ep_size", out.ep_size, 1);
  if (out.num_experts % out.ep_size != 0)
    section->fail("num_experts",
                  "must be divisible by model.moe.ep_size = " + std::to_string(out.ep_size) +
                      " (each expert-parallel rank holds num_experts / ep_size "
                      "experts)");
  out.k = section->integer("k", out.k, 1);
  if (out.k > out.num_experts)
    section->fail("k", "must be an integer in [1, num_experts = " +
                           std::to_string(out.num_experts) + "] (experts per token)");
  out.capacity_factor = section->number("capacity_factor", out.capacity_factor, 0.0, kInf, true);
  out.eval_capacity_factor =
      section->number("eval_capacity_factor", out.eval_capacity_factor, 0.0, kInf, true);
  out.min_capacity = section->integer("min_capacity", out.min_capacity, 0);
  out.use_residual = section->boolean("use_residual", out.use_residual);
  // DeepSpeed's default is Python's None; JSON null means the same.
  const nlohmann::json* policy = section->get("noisy_gate_policy");
  if (policy && !policy->is_null())
    out.noisy_gate_policy =
        section->required_choice("noisy_gate_policy", {"None", "Jitter", "RSample"});
  if (out.noisy_gate_policy == "RSample" && out.k != 1)
    section->fail("noisy_gate_policy",
                  "\"RSample\" applies to k = 1 only (DeepSpeed silently "
                  "ignores it for k >= 2): use \"None\" or \"Jitter\"");
  out.drop_tokens = section->boolean("drop_tokens", out.drop_tokens);
  out.use_rts = section->boolean("use_rts", out.use_rts);
  out.top2_2nd_expert_sampling =
      section->boolean("top2_2nd_expert_sampling", out.top2_2nd_expert_sampling);
  out.enable_expert_tensor_parallelism =
      section->boolean("enable_expert_tensor_parallelism", out.enable_expert_tensor_parallelism);
  out.drop_policy = section->choice("drop_policy", out.drop_policy, {"probs", "position"});
  section->finish();
  return out;
}

ModelSection parse_model(JsonSection& root) {
  JsonSection section =
      root.required_section("model", "{\"type\": \"lenet_moe\", \"moe\": {\"num_experts\": 8}}");
  ModelSection out;
  const std::string type =
      section.required_choice("type", {"lenet_moe", "lenet_dense", "gpt_moe", "gpt_dense"});
  out.type = type == "lenet_moe"     ? ModelType::lenet_moe
             : type == "lenet_dense" ? ModelType::lenet_dense
             : type == "gpt_moe"     ? ModelType::gpt_moe
                                     : ModelType::gpt_dense;
  if (out.is_gpt()) {
    for (auto key : {"num_classes", "image_channels", "image_height", "image_width"})
      section.forbid(key, "applies to lenet models (lenet_moe, lenet_dense) only, not " + type);
    out.vocab_size = section.integer("vocab_size", 0, 0);
    out.seq_len = section.required_integer("seq_len", 1);
    out.n_layer = section.required_integer("n_layer", 1);
    out.n_head = section.required_integer("n_head", 1);
    out.n_embd = section.required_integer("n_embd", 1);
    if (out.n_embd % out.n_head != 0)
      section.fail("n_embd", "must be divisible by model.n_head = " + std::to_string(out.n_head) +
                                 " (each head is n_embd / n_head wide)");
    out.ffn_hidden_size = section.integer("ffn_hidden_size", 4 * out.n_embd, 1);
    out.activation = parse_activation(section, "gelu");
  } else {
    for (auto key : {"vocab_size", "seq_len", "n_layer", "n_head"})
      section.forbid(key, "applies to model types gpt_moe and gpt_dense only, not " + type);
    out.num_classes = section.integer("num_classes", 0, 1);
    out.image_channels = section.integer("image_channels", 0, 1);
    out.image_height = section.integer("image_height", 0, 1);
    out.image_width = section.integer("image_width", 0, 1);
    out.conv1_padding = section.integer("conv1_padding", 0, 0, 8);
    out.n_embd = section.integer("n_embd", 84, 1);
    out.ffn_hidden_size = section.integer("ffn_hidden_size", out.n_embd, 1);
    out.activation = parse_activation(section, "relu");
  }
  if (out.has_moe()) {
    out.aux_loss_coef = section.number("aux_loss_coef", out.aux_loss_coef, 0.0, kInf);
    out.moe = parse_moe(section);
  } else {
    section.forbid("moe", type + " has no MoE layer (the MoE twin is " +
                              (out.is_gpt() ? "gpt_moe" : "lenet_moe") + ")");
    section.forbid("aux_loss_coef", type + " has no MoE layer, so no auxiliary loss");
  }
  out.init_seed = static_cast<std::uint64_t>(section.integer("init_seed", 0, 0));
  section.finish();
  return out;
}

// ---- data ---------------------------------------------------------------------------------------

DataSection parse_data(JsonSection& root) {
  JsonSection section = root.required_section("data", "{\"dataset\": \"fashion_mnist\"}");
  DataSection out;
  const std::string dataset =
      section.required_choice("dataset", {"fashion_mnist", "cifar10", "kjv_text"});
  out.dataset = dataset == "fashion_mnist" ? DatasetKind::fashion_mnist
                : dataset == "cifar10"     ? DatasetKind::cifar10
                                           : DatasetKind::kjv_text;
  const std::string default_path =
      out.dataset == DatasetKind::fashion_mnist ? "/usr/share/datasets/fashion-mnist"
      : out.dataset == DatasetKind::cifar10     ? "data/cifar-10-batches-bin"
                                                : "";
  out.path = section.string("path", default_path);
  out.shuffle = section.boolean("shuffle", out.shuffle);
  if (out.dataset == DatasetKind::kjv_text)
    out.validation_fraction =
        section.number("validation_fraction", out.validation_fraction, 0.0, 1.0);
  else
    section.forbid("validation_fraction",
                   "applies to kjv_text only: image datasets evaluate on their test split");
  if (out.validation_fraction >= 1.0)
    section.fail("validation_fraction", "must be < 1 (some text must be left to train on)");
  out.prefetch = section.integer("prefetch", out.prefetch, 1, 64);
  out.limit_train_samples = section.integer("limit_train_samples", 0, 0);
  section.finish();
  return out;
}

// ---- runtime ------------------------------------------------------------------------------------

RuntimeSection parse_runtime(JsonSection& root, const std::string& name, const ModelSection& model,
                             std::int64_t launched_world_size) {
  JsonSection section = root.required_section("runtime", "{\"epochs\": 3}");
  RuntimeSection out;
  out.device = section.choice("device", "cpu", {"cpu", "cuda"});
  if (out.device == "cuda")
    section.fail("device",
                 "\"cuda\" is not implemented yet in troupe (issue area: CUDA backend); "
                 "use \"cpu\"");
  // The launcher's WORLD_SIZE wins; a config that names another size is a mistake worth stopping.
  const auto configured = section.optional_integer("world_size", 1);
  if (launched_world_size > 0 && configured && *configured != launched_world_size)
    section.fail("world_size", "is " + std::to_string(*configured) +
                                   " but this process was launched as one of " +
                                   std::to_string(launched_world_size) +
                                   " ranks (WORLD_SIZE = " + std::to_string(launched_world_size) +
                                   "): make them agree, or leave runtime.world_size out");
  out.world_size = launched_world_size > 0 ? launched_world_size : configured.value_or(1);
  out.pipeline_depth = section.integer("pipeline_depth", out.pipeline_depth, 1, 64);
  if (auto shards = section.optional_integer("expert_shards", 1)) {
    if (model.has_moe() && model.moe.local_experts() % *shards != 0)
      section.fail("expert_shards",
                   "must divide the experts each rank holds (model.moe.num_experts / ep_size = " +
                       std::to_string(model.moe.local_experts()) + ")");
    out.expert_shards = *shards;
  } else if (model.has_moe() && model.moe.local_experts() % out.expert_shards != 0) {
    out.expert_shards = 1;  // the default adapts to an odd number of local experts
  }
  out.stage_replicas = section.integer("stage_replicas", out.stage_replicas, 1, 64);
  if (out.stage_replicas > out.pipeline_depth)
    section.fail("stage_replicas", "must be at most runtime.pipeline_depth (" +
                                       std::to_string(out.pipeline_depth) +
                                       "): more replicas than micro-batches in flight stay idle");
  out.optimizer_partitions = section.integer("optimizer_partitions", out.optimizer_partitions, 1);
  out.executor = section.choice("executor", "actors", {"actors", "sequential"}) == "actors"
                     ? ExecutorKind::actors
                     : ExecutorKind::sequential;
  out.seed = static_cast<std::uint64_t>(section.integer("seed", 0, 0));
  out.epochs = section.integer("epochs", 0, 0);
  out.train_steps = section.integer("train_steps", 0, 0);
  if (out.epochs > 0 && out.train_steps > 0)
    section.fail("train_steps",
                 "give either runtime.epochs or runtime.train_steps, not both (epochs = " +
                     std::to_string(out.epochs) + ")");
  if (out.epochs == 0 && out.train_steps == 0)
    throw ConfigError(section.source(), section.path(),
                      "needs runtime.epochs or runtime.train_steps (an integer >= 1)");
  out.eval_interval = section.integer("eval_interval", 0, 0);
  out.eval_batches = section.integer("eval_batches", 0, 0);
  out.trace_file = section.string("trace_file", "");
  out.master_timeout = section.number("master_timeout", out.master_timeout, 0.001, 86400.0);
  out.metrics_file = section.string("metrics_file", "runs/" + name + "/metrics.jsonl");
  out.checkpoint.dir = "runs/" + name + "/checkpoints";
  if (auto checkpoint = section.section("checkpoint")) {
    out.checkpoint.dir = checkpoint->string("dir", out.checkpoint.dir);
    out.checkpoint.interval = checkpoint->integer("interval", 0, 0);
    out.checkpoint.keep = checkpoint->integer("keep", out.checkpoint.keep, 1);
    out.checkpoint.final = checkpoint->boolean("final", out.checkpoint.final);
    checkpoint->finish();
  }
  out.log_interval = section.integer("log_interval", 0, 1);  // 0 = not given: steps_per_print
  section.finish();
  return out;
}

// ---- cross-section rules ------------------------------------------------------------------------

// DeepSpeed's rule: any two of the triple determine the third; given one, gradient accumulation is
// 1; given all three, they must agree.
void resolve_batch_sizes(JsonSection& root, RunConfig& config) {
  const std::int64_t dp = config.data_parallel_size();
  auto batch = root.optional_integer("train_batch_size", 1);
  auto micro = root.optional_integer("train_micro_batch_size_per_gpu", 1);
  auto gas = root.optional_integer("gradient_accumulation_steps", 1);
  const std::string dp_text = "data-parallel size (" + std::to_string(dp) + ")";
  if (batch && micro && gas) {
    if (*batch != *micro * *gas * dp)
      root.fail("train_batch_size",
                "must equal train_micro_batch_size_per_gpu (" + std::to_string(*micro) +
                    ") x gradient_accumulation_steps (" + std::to_string(*gas) + ") x " + dp_text +
                    " = " + std::to_string(*micro * *gas * dp));
  } else if (batch && micro) {
    if (*batch % (*micro * dp) != 0)
      root.fail("train_batch_size", "must be a multiple of train_micro_batch_size_per_gpu (" +
                                        std::to_string(*micro) + ") x " + dp_text +
                                        ", so that gradient_accumulation_steps is whole");
    gas = *batch / (*micro * dp);
  } else if (batch && gas) {
    if (*batch % (*gas * dp) != 0)
      root.fail("train_batch_size", "must be a multiple of gradient_accumulation_steps (" +
                                        std::to_string(*gas) + ") x " + dp_text +
                                        ", so that train_micro_batch_size_per_gpu is whole");
    micro = *batch / (*gas * dp);
  } else if (micro && gas) {
    batch = *micro * *gas * dp;
  } else if (batch) {
    gas = 1;
    if (*batch % dp != 0) root.fail("train_batch_size", "must be a multiple of the " + dp_text);
    micro = *batch / dp;
  } else if (micro) {
    gas = 1;
    batch = *micro * dp;
  } else {
    throw ConfigError(root.source(), "train_batch_size",
                      "required: give train_batch_size or train_micro_batch_size_per_gpu (or two "
                      "of train_batch_size, train_micro_batch_size_per_gpu, "
                      "gradient_accumulation_steps)");
  }
  config.train_batch_size = *batch;
  config.train_micro_batch_size_per_gpu = *micro;
  config.gradient_accumulation_steps = *gas;
}

// The image shape and class count a lenet model gets from its dataset.
void check_model_against_data(JsonSection& root, RunConfig& config) {
  ModelSection& model = config.model;
  const bool text = config.data.dataset == DatasetKind::kjv_text;
  if (model.is_gpt() != text)
    throw ConfigError(root.source(), "data.dataset",
                      model.is_gpt() ? "a gpt model needs the text dataset \"kjv_text\""
                                     : "a lenet model needs an image dataset "
                                       "(\"fashion_mnist\" or \"cifar10\")");
  if (text) return;
  const bool cifar = config.data.dataset == DatasetKind::cifar10;
  const std::pair<std::string_view, std::int64_t*> dims[] = {
      {"num_classes", &model.num_classes},
      {"image_channels", &model.image_channels},
      {"image_height", &model.image_height},
      {"image_width", &model.image_width}};
  const std::int64_t expected[] = {10, cifar ? 3 : 1, cifar ? 32 : 28, cifar ? 32 : 28};
  for (std::size_t i = 0; i < 4; ++i) {
    std::int64_t& value = *dims[i].second;
    if (value != 0 && value != expected[i])
      throw ConfigError(root.source(), "model." + std::string(dims[i].first),
                        "must match the dataset " +
                            std::string(cifar ? "cifar10" : "fashion_mnist") + ": " +
                            std::to_string(expected[i]) + " (got " + std::to_string(value) +
                            "); leave it out to take it from the data");
    value = expected[i];
  }
}

void check_expert_layout(JsonSection& root, const RunConfig& config) {
  if (!config.model.has_moe()) return;
  const std::int64_t ep_size = config.model.moe.ep_size;
  if (config.runtime.world_size % ep_size != 0)
    throw ConfigError(
        root.source(), "model.moe.ep_size",
        "must divide runtime.world_size = " + std::to_string(config.runtime.world_size) +
            " (expert-parallel groups are ep_size consecutive ranks) (got " +
            std::to_string(ep_size) + ")");
}

// Stage 0 keeps one optimizer state per parameter group; stage 1 partitions each group's state
// over runtime.optimizer_partitions actors, and with several ranks first over the group's ranks.
void check_zero_stage(const JsonSection& root, const RunConfig& config) {
  const std::int64_t partitions = config.runtime.optimizer_partitions;
  if (config.zero_optimization.stage == 0 && partitions > 1)
    throw ConfigError(root.source(), "runtime.optimizer_partitions",
                      "must be 1 with zero_optimization.stage 0 (one optimizer state per parameter "
                      "group); set zero_optimization.stage to 1 to partition the optimizer state "
                      "over " +
                          std::to_string(partitions) + " actors (got " +
                          std::to_string(partitions) + ")");
}

std::string run_name(const std::string& source_name) {
  std::string stem = std::filesystem::path(source_name).stem().string();
  return stem.empty() ? "run" : stem;
}

// nlohmann::json keeps the last of two equal keys; a config with "lr" twice is almost certainly a
// mistake, so the parser callback rejects it.
class DuplicateKeyCheck {
 public:
  explicit DuplicateKeyCheck(std::string source) : source_(std::move(source)) {}

  bool operator()(int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      std::string path;
      for (const auto& level : levels_) {
        if (level.current.empty()) continue;
        path += (path.empty() ? "" : ".") + level.current;
      }
      levels_.push_back({{}, "", path});
    } else if (event == Event::object_end) {
      levels_.pop_back();
    } else if (event == Event::key) {
      Level& level = levels_.back();
      level.current = parsed.get<std::string>();
      if (!level.seen.insert(level.current).second)
        throw ConfigError(source_,
                          level.path.empty() ? level.current : level.path + "." + level.current,
                          "duplicate key (JSON parsers silently keep only one of them)");
    }
    return true;
  }

 private:
  struct Level {
    std::set<std::string> seen;
    std::string current;
    std::string path;
  };
  std::string source_;
  std::vector<Level> levels_;
};

}  // namespace

RunConfig parse_run_config(const nlohmann::json& document, const std::string& source_name,
                           std::int64_t launched_world_size) {
  JsonSection root(document, "", source_name);
  RunConfig config;
  config.name = run_name(source_name);
  config.description = root.string("description", "");
  config.model = parse_model(root);
  config.data = parse_data(root);
  config.runtime = parse_runtime(root, config.name, config.model, launched_world_size);
  resolve_batch_sizes(root, config);
  const std::int64_t world_size = config.runtime.world_size;
  config.optimizer = parse_optimizer(root, world_size);
  config.scheduler = parse_scheduler(root, config.optimizer, world_size);
  config.gradient_clipping = root.number("gradient_clipping", 0.0, 0.0, kInf);
  config.use_data_before_expert_parallelism =
      root.boolean("use_data_before_expert_parallelism", false);
  config.steps_per_print = root.integer("steps_per_print", config.steps_per_print, 1);
  config.fp16 = parse_fp16(root, world_size);
  config.bf16 = parse_bf16(root, world_size);
  config.zero_optimization = parse_zero(root, world_size);
  apply_key_rules(root, "", world_size);
  root.finish();

  if (config.runtime.log_interval == 0) config.runtime.log_interval = config.steps_per_print;
  check_model_against_data(root, config);
  check_expert_layout(root, config);
  check_zero_stage(root, config);
  return config;
}

namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", "cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str(), DuplicateKeyCheck(path));
  } catch (const nlohmann::json::parse_error& error) {
    throw ConfigError(path, "", std::string("invalid JSON: ") + error.what());
  }
}

// troupe's own top-level keys: they belong in CONFIG, never in a DeepSpeed config file.
constexpr std::string_view kTroupeSections[] = {"description", "model", "data", "runtime"};

}  // namespace

RunConfig load_run_config(const std::string& path, const std::string& deepspeed_config_path,
                          std::int64_t launched_world_size) {
  nlohmann::json document = read_json_file(path);
  if (deepspeed_config_path.empty()) return parse_run_config(document, path, launched_world_size);

  const nlohmann::json deepspeed = read_json_file(deepspeed_config_path);
  if (!document.is_object())
    throw ConfigError(path, "", "expected a JSON object {...} at the top level");
  if (!deepspeed.is_object())
    throw ConfigError(deepspeed_config_path, "", "expected a JSON object {...} at the top level");
  std::set<std::string> from_deepspeed;
  for (auto it = deepspeed.begin(); it != deepspeed.end(); ++it) {
    const std::string& key = it.key();
    for (auto troupe_key : kTroupeSections)
      if (key == troupe_key)
        throw ConfigError(deepspeed_config_path, key,
                          "is a troupe section, not a DeepSpeed one: put it in " + path);
    if (document.contains(key))
      throw ConfigError(deepspeed_config_path, key,
                        "is set in both " + path + " and " + deepspeed_config_path +
                            " (--deepspeed_config): keep it in one of them");
    document[key] = *it;
    from_deepspeed.insert(key);
  }
  // Errors name the file their key came from.
  try {
    return parse_run_config(document, path, launched_world_size);
  } catch (const ConfigError& error) {
    const std::string& key_path = error.key_path();
    const std::string head = key_path.substr(0, key_path.find_first_of(".["));
    if (!from_deepspeed.count(head)) throw;
    const std::string prefix = path + ": " + key_path + ": ";
    const std::string what = error.what();
    throw ConfigError(deepspeed_config_path, key_path,
                      what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what);
  }
}

}  // namespace troupe
