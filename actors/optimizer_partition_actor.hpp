// The optimizer partition actor: owns one partition of the parameters' optimizer state (ZeRO
// stage 1 partitioning; expert and non-expert parameters are never mixed in one partition) and
// applies Adam / AdamW to it. With ZeRO-Offload it owns no state: it hands each step to the
// offload manager, which keeps the state in host memory.
//
// Protocol:
//   gradient_bucket  → grad_norm_reply   the step's gradients are complete; Σ g² of each norm chunk
//   optimizer_step   → optimizer_done    apply the update (lr, clipping scale) to the gradients it
//                                        is handed (one handle into the group's flat buffer, read
//                                        once ready), clear them

//   get_optimizer_state → optimizer_state, set_optimizer_state → unit   (checkpoints)
#pragma once

#include <memory>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "kernels/op_params.hpp"
#include "models/optimizer_partition.hpp"

namespace troupe {

// `offload_manager` is invalid (default) unless ZeRO-Offload is on; then `partition` is also
// registered with the manager, which owns the state.
optimizer_partition_actor spawn_optimizer_partition_actor(
    caf::actor_system& system, std::shared_ptr<OptimizerPartition> partition,
    AdamParams hyperparameters, offload_manager_actor offload_manager, ActorContext context);

// State tensors of a partition by name, for checkpoints: "exp_avg", "exp_avg_sq", with the
// partition's group and offset in it.
optimizer_state partition_state(OptimizerPartition& partition);
void restore_partition_state(OptimizerPartition& partition, const set_optimizer_state& state);

}  // namespace troupe
