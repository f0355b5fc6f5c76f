// The gate actor: one per MoE layer. For each micro-batch it routes the tokens (router logits,
// top-k, capacity, drops), permutes the token rows into expert-major order, hands each expert
// shard its rows, and, when all shards are done, combines their outputs (weighted scatter-add,
// plus the Residual-MoE mix) and passes the result on. The backward pass mirrors it. While the
// shards work on micro-batch m, the gate is free to route m+1: that is the pipeline's overlap.
//
// Protocol (after one pipeline_links message):
//   forward_work  → expert_forward to every shard … expert_done → forward_work to `next`,
//                   moe_stats to the scheduler
//   backward_work → expert_backward to every shard … expert_done → backward_work to `previous`
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/actor_context.hpp"
#include "actors/expert_shard_actor.hpp"
#include "models/model.hpp"

namespace troupe {

struct GateShards {
  std::vector<caf::actor> actors;
  std::vector<ExpertShardSpec> specs;  // same order; together they cover the layer's local experts
};

// `seed` keys the routing noise (see models/noise_stream.hpp).
caf::actor spawn_gate_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                            std::int64_t layer, GateShards shards, std::uint64_t seed,
                            ActorContext context);

}  // namespace troupe
