// The DeepSpeed key table (see deepspeed_keys.hpp): one row per key of the pinned release in the
// sections troupe implements, one per DeepSpeed feature section troupe lacks; the rule that
// applies a row to a config section; and the Markdown rendering of docs/CONFIG-KEYS.md.
#include "configs/deepspeed_keys.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "configs/json_section.hpp"

namespace troupe {

namespace {

constexpr KeyStatus H = KeyStatus::honoured;
constexpr KeyStatus NO = KeyStatus::no_op;
constexpr KeyStatus NI = KeyStatus::not_implemented;

constexpr KeyType kBool = KeyType::boolean;
constexpr KeyType kInt = KeyType::integer;
constexpr KeyType kNum = KeyType::number;
constexpr KeyType kStr = KeyType::string;
constexpr KeyType kObj = KeyType::object;
constexpr KeyType kAny = KeyType::any;

// Reasons shared by many rows.
constexpr std::string_view kOneProcess =
    "one process has no collective to bucket, overlap or split; with more ranks troupe "
    "all-reduces (ZeRO stage 0) or reduce-scatters (stage 1) each gradient group's flat buffer in "
    "one collective, and every element is summed in rank order whatever the buckets";
constexpr std::string_view kStage3 =
    "read by DeepSpeed only in ZeRO stage 3, which troupe refuses (not implemented yet)";
constexpr std::string_view kZeroPP =
    "ZeRO++ / MiCS: read by DeepSpeed only in ZeRO stage 3, which troupe refuses (not "
    "implemented yet)";
constexpr std::string_view kFp16Only =
    "read by DeepSpeed only when fp16.enabled is true, which troupe refuses (it trains in fp32)";
constexpr std::string_view kBf16LossScale =
    "bf16 needs no loss scaling: DeepSpeed ignores the fp16 loss-scale keys in the bf16 section";
constexpr std::string_view kBf16Later =
    "not read by DeepSpeed 0.16.4; later releases read it only when bf16.enabled is true, which "
    "troupe refuses (it trains in fp32)";
constexpr std::string_view kNvmeOnly =
    "used only with device \"nvme\", which troupe refuses (not implemented yet)";
constexpr std::string_view kParamOffloadOnly =
    "used only when offload_param.device is \"cpu\" or \"nvme\" (ZeRO stage 3), which troupe "
    "refuses";
constexpr std::string_view kPinMemory =
    "page-locked host memory speeds up copies between the GPU and the host; troupe runs on the "
    "CPU (runtime.device \"cpu\"), so there is no such copy";

// A DeepSpeed feature troupe lacks: accepted only when absent or disabled.
#define TROUPE_FEATURE(name, what) \
  { "", name, kAny, NI, NI, "disabled", what }

constexpr KeyRule kRules[] = {
    // ---- top level ------------------------------------------------------------------------------
    {"", "train_batch_size", kInt, H, H, "",
     "= train_micro_batch_size_per_gpu x gradient_accumulation_steps x world size; any two of the "
     "three determine the third, as in DeepSpeed"},
    {"", "train_micro_batch_size_per_gpu", kInt, H, H, "", "samples per micro-batch"},
    {"", "gradient_accumulation_steps", kInt, H, H, "", "micro-batches per optimizer step"},
    {"", "optimizer", kObj, H, H, "", "Adam or AdamW (section optimizer below)"},
    {"", "scheduler", kObj, H, H, "", "WarmupLR or WarmupDecayLR (section scheduler below)"},
    {"", "gradient_clipping", kNum, H, H, "",
     "clips the global gradient norm (dense and expert parameters together); 0 = off"},
    {"", "steps_per_print", kInt, H, H, "",
     "optimizer steps between progress lines, unless runtime.log_interval is set"},
    {"", "fp16", kObj, H, H, "", "section fp16 below"},
    {"", "bf16", kObj, H, H, "", "section bf16 below"},
    {"", "zero_optimization", kObj, H, H, "", "section zero_optimization below"},
    {"", "prescale_gradients", kBool, NI, NI, "[false]",
     "true divides gradients by the data-parallel size before their all-reduce instead of after, "
     "which changes their rounding; troupe averages after"},
    {"", "gradient_predivide_factor", kNum, NI, NI, "[1.0]",
     "a factor f other than 1 splits the gradient averaging around the all-reduce (divide by f "
     "before, by world size / f after), which changes rounding; troupe averages once"},
    {"", "wall_clock_breakdown", kBool, NI, NI, "[false]",
     "DeepSpeed's per-phase timing log; record a Chrome trace with runtime.trace_file or --trace "
     "instead"},
    {"", "memory_breakdown", kBool, NI, NI, "[false]", "DeepSpeed's memory usage log"},
    {"", "dump_state", kBool, NI, NI, "[false]", "printing DeepSpeed's engine state at start-up"},
    {"", "communication_data_type", kStr, NI, NI, "[null, \"fp32\"]",
     "gradients are reduced in fp32, troupe's training precision; a 16-bit type would round them"},
    {"", "seq_parallel_comm_data_type", kStr, NO, NO, "",
     "the type of sequence-parallel gradient reduction; troupe has no sequence parallelism "
     "(sequence_parallel_size 1)"},
    {"", "sequence_parallel_size", kInt, NI, NI, "[1]", "Ulysses sequence parallelism"},
    {"", "disable_allgather", kBool, NO, NO, "",
     "one process has no all-gather to disable; with more ranks troupe runs ZeRO stage 0, which "
     "all-reduces gradients and gathers no parameters"},
    {"", "sparse_gradients", kBool, NI, NI, "[false]", "sparse (CSR) embedding gradients"},
    {"", "zero_allow_untested_optimizer", kBool, NO, NO, "",
     "lets ZeRO wrap a client optimizer; troupe always runs its own Adam / AdamW"},
    {"", "zero_force_ds_cpu_optimizer", kBool, NO, NO, "",
     "checks that the optimizer under ZeRO-Offload is DeepSpeed's CPU Adam; troupe's offload "
     "always runs its own CPU Adam"},
    {"", "dataloader_drop_last", kBool, NO, NO, "",
     "affects only the data loader deepspeed.initialize builds from training_data; troupe's data "
     "section does its own batching"},
    {"", "vocabulary_size", kInt, NO, NO, "",
     "DeepSpeed only warns when it is not a multiple of 8 (tensor-core alignment)"},
    {"", "use_data_before_expert_parallelism", kBool, NO, H, "",
     "the order of data- and expert-parallel ranks: true makes the expert-parallel groups strided "
     "and the expert-data-parallel groups contiguous (comm/process_groups.hpp); one rank has only "
     "one layout"},
    {"", "graph_harvesting", kBool, NI, NI, "[false]", "CUDA graph capture"},
    TROUPE_FEATURE("amp", "Apex AMP mixed precision"),
    TROUPE_FEATURE("bfloat16", "bf16 mixed precision (the old spelling of bf16)"),
    TROUPE_FEATURE("activation_checkpointing", "activation checkpointing"),
    TROUPE_FEATURE("sparse_attention", "sparse attention"),
    TROUPE_FEATURE("pipeline", "pipeline parallelism"),
    TROUPE_FEATURE("tensor_parallel", "tensor parallelism (AutoTP training)"),
    TROUPE_FEATURE("flops_profiler",
                   "the FLOPs profiler (runtime.trace_file records a Chrome trace instead)"),
    TROUPE_FEATURE("comms_logger",
                   "the communication logger (runtime.trace_file records a Chrome trace instead)"),
    TROUPE_FEATURE("tensorboard",
                   "TensorBoard monitoring (runtime.metrics_file writes JSON lines instead)"),
    TROUPE_FEATURE("wandb", "Weights & Biases monitoring (runtime.metrics_file instead)"),
    TROUPE_FEATURE("csv_monitor", "CSV monitoring (runtime.metrics_file instead)"),
    TROUPE_FEATURE("comet", "Comet monitoring (runtime.metrics_file instead)"),
    TROUPE_FEATURE("elasticity", "elastic training"),
    TROUPE_FEATURE("autotuning", "autotuning"),
    TROUPE_FEATURE("data_efficiency", "data efficiency (data sampling and routing)"),
    TROUPE_FEATURE("curriculum_learning", "curriculum learning"),
    TROUPE_FEATURE("compression_training", "compression training"),
    TROUPE_FEATURE("quantize_training", "quantization-aware training (MoQ)"),
    TROUPE_FEATURE("weight_quantization", "weight quantization"),
    TROUPE_FEATURE("eigenvalue", "eigenvalue computation"),
    TROUPE_FEATURE("progressive_layer_drop", "progressive layer drop"),
    TROUPE_FEATURE("hybrid_engine", "the hybrid (training + inference) engine"),
    TROUPE_FEATURE("aio", "asynchronous I/O for NVMe offload (ZeRO-Infinity)"),
    TROUPE_FEATURE("checkpoint", "DeepSpeed's checkpoint options (use runtime.checkpoint)"),
    TROUPE_FEATURE("data_types", "gradient accumulation data types"),
    TROUPE_FEATURE("nebula", "Nebula checkpointing (use runtime.checkpoint)"),
    TROUPE_FEATURE("compile", "torch.compile"),
    TROUPE_FEATURE("timers", "DeepSpeed's throughput timers (runtime.metrics_file has throughput)"),

    // ---- optimizer ------------------------------------------------------------------------------
    {"optimizer", "type", kStr, H, H, "",
     "\"Adam\" or \"AdamW\", case-insensitive; DeepSpeed's other optimizers are refused as not "
     "implemented yet"},
    {"optimizer", "params", kObj, H, H, "", "section optimizer.params below"},
    {"optimizer", "legacy_fusion", kBool, NO, NO, "",
     "selects DeepSpeed's legacy fused fp16 optimizer wrapper, used only with fp16, which troupe "
     "refuses"},
    {"optimizer.params", "lr", kNum, H, H, "", "learning rate (required)"},
    {"optimizer.params", "betas", kAny, H, H, "", "[beta1, beta2], each in [0, 1)"},
    {"optimizer.params", "eps", kNum, H, H, "", "Adam's epsilon"},
    {"optimizer.params", "weight_decay", kNum, H, H, "", "decoupled unless adam_w_mode is false"},
    {"optimizer.params", "bias_correction", kBool, H, H, "", "Adam's bias correction"},
    {"optimizer.params", "adam_w_mode", kBool, H, H, "",
     "type \"Adam\": true (default) = decoupled weight decay (AdamW), false = L2 added to the "
     "gradient; type \"AdamW\" refuses false"},
    {"optimizer.params", "torch_adam", kBool, NO, NO, "",
     "chooses PyTorch's Adam over DeepSpeed's fused kernel, the same update rule; troupe has one "
     "Adam implementation"},
    {"optimizer.params", "set_grad_none", kBool, NO, NO, "",
     "whether zero_grad frees or zeroes the gradients: memory only"},
    {"optimizer.params", "amsgrad", kBool, NI, NI, "[false]", "the AMSGrad variant of Adam"},
    {"optimizer.params", "max_grad_norm", kNum, NI, NI, "[0]",
     "DeepSpeed 0.16.4 ignores it in fp32 (it warns and sets it to 0): clip with the top-level "
     "gradient_clipping"},

    // ---- scheduler ------------------------------------------------------------------------------
    {"scheduler", "type", kStr, H, H, "",
     "\"WarmupLR\" or \"WarmupDecayLR\"; LRRangeTest, OneCycle and WarmupCosineLR are refused as "
     "not implemented yet"},
    {"scheduler", "params", kObj, H, H, "", "section scheduler.params below"},
    {"scheduler.params", "warmup_min_lr", kNum, H, H, "", "learning rate at the start"},
    {"scheduler.params", "warmup_max_lr", kNum, H, H, "",
     "learning rate after warm-up (WarmupLR: default optimizer.params.lr; WarmupDecayLR: 0.001)"},
    {"scheduler.params", "warmup_num_steps", kInt, H, H, "", "warm-up length (at least 2 used)"},
    {"scheduler.params", "warmup_type", kStr, H, H, "", "\"log\" or \"linear\""},
    {"scheduler.params", "total_num_steps", kInt, H, H, "",
     "WarmupDecayLR only (required there): the step at which the rate reaches 0"},
    {"scheduler.params", "last_batch_iteration", kInt, NI, NI, "[-1]",
     "starting a schedule part-way (--resume restores the schedule position from the "
     "checkpoint's step)"},

    // ---- fp16 -----------------------------------------------------------------------------------
    {"fp16", "enabled", kBool, NI, NI, "[false]",
     "fp16 mixed precision with dynamic loss scaling; troupe trains in fp32"},
    {"fp16", "auto_cast", kBool, NO, NO, "", kFp16Only},
    {"fp16", "loss_scale", kNum, NO, NO, "", kFp16Only},
    {"fp16", "initial_scale_power", kInt, NO, NO, "", kFp16Only},
    {"fp16", "loss_scale_window", kInt, NO, NO, "", kFp16Only},
    {"fp16", "hysteresis", kInt, NO, NO, "", kFp16Only},
    {"fp16", "consecutive_hysteresis", kBool, NO, NO, "", kFp16Only},
    {"fp16", "min_loss_scale", kNum, NO, NO, "", kFp16Only},
    {"fp16", "fused_mode", kBool, NO, NO, "", kFp16Only},
    {"fp16", "fp16_master_weights_and_grads", kBool, NO, NO, "", kFp16Only},

    // ---- bf16 -----------------------------------------------------------------------------------
    {"bf16", "enabled", kBool, NI, NI, "[false]", "bf16 mixed precision; troupe trains in fp32"},
    {"bf16", "immediate_grad_update", kBool, NO, NO, "",
     "read only by DeepSpeed's bf16 optimizer, i.e. when bf16.enabled is true, which troupe "
     "refuses"},
    {"bf16", "bf16_master_weights_and_grads", kBool, NO, NO, "", kBf16Later},
    {"bf16", "bf16_optimizer_states", kBool, NO, NO, "", kBf16Later},
    {"bf16", "check_grad_overflow", kBool, NO, NO, "", kBf16Later},
    {"bf16", "loss_scale", kNum, NO, NO, "", kBf16LossScale},
    {"bf16", "initial_scale_power", kInt, NO, NO, "", kBf16LossScale},
    {"bf16", "loss_scale_window", kInt, NO, NO, "", kBf16LossScale},
    {"bf16", "hysteresis", kInt, NO, NO, "", kBf16LossScale},
    {"bf16", "consecutive_hysteresis", kBool, NO, NO, "", kBf16LossScale},
    {"bf16", "min_loss_scale", kNum, NO, NO, "", kBf16LossScale},

    // ---- zero_optimization ----------------------------------------------------------------------
    {"zero_optimization", "stage", kInt, H, H, "",
     "0: one optimizer state per parameter group (runtime.optimizer_partitions must be 1); 1: "
     "each group's state partitioned over runtime.optimizer_partitions actors, and with several "
     "ranks first over the group's ranks (non-expert: data-parallel, expert: "
     "expert-data-parallel), gradients reduce-scattered and parameters all-gathered; 2 and 3 are "
     "refused as not implemented yet"},
    {"zero_optimization", "offload_optimizer", kObj, H, H, "",
     "section zero_optimization.offload_optimizer below"},
    {"zero_optimization", "offload_param", kObj, H, H, "",
     "section zero_optimization.offload_param below"},
    {"zero_optimization", "cpu_offload", kBool, H, H, "",
     "deprecated spelling of offload_optimizer.device \"cpu\""},
    {"zero_optimization", "contiguous_gradients", kBool, NO, NO, "",
     "copies gradients into one contiguous buffer as they are produced: memory layout only, no "
     "number changes"},
    {"zero_optimization", "overlap_comm", kBool, NO, NI, "[false]",
     "overlaps the gradient reduction with the backward pass; one process has no collective to "
     "overlap, and with more ranks troupe reduces after the backward pass (overlapping it is "
     "not implemented yet)"},
    {"zero_optimization", "reduce_bucket_size", kInt, NO, NO, "",
     "elements per gradient-reduction bucket; one process has no collective to bucket, and with "
     "more ranks troupe all-reduces (stage 0) or reduce-scatters (stage 1) each group's flat "
     "buffer in one collective, every element summed in rank order whatever the buckets"},
    {"zero_optimization", "allgather_bucket_size", kInt, NO, NO, "",
     "elements per parameter all-gather bucket (ZeRO stages 1-2); troupe all-gathers each group's "
     "flat buffer in one collective (one process and stage 0 gather nothing), the same values "
     "whatever the buckets"},
    {"zero_optimization", "reduce_scatter", kBool, NO, NO, "",
     "reduce-scatter instead of all-reduce to average gradients (ZeRO stages 1-2); troupe "
     "reduce-scatters under stage 1 over ranks and all-reduces at stage 0, and both sum in rank "
     "order, so a rank's gradients are the same bits either way"},
    {"zero_optimization", "allgather_partitions", kBool, NO, NO, "",
     "all-gather instead of broadcasts to share updated parameters (ZeRO stages 1-2); troupe "
     "all-gathers, and either way every rank receives the same values"},
    {"zero_optimization", "use_multi_rank_bucket_allreduce", kBool, NO, NO, "", kOneProcess},
    {"zero_optimization", "round_robin_gradients", kBool, NO, NO, "",
     "spreads gradient copies to the CPU over the ranks under ZeRO stages 1-2 with offload; "
     "troupe's gradients already live in host memory (runtime.device \"cpu\"), so there is no "
     "copy to spread"},
    {"zero_optimization", "elastic_checkpoint", kBool, NO, NO, "",
     "checkpoints loadable at another partition count: troupe's always are (the optimizer "
     "state is stored per parameter group, whatever runtime.optimizer_partitions wrote it)"},
    {"zero_optimization", "load_from_fp32_weights", kBool, NO, NO, "",
     "chooses fp32 master weights over 16-bit weights when loading; troupe trains and "
     "checkpoints in fp32 only"},
    {"zero_optimization", "ignore_unused_parameters", kBool, NO, NO, "",
     "read by DeepSpeed only in ZeRO stage 2, which troupe refuses (not implemented yet)"},
    {"zero_optimization", "legacy_stage1", kBool, NI, NI, "[false]",
     "DeepSpeed's old stage-1 implementation"},
    {"zero_optimization", "cpu_offload_param", kBool, NI, NI, "[false]",
     "deprecated spelling of offload_param.device \"cpu\" (ZeRO stage 3)"},
    {"zero_optimization", "cpu_offload_use_pin_memory", kBool, NO, NO, "", kPinMemory},
    {"zero_optimization", "sub_group_size", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_prefetch_bucket_size", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "prefetch_bucket_size", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_param_persistence_threshold", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "param_persistence_threshold", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_model_persistence_threshold", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "model_persistence_threshold", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_max_live_parameters", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "max_live_parameters", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_max_reuse_distance", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "max_reuse_distance", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_gather_16bit_weights_on_model_save", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "gather_16bit_weights_on_model_save", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_gather_fp16_weights_on_model_save", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_module_granularity_threshold", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "module_granularity_threshold", kInt, NO, NO, "", kStage3},
    {"zero_optimization", "stage3_use_all_reduce_for_fetch_params", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "use_all_reduce_for_fetch_params", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "memory_efficient_linear", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "pipeline_loading_checkpoint", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "override_module_apply", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "log_trace_cache_warnings", kBool, NO, NO, "", kStage3},
    {"zero_optimization", "zero_hpz_partition_size", kInt, NO, NO, "", kZeroPP},
    {"zero_optimization", "zero_quantized_weights", kBool, NO, NO, "", kZeroPP},
    {"zero_optimization", "zero_quantized_nontrainable_weights", kBool, NO, NO, "", kZeroPP},
    {"zero_optimization", "zero_quantized_gradients", kBool, NO, NO, "", kZeroPP},
    {"zero_optimization", "zeropp_loco_param", kObj, NO, NO, "", kZeroPP},
    {"zero_optimization", "mics_shard_size", kInt, NO, NO, "", kZeroPP},
    {"zero_optimization", "mics_hierarchical_params_gather", kBool, NO, NO, "", kZeroPP},

    {"zero_optimization.offload_optimizer", "device", kStr, H, H, "",
     "\"none\" or \"cpu\" (ZeRO-Offload: Adam runs on the CPU in the offload manager; needs "
     "stage 1); \"nvme\" is refused as not implemented yet"},
    {"zero_optimization.offload_optimizer", "pin_memory", kBool, NO, NO, "", kPinMemory},
    {"zero_optimization.offload_optimizer", "nvme_path", kStr, NO, NO, "", kNvmeOnly},
    {"zero_optimization.offload_optimizer", "buffer_count", kInt, NO, NO, "", kNvmeOnly},
    {"zero_optimization.offload_optimizer", "pipeline_read", kBool, NO, NO, "", kNvmeOnly},
    {"zero_optimization.offload_optimizer", "pipeline_write", kBool, NO, NO, "", kNvmeOnly},
    {"zero_optimization.offload_optimizer", "fast_init", kBool, NO, NO, "", kNvmeOnly},
    {"zero_optimization.offload_optimizer", "ratio", kNum, NO, NO, "", kStage3},

    {"zero_optimization.offload_param", "device", kStr, NI, NI, "[\"none\"]",
     "parameter offload (ZeRO stage 3)"},
    {"zero_optimization.offload_param", "pin_memory", kBool, NO, NO, "", kParamOffloadOnly},
    {"zero_optimization.offload_param", "nvme_path", kStr, NO, NO, "", kParamOffloadOnly},
    {"zero_optimization.offload_param", "buffer_count", kInt, NO, NO, "", kParamOffloadOnly},
    {"zero_optimization.offload_param", "buffer_size", kInt, NO, NO, "", kParamOffloadOnly},
    {"zero_optimization.offload_param", "max_in_cpu", kInt, NO, NO, "", kParamOffloadOnly},
};

#undef TROUPE_FEATURE

const char* type_name(KeyType type) {
  switch (type) {
    case KeyType::boolean:
      return "true or false";
    case KeyType::integer:
      return "an integer";
    case KeyType::number:
      return "a number";
    case KeyType::string:
      return "a string";
    case KeyType::object:
      return "a JSON object {...}";
    case KeyType::any:
      return "any value";
  }
  return "any value";
}

bool has_type(const nlohmann::json& value, KeyType type) {
  if (value.is_null()) return true;  // DeepSpeed's None: the default
  switch (type) {
    case KeyType::boolean:
      return value.is_boolean();
    case KeyType::integer:
      if (value.is_number_integer()) return true;
      // DeepSpeed configs often write sizes in exponent form (5e8).
      return value.is_number_float() && std::isfinite(value.get<double>()) &&
             value.get<double>() == std::floor(value.get<double>());
    case KeyType::number:
      return value.is_number();
    case KeyType::string:
      return value.is_string();
    case KeyType::object:
      return value.is_object();
    case KeyType::any:
      return true;
  }
  return true;
}

// false, null, {}, {"enabled": false, ...} or {"device": "none", ...}.
bool is_disabled(const nlohmann::json& value) {
  if (value.is_null()) return true;
  if (value.is_boolean()) return !value.get<bool>();
  if (!value.is_object()) return false;
  if (value.empty()) return true;
  auto enabled = value.find("enabled");
  if (enabled != value.end()) return enabled->is_boolean() && !enabled->get<bool>();
  auto device = value.find("device");
  return device != value.end() && device->is_string() && device->get<std::string>() == "none";
}

bool same_value(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number() && !a.is_boolean() && !b.is_boolean())
    return a.get<double>() == b.get<double>();
  return a == b;
}

bool is_accepted(const KeyRule& rule, const nlohmann::json& value) {
  if (rule.accepted.empty()) return false;
  if (rule.accepted == "disabled") return is_disabled(value);
  for (const auto& candidate : nlohmann::json::parse(rule.accepted))
    if (same_value(candidate, value)) return true;
  return false;
}

// "false", "null or \"fp32\"", "absent or disabled (...)": for messages and the doc.
std::string accepted_text(const KeyRule& rule) {
  if (rule.accepted.empty()) return "";
  if (rule.accepted == "disabled") return "absent, false, {} or {\"enabled\": false}";
  std::string out;
  const auto values = nlohmann::json::parse(rule.accepted);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += i + 1 == values.size() ? " or " : ", ";
    out += values[i].dump();
  }
  return out;
}

std::string display_path(std::string_view section, std::string_view key) {
  return section.empty() ? std::string(key) : std::string(section) + "." + std::string(key);
}

}  // namespace

std::span<const KeyRule> deepspeed_key_rules() {
  return kRules;
}

KeyStatus key_status(const KeyRule& rule, std::int64_t world_size) {
  return world_size > 1 ? rule.multi_rank : rule.one_rank;
}

const KeyRule* find_key_rule(std::string_view section, std::string_view key) {
  for (const auto& rule : kRules)
    if (rule.section == section && rule.key == key) return &rule;
  return nullptr;
}

std::string_view to_string(KeyStatus status) {
  switch (status) {
    case KeyStatus::honoured:
      return "honoured";
    case KeyStatus::no_op:
      return "no-op";
    case KeyStatus::not_implemented:
      return "not implemented yet";
  }
  return "?";
}

void apply_key_rules(JsonSection& section, std::string_view section_path, std::int64_t world_size) {
  for (const auto& rule : kRules) {
    if (rule.section != section_path) continue;
    const KeyStatus status = key_status(rule, world_size);
    if (status == KeyStatus::honoured) {
      if (!section.is_known(rule.key))
        throw std::logic_error(
            "configs/deepspeed_keys.cpp: " + display_path(rule.section, rule.key) +
            " is marked honoured but its section's parser never reads it");
      continue;
    }
    const nlohmann::json* value = section.get_unlisted(rule.key);
    if (!value) continue;
    if (!has_type(*value, rule.type))
      section.fail(rule.key, std::string("expected ") + type_name(rule.type));
    if (status == KeyStatus::no_op) continue;
    if (is_accepted(rule, *value)) continue;
    std::string message =
        rule.section.empty() && rule.accepted == "disabled"
            ? "the DeepSpeed section \"" + std::string(rule.key) +
                  "\" is valid DeepSpeed, but not implemented yet in troupe: " +
                  std::string(rule.reason) + "; remove it or disable it"
            : "valid DeepSpeed, but not implemented yet in troupe: " + std::string(rule.reason);
    if (world_size > 1 && rule.one_rank != KeyStatus::not_implemented)
      message += " (with runtime.world_size " + std::to_string(world_size) + ")";
    if (!rule.accepted.empty() && rule.accepted != "disabled")
      message += "; accepted here: " + accepted_text(rule);
    section.fail(rule.key, message);
  }
}

std::string render_config_keys_markdown() {
  std::string out;
  out +=
      "<!-- Generated from configs/deepspeed_keys.cpp by `troupe config-keys --markdown`; do not "
      "edit by hand. The test configs/config_keys_doc fails when this file is stale: regenerate "
      "it with `build/tools/troupe_config_keys_doc > docs/CONFIG-KEYS.md`. -->\n\n";
  out += "# DeepSpeed config keys in troupe\n\n";
  out += "troupe reads DeepSpeed's config vocabulary as of **DeepSpeed " +
         std::string(kDeepSpeedRelease) +
         "** (the pinned release). For the sections troupe implements (top level, `optimizer`, "
         "`scheduler`, `fp16`, `bf16`, `zero_optimization` with `offload_optimizer` and "
         "`offload_param`) every key of that release has a status, and every DeepSpeed feature "
         "section troupe lacks is listed at the top level:\n\n";
  out +=
      "- **honoured**: the run follows it.\n"
      "- **no-op**: accepted, and it cannot change this run; the note says why.\n"
      "- **not implemented yet**: refused with an error naming the key and the value, except "
      "for the values in the *accepted* column, which change nothing.\n\n";
  out +=
      "A status may depend on the world size (`runtime.world_size`, or WORLD_SIZE from the "
      "launcher): the *more ranks* column applies to runs of several ranks, which train with "
      "ZeRO stage 0 for now (stages 1 and 2 over ranks are refused). A key in none of these "
      "tables is an error "
      "(\"unknown key\", with a "
      "suggestion when it looks like a typo), as are troupe's own `model`, `data` and `runtime` "
      "keys when misspelt; see `configs/run_config.hpp` for those.\n\n";
  out +=
      "The DeepSpeed sections may also come from a separate file: `troupe train CONFIG "
      "--deepspeed_config ds_config.json` takes them from `ds_config.json` unchanged, and CONFIG "
      "then holds troupe's `model`, `data` and `runtime` sections; a key set in both files is an "
      "error.\n";
  std::string_view current = "\x01";
  for (const auto& rule : kRules) {
    if (rule.section != current) {
      current = rule.section;
      out += "\n## " +
             (current.empty() ? std::string("Top level") : "`" + std::string(current) + "`") +
             "\n\n";
      out += "| key | 1 rank | more ranks | accepted | note |\n";
      out += "| --- | --- | --- | --- | --- |\n";
    }
    // Which values load: every value of the type where the key is a no-op, the listed ones
    // where it is not implemented yet.
    const std::string listed =
        rule.accepted.empty() ? std::string("none") : "`" + accepted_text(rule) + "`";
    std::string accepted;
    if (rule.one_rank == KeyStatus::honoured)
      accepted = "";
    else if (rule.one_rank == rule.multi_rank)
      accepted = rule.one_rank == KeyStatus::no_op ? type_name(rule.type) : listed;
    else
      accepted = std::string(type_name(rule.type)) + " (1 rank); " + listed + " (more ranks)";
    std::string note(rule.reason);
    std::string escaped;
    for (char c : note) {
      if (c == '|')
        escaped += "\\|";
      else
        escaped += c;
    }
    out += "| `" + std::string(rule.key) + "` | " + std::string(to_string(rule.one_rank)) + " | " +
           std::string(to_string(rule.multi_rank)) + " | " + accepted + " | " + escaped + " |\n";
  }
  return out;
}

}  // namespace troupe
