// The trainer actor (one per rank): drives optimizer steps, gradient accumulation, evaluation,
// progress logging, metrics and checkpoints.
//
// One step, all of it messages (the trainer never blocks a thread):
//   data actor:        next_batches{gradient_accumulation_steps} → batches_reply
//   scheduler:         run_step{micro-batches} → step_result       (forward + backward)
//   optimizer parts:   gradient_bucket → grad_norm_reply            (global norm for clipping)
//                      optimizer_step{lr, clip scale} → optimizer_done
// Every `eval_interval` steps, and after the last, it streams the evaluation split through the
// scheduler (forward only). Every `checkpoint_interval` steps it writes a checkpoint, and with
// `checkpoint_final` one when the run ends. At every step boundary it asks `stop_requested`
// (a SIGINT or SIGTERM, tools/stop_signals.hpp); when it says yes the run ends there, without the
// final evaluation, its final checkpoint written.
//
// Protocol: start_training → training_summary.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "models/model.hpp"

namespace troupe {

struct TrainerOptions {
  std::int64_t total_steps = 1;
  std::int64_t start_step = 0;  // steps already done (resume)
  std::int64_t micro_batches_per_step = 1;
  std::int64_t samples_per_micro_batch = 1;
  std::function<float(std::int64_t step)> learning_rate;  // step is 1-based
  float gradient_clipping = 0.0f;                         // max global norm; 0 = off
  std::int64_t eval_interval = 0;                         // steps; 0 = only after the last step
  std::int64_t eval_batches = 0;                          // 0 = the whole evaluation split
  std::int64_t eval_micro_batches = 2;   // evaluation batches per scheduler request
  std::int64_t log_interval = 10;        // steps between progress lines
  std::string metrics_file;              // JSON lines; empty = none
  std::string checkpoint_dir;            // empty = no checkpoints
  std::int64_t checkpoint_interval = 0;  // steps; 0 = none
  std::int64_t checkpoint_keep = 0;      // newest checkpoints kept; 0 = all
  bool checkpoint_final = false;  // also one when the run ends (unless the last step had one)
  // Rank 0 of a run of several ranks: the run's checkpoint directory, where it writes the
  // manifest naming every rank's shard once all are confirmed (models/sharded_checkpoint.hpp).
  std::string checkpoint_manifest_dir;
  // Polled at each step boundary (cheap, thread-safe); true ends the run there. Empty = never.
  std::function<bool()> stop_requested;
  std::uint64_t seed = 0;       // recorded in checkpoints
  std::string run_id;           // recorded in checkpoints (models/checkpoint.hpp)
  bool language_model = false;  // report bits per character next to the loss
};

// One gradient group's reduction over its data-parallel group: the comm actor of the group's
// communicator, the group's flat gradient buffer, and the scale (1 / data-parallel size).
// With ZeRO stage 1 over the group's ranks (`partitioned`), this rank's optimizer partitions hold
// only its range of the group: the gradients are reduce-scattered into it, the global norm
// gathers every rank's `norm_chunks_per_rank` chunk sums, and after the optimizer step the
// updated `values` are all-gathered.
struct GradientReduction {
  comm_actor actor;
  std::vector<TensorHandle> buffers;
  float scale = 1.0f;
  bool expert_group = false;
  bool partitioned = false;
  std::vector<TensorHandle> values;  // partitioned: the group's flat value buffer
  std::int64_t norm_chunks_per_rank = 0;
};

struct TrainerLinks {
  data_actor data;
  pipeline_actor scheduler;
  std::vector<optimizer_partition_actor> optimizer_partitions;
  // Per partition: views of the gradients it owns (its bucket; with data parallelism, the
  // reduce-scattered shard lands here).
  std::vector<std::vector<TensorHandle>> gradient_buckets;
  // Reduced before the optimizer sees the gradients (ActorRuntime::gradient_reductions()); empty:
  // the gradients are used as the pipeline left them.
  std::vector<GradientReduction> gradient_reductions;
  // When the experts are spread over ranks (ep_size > 1): the expert-parallel group's comm actor,
  // which gathers every rank's expert Σ g² for the global norm. Null: this process holds every
  // expert.
  comm_actor expert_norms;
  // By partition: whether it holds expert parameters (needed with expert_norms or a partitioned
  // reduction).
  std::vector<bool> expert_partitions;
  // With several ranks: the world group's comm actor. Each rank's checkpoint is then a shard, and
  // the ranks confirm theirs to one another (their CRCs, all-gathered) before rank 0 writes the
  // manifest (TrainerOptions::checkpoint_manifest_dir). Null: one process.
  comm_actor world;
};

trainer_actor spawn_trainer_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                                  TrainerOptions options, TrainerLinks links, ActorContext context);

}  // namespace troupe
