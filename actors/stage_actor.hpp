// The dense stage actor: runs one dense segment of the model (everything between two MoE layers)
// for every micro-batch that passes, forward and backward, keeping each micro-batch's saved
// activations until its backward has run.
//
// Protocol (after one pipeline_links message):
//   forward_work  → forward_work to `next` (the next MoE layer's gate), or, for the last segment,
//                   loss_report (with the MoE layers' statistics the forward_work collected) to
//                   the scheduler and then (training) its own backward pass
//   backward_work → backward_work to `previous`, or micro_batch_done for segment 0 (from the
//                   owner, once the micro-batch's gradients are added)
//   segment_gradients (owner, from its replicas) → added in micro-batch order
// Inputs are read only once ready (actors/readiness_gate.hpp). Backward passes must arrive in
// micro-batch order within a step (parameter gradients are summed in that order, which keeps
// results bit-identical to the sequential executor); an out-of-order arrival is a runtime bug and
// stops the actor with an error.
#pragma once

#include <cstdint>
#include <memory>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "models/model.hpp"

namespace troupe {

// A stage may be replicated so that several micro-batches run its segment at once (the input
// segment, which holds the convolutions of the CNN). Replica r of R takes micro-batches
// m ≡ r (mod R), runs them on its own model instance (Model::make_replica: shared parameter values,
// own gradients) and sends each micro-batch's segment gradients to the owner (replica 0), which
// adds every replica's gradients into the parameters' gradients in micro-batch order and then
// reports the micro-batch done. Every stage computes segment gradients apart and adds them in
// order (models/segment_gradients.hpp), so results do not depend on the replica count.
struct StageReplica {
  std::int64_t index = 0;
  std::int64_t replicas = 1;
  stage_actor owner;  // invalid for the owner itself
};

stage_actor spawn_stage_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                              std::int64_t segment, ActorContext context,
                              StageReplica replica = StageReplica{});

}  // namespace troupe
