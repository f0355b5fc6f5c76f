// Offload manager actor (see offload_manager_actor.hpp).
#include "actors/offload_manager_actor.hpp"

#include <string>

#include <caf/all.hpp>

#include "actors/optimizer_partition_actor.hpp"

namespace troupe {
namespace {

using Partitions = std::vector<std::shared_ptr<OptimizerPartition>>;

OptimizerPartition& lookup(const Partitions& partitions, std::int64_t index) {
  if (index < 0 || index >= static_cast<std::int64_t>(partitions.size()))
    throw std::out_of_range("offload manager: no partition " + std::to_string(index));
  return *partitions[static_cast<std::size_t>(index)];
}

offload_manager_actor::behavior_type offload_behavior(offload_manager_actor::pointer,
                                                      Partitions partitions, AdamParams hp,
                                                      ActorContext ctx) {
  return {
      [=](const offload_step& msg) {
        ctx.received(msg.stamp, "offload_step", -1, 0);
        auto span = ctx.span("cpu_adam", "optimizer");
        AdamParams step_hp = hp;
        step_hp.lr = msg.lr;
        auto& partition = lookup(partitions, msg.partition);
        // The partition actor forwards the gradients once they are ready; a GPU run will copy them
        // to pinned host memory first.
        auto norms = partition.chunk_squared_norms(msg.gradients.tensor());
        partition.apply(step_hp, msg.step, msg.grad_scale, msg.gradients.tensor());
        return optimizer_done{msg.partition, msg.step, std::move(norms)};
      },
      [=](get_optimizer_state, std::int64_t partition) {
        return partition_state(lookup(partitions, partition));
      },
      [=](const set_optimizer_state& msg, std::int64_t partition) {
        restore_partition_state(lookup(partitions, partition), msg);
      },
  };
}

}  // namespace

offload_manager_actor spawn_offload_manager_actor(
    caf::actor_system& system, std::vector<std::shared_ptr<OptimizerPartition>> partitions,
    AdamParams hyperparameters, ActorContext context) {
  return system.spawn(offload_behavior, std::move(partitions), hyperparameters, std::move(context));
}

}  // namespace troupe
