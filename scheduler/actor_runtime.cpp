// Actor graph construction (see actor_runtime.hpp).
#include "scheduler/actor_runtime.hpp"

#include <string>

#include "actors/comm_actor.hpp"
#include "actors/expert_shard_actor.hpp"
#include "actors/gate_actor.hpp"
#include "actors/offload_manager_actor.hpp"
#include "actors/optimizer_partition_actor.hpp"
#include "actors/stage_actor.hpp"
#include "kernels/ops/threads.hpp"
#include "models/moe/moe_layer.hpp"
#include "scheduler/pipeline_actor.hpp"

namespace troupe {

std::vector<std::pair<std::int64_t, std::int64_t>> shard_expert_ranges(std::int64_t local_experts,
                                                                       std::int64_t shards) {
  if (shards < 1 || shards > local_experts)
    throw std::invalid_argument("runtime.expert_shards = " + std::to_string(shards) +
                                ": must be between 1 and the layer's local experts (" +
                                std::to_string(local_experts) + ")");
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  for (std::int64_t j = 0; j < shards; ++j)
    ranges.emplace_back(local_experts * j / shards, local_experts * (j + 1) / shards);
  return ranges;
}

ActorRuntime::ActorRuntime(caf::actor_system& system, std::shared_ptr<Model> model,
                           RuntimeOptions options)
    : system_(system), model_(std::move(model)) {
  // The actors are the parallelism: a kernel inside one runs on its worker thread alone.
  ops::set_cpu_intra_op_threads(1);
  auto context = [&](std::string track) {
    return ActorContext{std::move(track), options.recorder, options.completion};
  };
  const std::int64_t layers = model_->num_moe_layers();
  const auto keep = [this](const auto& handle) {
    all_.push_back(caf::actor_cast<caf::strong_actor_ptr>(handle));
  };

  // Stages and gates, then the links between them.
  // Parameters move into their groups' flat buffers first: replicas must view the final storage.
  const FlatParameterGroups groups = flatten_parameter_groups(model_->parameters());
  std::vector<stage_actor> stages;
  std::vector<gate_actor> gates;
  if (options.stage_replicas < 1)
    throw std::invalid_argument(
        "runtime.stage_replicas = " + std::to_string(options.stage_replicas) + ": must be >= 1");
  // Segment 0's replicas: replica 0 owns the segment's gradients, the others run model replicas.
  std::vector<stage_actor> first_stages;
  for (std::int64_t r = 0; r < options.stage_replicas; ++r) {
    StageReplica replica{r, options.stage_replicas, r == 0 ? stage_actor() : first_stages.front()};
    const std::string track =
        options.stage_replicas == 1 ? std::string("segment.0") : "segment.0.r" + std::to_string(r);
    first_stages.push_back(spawn_stage_actor(system_, r == 0 ? model_ : model_->make_replica(), 0,
                                             context(track), replica));
  }
  stages.push_back(first_stages.front());
  for (std::int64_t s = 1; s <= layers; ++s) {
    stages.push_back(
        spawn_stage_actor(system_, model_, s, context("segment." + std::to_string(s))));
  }
  std::int64_t experts_per_layer = 0;
  CommActorSpec comm_spec;
  comm_spec.pipeline_depth = options.pipeline_depth;
  comm_spec.schedule_order = options.comm_schedule_order;
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::int64_t local = model_->moe_layer(l).experts().count();
    experts_per_layer = model_->moe_layer(l).config().num_experts;
    LayerShards shards;
    std::int64_t j = 0;
    for (auto [first, last] : shard_expert_ranges(local, options.expert_shards)) {
      ExpertShardSpec spec{l, j, first, last};
      shards.specs.push_back(spec);
      shards.actors.push_back(spawn_expert_shard_actor(
          system_, model_, spec,
          context("expert_shard.l" + std::to_string(l) + ".s" + std::to_string(j))));
      keep(shards.actors.back());
      shards_.push_back(shards.actors.back());
      ++j;
    }
    comm_spec.layers.push_back(std::move(shards));
  }
  if (layers > 0) {
    // One expert-parallel group serves every MoE layer: one communicator, one comm actor.
    const int ep_size = options.expert_parallel ? options.expert_parallel->size() : 1;
    expert_parallel_size_ = ep_size;
    if (ep_size != model_->moe_layer(0).config().ep_size)
      throw std::invalid_argument("the expert-parallel communicator has " +
                                  std::to_string(ep_size) +
                                  " rank(s) but the model was built for model.moe.ep_size = " +
                                  std::to_string(model_->moe_layer(0).config().ep_size));
    comm_spec.communicator = options.expert_parallel;
    comm_ =
        spawn_comm_actor(system_, std::move(comm_spec), context("comm.ep"), options.comm_observer);
    keep(comm_);
  }
  for (std::int64_t l = 0; l < layers; ++l)
    gates.push_back(spawn_gate_actor(system_, model_, l, comm_,
                                     RoutingNoise{options.seed, options.micro_batch_offset},
                                     context("gate.l" + std::to_string(l))));
  for (std::size_t r = 1; r < first_stages.size(); ++r) keep(first_stages[r]);
  for (const auto& s : stages) keep(s);
  for (const auto& g : gates) keep(g);

  PipelineShape shape{options.pipeline_depth, layers, experts_per_layer};
  // Strong references: an address (a weak one) of an actor that ended before the pipeline
  // actor first runs points at a destroyed actor, and monitoring it crashes.
  std::vector<caf::strong_actor_ptr> members = all_;
  pipeline_ = spawn_pipeline_actor(system_, shape, {first_stages.begin(), first_stages.end()},
                                   std::move(members), context("scheduler"));
  for (std::size_t r = 1; r < first_stages.size(); ++r) {
    pipeline_links links{pipeline_stage_actor(),
                         layers > 0 ? pipeline_stage_actor(gates.front()) : pipeline_stage_actor(),
                         pipeline_};
    caf::anon_send(first_stages[r], links);
  }
  for (std::int64_t s = 0; s <= layers; ++s) {
    pipeline_links links;
    if (s > 0) links.previous = gates[static_cast<std::size_t>(s - 1)];
    if (s < layers) links.next = gates[static_cast<std::size_t>(s)];
    links.scheduler = pipeline_;
    caf::anon_send(stages[static_cast<std::size_t>(s)], links);
  }
  for (std::int64_t l = 0; l < layers; ++l) {
    pipeline_links links{stages[static_cast<std::size_t>(l)],
                         stages[static_cast<std::size_t>(l + 1)], pipeline_};
    caf::anon_send(gates[static_cast<std::size_t>(l)], links);
  }

  // Each gradient group is reduced over its communicator (DeepSpeed averages both groups over
  // the whole data-parallel size, so gradients do not depend on ep_size). Under ZeRO stage 1 a
  // group of several ranks also partitions its optimizer state over them.
  const int data_parallel_size = options.data_parallel ? options.data_parallel->size() : 1;
  const auto shard_of = [&](const std::shared_ptr<Communicator>& communicator) {
    const bool partitioned = options.zero_stage >= 1 && communicator && communicator->size() > 1;
    return partitioned ? RankShard{communicator->rank(), communicator->size()} : RankShard{};
  };
  const RankShard dense_shard = shard_of(options.data_parallel);
  const RankShard expert_shard = shard_of(options.expert_data_parallel);

  // Optimizer partitions, and the offload manager that owns their state under ZeRO-Offload.
  for (auto& p : partition_parameters(model_->parameters(), options.optimizer_partitions,
                                      dense_shard, expert_shard))
    partitions_.push_back(std::make_shared<OptimizerPartition>(std::move(p)));
  offload_manager_actor offload;
  if (options.offload_optimizer) {
    offload =
        spawn_offload_manager_actor(system_, partitions_, options.adam, context("offload_manager"));
    keep(offload);
  }
  for (const auto& p : partitions_) {
    partition_actors_.push_back(spawn_optimizer_partition_actor(
        system_, p, options.adam, offload,
        context("optimizer." + std::string(p->expert_group() ? "expert" : "dense") + "." +
                std::to_string(p->index()))));
  }
  for (const auto& p : partition_actors_) keep(p);
  keep(pipeline_);

  const auto reduction = [&](const ParameterGroupBuffers& group, bool expert_group,
                             std::shared_ptr<Communicator> communicator, RankShard shard,
                             const char* track) {
    if (group.numel() == 0) return;
    CommActorSpec spec;
    spec.communicator = std::move(communicator);
    const comm_actor actor = spawn_comm_actor(system_, std::move(spec), context(track));
    keep(actor);
    GradientReduction r{actor,
                        {TensorHandle(group.grads)},
                        1.0f / static_cast<float>(data_parallel_size),
                        expert_group};
    if (shard.size > 1) {
      r.partitioned = true;
      r.values = {TensorHandle(group.values)};
      r.norm_chunks_per_rank = chunks_per_rank(group.numel(), shard.size);
    }
    reductions_.push_back(std::move(r));
  };
  reduction(groups.non_expert, false, options.data_parallel, dense_shard, "comm.dp");
  reduction(groups.expert, true, options.expert_data_parallel, expert_shard, "comm.edp");
  if (options.world && options.world->size() > 1) {
    CommActorSpec spec;
    spec.communicator = options.world;
    world_comm_ = spawn_comm_actor(system_, std::move(spec), context("comm.world"));
    keep(world_comm_);
  }
}

std::vector<std::vector<TensorHandle>> ActorRuntime::gradient_buckets() const {
  std::vector<std::vector<TensorHandle>> buckets;
  for (const auto& p : partitions_) {
    buckets.push_back({TensorHandle(p->grads())});
  }
  return buckets;
}

std::vector<bool> ActorRuntime::expert_partitions() const {
  std::vector<bool> out;
  for (const auto& p : partitions_) out.push_back(p->expert_group());
  return out;
}

void ActorRuntime::shutdown() {
  for (auto& a : all_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  all_.clear();
  partition_actors_.clear();
  pipeline_ = nullptr;
  comm_ = nullptr;
  world_comm_ = nullptr;
  shards_.clear();
  reductions_.clear();
}

ActorRuntime::~ActorRuntime() {
  shutdown();
}

}  // namespace troupe
