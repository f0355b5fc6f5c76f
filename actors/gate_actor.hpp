// The gate actor: one per MoE layer. For each micro-batch it routes the tokens (router logits,
// top-k, capacity, drops), permutes the token rows into expert-major order and asks the comm actor
// of its expert-parallel group to dispatch them; when the comm actor returns the experts' outputs
// it combines them (weighted scatter-add, plus the Residual-MoE mix) and passes the result on with
// the layer's routing statistics. The backward pass mirrors it. While the experts work on
// micro-batch m, the gate is free to route m+1: that is the pipeline's overlap.
//
// Protocol (after one pipeline_links message):
//   forward_work  → comm_dispatch … comm_combined → forward_work (+ moe_stats) to `next`
//   backward_work → comm_dispatch … comm_combined → backward_work to `previous`
// Inputs are read only once ready (actors/readiness_gate.hpp).
#pragma once

#include <cstdint>
#include <memory>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "models/model.hpp"

namespace troupe {

// What keys the routing noise (models/noise_stream.hpp): the seed, and the global index of this
// rank's first micro-batch of a step. With data parallelism rank r's micro-batch m is global
// micro-batch r·gradient_accumulation_steps + m, so no two ranks draw the same noise and the run
// draws what one process running the whole global batch would. Evaluation is not sharded, so its
// micro-batches keep their own index.
struct RoutingNoise {
  std::uint64_t seed = 0;
  std::int64_t micro_batch_offset = 0;
};

// `comm` is the comm actor of the layer's expert-parallel group.
gate_actor spawn_gate_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                            std::int64_t layer, comm_actor comm, RoutingNoise noise,
                            ActorContext context);

}  // namespace troupe
