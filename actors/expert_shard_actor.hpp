// The expert shard actor: owns a contiguous range of one MoE layer's local experts and runs them,
// forward and backward, as one grouped GEMM over the rows the comm actor delivered. Shards of a
// layer run concurrently on different threads; their parameter gradients are disjoint slices of
// the layer's stacked expert tensors, so no locking is needed.
//
// Protocol (with the comm actor of its expert-parallel group):
//   expert_forward  → expert_output{backward = false}: the output rows, a tensor the shard made
//                     (activations kept for the backward when training)
//   expert_backward → expert_output{backward = true}: the gradient of its input rows
// Inputs are read only once ready (actors/readiness_gate.hpp).
#pragma once

#include <cstdint>
#include <memory>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "models/model.hpp"

namespace troupe {

struct ExpertShardSpec {
  std::int64_t layer = 0;
  std::int64_t shard = 0;
  std::int64_t first_expert = 0;  // local expert ids [first_expert, last_expert)
  std::int64_t last_expert = 0;
};

expert_shard_actor spawn_expert_shard_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                                            ExpertShardSpec spec, ActorContext context);

}  // namespace troupe
