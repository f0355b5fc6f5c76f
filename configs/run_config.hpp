// A run config: DeepSpeed's config vocabulary (batch sizes, optimizer, scheduler, fp16/bf16, ZeRO)
// plus troupe's own "model", "data" and "runtime" sections, loaded and fully validated from JSON.
//
// Loading is strict: an unknown key at any level, a wrong type, an out-of-range or inconsistent
// value each raise one ConfigError naming the key path, the value and what is allowed (DeepSpeed's
// own loader ignores unknown keys, so a typo like "zero_optimization.stag" silently trains without
// ZeRO; here it is an error with a suggestion). Every key of the pinned DeepSpeed release in the
// sections troupe implements has a status in one table (configs/deepspeed_keys.hpp, rendered as
// docs/CONFIG-KEYS.md): honoured, a harmless no-op, or not implemented yet and refused with a
// message saying so (fp16, bf16, ZeRO stages 2 and 3, feature sections troupe lacks, ...).
//
// The structs hold resolved values: defaults filled in, the batch-size triple completed, model
// image shape and class count taken from the dataset. Everything here is plain data: the executors
// map the sections onto layers, optimizers and actors.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "configs/config_error.hpp"

namespace troupe {

// ---- DeepSpeed sections -------------------------------------------------------------------------

enum class OptimizerType { adam, adamw };

struct OptimizerSection {
  OptimizerType type = OptimizerType::adam;  // "Adam" | "AdamW", case-insensitive as in DeepSpeed
  double lr = 1e-3;                          // required in the file
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool bias_correction = true;
  // DeepSpeed runs type "Adam" with decoupled (AdamW-style) weight decay unless params.adam_w_mode
  // is false; type "AdamW" is always decoupled.
  bool adam_w_mode = true;

  bool decoupled_weight_decay() const { return type == OptimizerType::adamw || adam_w_mode; }
};

enum class SchedulerType { warmup_lr, warmup_decay_lr };
enum class WarmupType { log, linear };

// DeepSpeed's WarmupLR / WarmupDecayLR (deepspeed/runtime/lr_schedules.py); the formulas are in
// configs/lr_schedule.hpp. Defaults are DeepSpeed's constructor defaults.
struct SchedulerSection {
  SchedulerType type = SchedulerType::warmup_lr;
  double warmup_min_lr = 0.0;
  // WarmupLR: defaults to optimizer.params.lr; WarmupDecayLR: to 0.001 (DeepSpeed's signatures).
  double warmup_max_lr = 1e-3;
  std::int64_t warmup_num_steps =
      1000;  // as written; the schedule uses max(2, this) like DeepSpeed
  WarmupType warmup_type = WarmupType::log;
  std::int64_t total_num_steps = 0;  // WarmupDecayLR only (required there)
};

// fp16 and bf16 are refused when enabled (troupe trains in fp32); their other keys are then no-ops
// (configs/deepspeed_keys.cpp says why), so these sections hold nothing else.
struct FP16Section {
  bool enabled = false;
};

struct BF16Section {
  bool enabled = false;
};

enum class OffloadDevice { none, cpu };

struct OffloadOptimizerSection {
  OffloadDevice device =
      OffloadDevice::none;  // "cpu" = ZeRO-Offload: CPU Adam in the offload manager
};

// DeepSpeed's zero_optimization. Stage 0: one optimizer state per parameter group
// (runtime.optimizer_partitions must be 1); stage 1: each group's state partitioned over
// runtime.optimizer_partitions actors; stages 2 and 3 are refused. The status of every other key
// (bucket sizes, overlap_comm, stage-3 settings, ...) is in configs/deepspeed_keys.cpp.
struct ZeroSection {
  std::int64_t stage = 0;
  OffloadOptimizerSection offload_optimizer;
};

// ---- model --------------------------------------------------------------------------------------

enum class ModelType { lenet_moe, lenet_dense, gpt_moe, gpt_dense };

// The arguments of DeepSpeed's MoE layer, with its names and defaults (MOE-SPEC.md), spelt as
// models/moe/moe_config.hpp's MoEConfig spells them, which takes them field by field; hidden_size
// and the expert's shape come from the model section.
struct MoESection {
  std::int64_t num_experts = 1;  // E, divisible by ep_size
  std::int64_t ep_size = 1;      // ranks per expert-parallel group; divides runtime.world_size
  std::int64_t k = 1;            // 1 <= k <= num_experts
  double capacity_factor = 1.0;
  double eval_capacity_factor = 1.0;
  std::int64_t min_capacity = 4;
  bool use_residual = false;
  std::string noisy_gate_policy = "None";  // "None" | "Jitter" | "RSample" (JSON null = "None")
  bool drop_tokens = true;
  bool use_rts = true;
  bool top2_2nd_expert_sampling = true;
  bool enable_expert_tensor_parallelism = false;  // a no-op while the tensor-parallel size is 1
  std::string drop_policy = "probs";              // "probs" | "position" (k > 2)

  std::int64_t local_experts() const { return num_experts / ep_size; }
};

struct ModelSection {
  ModelType type = ModelType::lenet_moe;

  // lenet_moe / lenet_dense (DeepSpeed's CIFAR example net, fc3 an MoE layer of width n_embd, or
  // in lenet_dense one dense MLP of the expert's shape).
  // 0 in the file = take it from the dataset; after loading these always hold the real values.
  std::int64_t num_classes = 0;
  std::int64_t image_channels = 0;
  std::int64_t image_height = 0;
  std::int64_t image_width = 0;
  // Zero padding of the first convolution: 2 on 28×28 images gives fc1 the 16·5·5 = 400 features
  // DeepSpeed's CIFAR net sees on 32×32 ones.
  std::int64_t conv1_padding = 0;

  // gpt_moe / gpt_dense. vocab_size 0 = set from the data's character vocabulary (known only once
  // the text is read: the executor fills it in).
  std::int64_t vocab_size = 0;
  std::int64_t seq_len = 0;
  std::int64_t n_layer = 0;
  std::int64_t n_head = 0;

  // Width of the MoE layer / transformer (lenet: default 84, the width of fc3 in DeepSpeed's
  // example).
  std::int64_t n_embd = 0;
  // Hidden width f of an expert MLP Linear(n_embd, f) → activation → Linear(f, n_embd), or of the
  // dense models' MLP. Default: 4 · n_embd (gpt), n_embd (lenet; DeepSpeed's example expert is
  // one Linear(84, 84)).
  std::int64_t ffn_hidden_size = 0;
  // "relu" | "gelu" | "gelu_tanh" | "gelu_erf" | "silu": kernels/activation.hpp's parse_activation
  // names ("gelu" is the tanh approximation, as in GPT-2). Default: relu (lenet), gelu (gpt).
  std::string activation;
  double aux_loss_coef = 0.01;  // coefficient of Σ l_aux in the loss (MoE models)
  MoESection moe;               // MoE models only
  std::uint64_t init_seed = 0;  // parameter initialisation

  bool has_moe() const { return type == ModelType::lenet_moe || type == ModelType::gpt_moe; }
  bool is_gpt() const { return type == ModelType::gpt_moe || type == ModelType::gpt_dense; }
};

// ---- data ---------------------------------------------------------------------------------------

enum class DatasetKind { fashion_mnist, cifar10, kjv_text };

struct DataSection {
  DatasetKind dataset = DatasetKind::fashion_mnist;
  // A directory (fashion_mnist: the IDX .gz files; cifar10: the *.bin batches) or, for kjv_text, a
  // text file; kjv_text with an empty path reads the output of `bible -f "Gen1:1-Rev22:21"`.
  std::string path;
  bool shuffle = true;
  double validation_fraction = 0.05;     // kjv_text: the last fraction of the text validates
  std::int64_t prefetch = 2;             // batches the data actor prepares ahead
  std::int64_t limit_train_samples = 0;  // 0 = all
};

// ---- runtime ------------------------------------------------------------------------------------

enum class ExecutorKind { actors, sequential };

struct CheckpointSection {
  std::string dir;            // default "runs/<config name>/checkpoints"
  std::int64_t interval = 0;  // optimizer steps between checkpoints; 0 = off
  std::int64_t keep = 3;      // newest checkpoints kept
  bool final = true;  // one more when the run ends (completed, or stopped by SIGINT/SIGTERM)
};

struct RuntimeSection {
  std::string device = "cpu";
  std::int64_t world_size = 1;
  std::int64_t pipeline_depth = 2;  // micro-batches in flight
  std::int64_t expert_shards = 2;   // expert shard actors per MoE layer; divides local experts
  // Replicas of the input segment's stage actor: that many micro-batches run it at once (the
  // CNN's convolutions); results do not depend on it (actors/stage_actor.hpp).
  std::int64_t stage_replicas = 1;
  // Optimizer partition actors per parameter group (ZeRO stage 1); 1 under stage 0.
  std::int64_t optimizer_partitions = 1;
  ExecutorKind executor = ExecutorKind::actors;
  std::uint64_t seed = 0;          // data order, gate noise, RTS
  std::int64_t epochs = 0;         // exactly one of epochs / train_steps is > 0
  std::int64_t train_steps = 0;    // optimizer steps
  std::int64_t eval_interval = 0;  // optimizer steps between evaluations; 0 = after each epoch
  std::int64_t eval_batches = 0;   // 0 = the whole evaluation set
  std::string trace_file;          // Chrome-trace JSON; empty = no tracing
  // Seconds a rank waits for the master (MASTER_ADDR:MASTER_PORT) and for its peers at start-up,
  // and for the others at the final barrier.
  double master_timeout = 60.0;
  std::string metrics_file;  // default "runs/<config name>/metrics.jsonl"
  CheckpointSection checkpoint;
  std::int64_t log_interval = 0;  // optimizer steps between log lines; default steps_per_print
};

// ---- the whole config ---------------------------------------------------------------------------

struct RunConfig {
  std::string name;         // the config file's stem ("fashion_mnist_moe"): names the run's outputs
  std::string description;  // free text: why the settings were chosen

  // DeepSpeed's batch triple, completed and checked: train_batch_size =
  // train_micro_batch_size_per_gpu × gradient_accumulation_steps × data_parallel_size().
  std::int64_t train_batch_size = 0;
  std::int64_t train_micro_batch_size_per_gpu = 0;
  std::int64_t gradient_accumulation_steps = 0;

  OptimizerSection optimizer;
  std::optional<SchedulerSection> scheduler;
  double gradient_clipping = 0.0;  // global-norm clip; 0 = off
  // DeepSpeed's layout switch: expert-parallel groups strided, expert-data-parallel contiguous.
  bool use_data_before_expert_parallelism = false;
  std::int64_t steps_per_print = 10;
  FP16Section fp16;
  BF16Section bf16;
  ZeroSection zero_optimization;

  ModelSection model;
  DataSection data;
  RuntimeSection runtime;

  // Data-parallel ranks. Every rank is data-parallel for the dense parameters (MOE-SPEC.md), so
  // this is the world size.
  std::int64_t data_parallel_size() const { return runtime.world_size; }
};

// Reads and validates a config file; the run's name is the file's stem. With a
// `deepspeed_config_path` (troupe train's --deepspeed_config, DeepSpeed's own flag), the DeepSpeed
// keys come from that file unchanged and `path` holds troupe's model, data and runtime sections
// (it may hold DeepSpeed keys too); a top-level key set in both files is an error naming both, and
// an error about a key from the DeepSpeed file names that file. `launched_world_size` is the
// launcher's WORLD_SIZE (0: not launched): it becomes runtime.world_size, and a config that sets
// another value is an error naming both.
RunConfig load_run_config(const std::string& path, const std::string& deepspeed_config_path = "",
                          std::int64_t launched_world_size = 0);
// Validates an already parsed document; `source_name` prefixes error messages and its stem names
// the run.
RunConfig parse_run_config(const nlohmann::json& document, const std::string& source_name,
                           std::int64_t launched_world_size = 0);

}  // namespace troupe
