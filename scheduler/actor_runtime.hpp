// Builds the actor graph that trains one model in this process and tears it down again:
//
//   segment 0 → gate 0 ⇄ comm ⇄ expert shards of layer 0 → segment 1 → gate 1 ⇄ … → segment L
//   pipeline (scheduler) actor feeding segment 0, optimizer partition actors, and with
//   ZeRO-Offload the offload manager.
//
// Callers (the trainer, tests, embedding programs) talk to it through messages only, over typed
// handles (actors/protocols.hpp): run_step → step_result at pipeline(), reduce_gradients at the
// gradient groups' comm actors, gradient_bucket / optimizer_step at the partitions.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "actors/actor_context.hpp"
#include "actors/comm_actor.hpp"
#include "actors/protocols.hpp"
#include "actors/trainer_actor.hpp"
#include "kernels/op_params.hpp"
#include "models/model.hpp"
#include "models/optimizer_partition.hpp"

namespace troupe {

struct RuntimeOptions {
  std::int64_t pipeline_depth = 2;        // micro-batches in flight
  std::int64_t expert_shards = 1;         // expert shard actors per MoE layer
  std::int64_t stage_replicas = 1;        // replicas of the input segment's stage actor
  std::int64_t optimizer_partitions = 1;  // per parameter group (non-expert, expert)
  // ZeRO stage: with 1, a group whose reduction group has several ranks has its optimizer state
  // partitioned over them (models/optimizer_partition.hpp's rank_range): each rank's
  // optimizer_partitions split only its range.
  std::int64_t zero_stage = 0;
  bool offload_optimizer = false;  // ZeRO-Offload: Adam in the offload manager
  AdamParams adam;
  std::uint64_t seed = 0;  // routing noise
  // The global index of this rank's first micro-batch of a step (data-parallel rank ×
  // gradient_accumulation_steps): keys its routing noise (actors/gate_actor.hpp).
  std::int64_t micro_batch_offset = 0;
  std::shared_ptr<TraceRecorder> recorder;  // null: no tracing
  // Delivers handle_ready for handles not ready on arrival; null: the process-wide poller.
  std::shared_ptr<CompletionSource> completion;
  IssueObserver comm_observer;  // tests: sees every collective the comm actor issues, in order
  // Tests: the expert-parallel comm actor keeps the schedule's whole order even in one process
  // (CommActorSpec::schedule_order).
  bool comm_schedule_order = false;
  // This process's communicators (comm/communicator.hpp); null: this process alone (local).
  // Token rows move over expert_parallel (its size must be the models' ep_size); non-expert
  // gradients are reduced over data_parallel, expert gradients over expert_data_parallel; both
  // are scaled by 1 / data_parallel's size.
  std::shared_ptr<Communicator> expert_parallel;
  std::shared_ptr<Communicator> data_parallel;
  std::shared_ptr<Communicator> expert_data_parallel;
  // Every rank of the run (null or size 1: this process alone): its comm actor gathers the
  // checkpoint shards' confirmations.
  std::shared_ptr<Communicator> world;
};

// Splits `local_experts` into `shards` contiguous ranges of nearly equal size; throws
// std::invalid_argument when shards < 1 or shards > local_experts.
std::vector<std::pair<std::int64_t, std::int64_t>> shard_expert_ranges(std::int64_t local_experts,
                                                                       std::int64_t shards);

class ActorRuntime {
 public:
  ActorRuntime(caf::actor_system& system, std::shared_ptr<Model> model, RuntimeOptions options);
  ~ActorRuntime();
  ActorRuntime(const ActorRuntime&) = delete;
  ActorRuntime& operator=(const ActorRuntime&) = delete;

  const pipeline_actor& pipeline() const { return pipeline_; }
  const std::vector<optimizer_partition_actor>& optimizer_partitions() const {
    return partition_actors_;
  }
  // The optimizer state objects (owned by the partition actors or the offload manager); touch
  // them only while no step is running (checkpoint restore).
  const std::vector<std::shared_ptr<OptimizerPartition>>& partitions() const { return partitions_; }
  // Per partition, handles to the gradient slices it owns.
  std::vector<std::vector<TensorHandle>> gradient_buckets() const;
  // The gradient groups' reductions the trainer asks for after each step's backward pass.
  const std::vector<GradientReduction>& gradient_reductions() const { return reductions_; }
  // The expert-parallel group's comm actor when its ranks hold different experts (ep_size > 1), for
  // the global gradient norm (TrainerLinks::expert_norms); null otherwise.
  comm_actor expert_norms() const { return expert_parallel_size_ > 1 ? comm_ : comm_actor(); }
  // By optimizer partition: whether it holds expert parameters.
  std::vector<bool> expert_partitions() const;
  // The comm actor of the world group when the run has several ranks (TrainerLinks::world);
  // null otherwise.
  const comm_actor& world_comm() const { return world_comm_; }
  // The expert shard actors, layer by layer (tests hold them under the test coordinator).
  const std::vector<expert_shard_actor>& expert_shards() const { return shards_; }
  // Every actor the runtime spawned, whatever its interface: references that keep them alive, for
  // monitoring and stopping them (no message but exit goes through these).
  const std::vector<caf::strong_actor_ptr>& actors() const { return all_; }

  // Stops every actor (also done by the destructor).
  void shutdown();

 private:
  caf::actor_system& system_;
  std::shared_ptr<Model> model_;
  std::vector<std::shared_ptr<OptimizerPartition>> partitions_;
  std::vector<optimizer_partition_actor> partition_actors_;
  pipeline_actor pipeline_;
  comm_actor comm_;  // the expert-parallel group's comm actor (none without MoE layers)
  comm_actor world_comm_;
  int expert_parallel_size_ = 1;
  std::vector<expert_shard_actor> shards_;
  std::vector<GradientReduction> reductions_;
  std::vector<caf::strong_actor_ptr> all_;
};

}  // namespace troupe
