// The offload manager actor (ZeRO-Offload): keeps the optimizer state and fp32 master weights of
// every partition in host memory and runs Adam there, so accelerator memory holds only the
// parameters and gradients in use. On a GPU run the partition actors copy gradients into pinned
// host buffers before an offload_step and the updated parameters back after; on a CPU run the
// state already lives in host memory and the same protocol runs without copies.
//
// Protocol:
//   offload_step                              → optimizer_done
//   (get_optimizer_state, partition index)    → optimizer_state
//   (set_optimizer_state, partition index)    → unit
#pragma once

#include <memory>
#include <vector>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "kernels/op_params.hpp"
#include "models/optimizer_partition.hpp"

namespace troupe {

// `partitions[i]` must have index() == i.
offload_manager_actor spawn_offload_manager_actor(
    caf::actor_system& system, std::vector<std::shared_ptr<OptimizerPartition>> partitions,
    AdamParams hyperparameters, ActorContext context);

}  // namespace troupe
