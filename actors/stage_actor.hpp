// The dense stage actor: runs one dense segment of the model (everything between two MoE layers)
// for every micro-batch that passes, forward and backward, keeping each micro-batch's saved
// activations until its backward has run.
//
// Protocol (after one pipeline_links message):
//   forward_work  → forward_work to `next` (the next MoE layer's gate), or, for the last segment,
//                   loss_report (with the MoE layers' statistics the forward_work collected) to
//                   the scheduler and then (training) its own backward pass
//   backward_work → backward_work to `previous`, or micro_batch_done for segment 0
// Inputs are read only once ready (actors/readiness_gate.hpp). Backward passes must arrive in micro-batch order within a step (parameter gradients are summed
// in that order, which keeps results bit-identical to the sequential executor); an out-of-order
// arrival is a runtime bug and stops the actor with an error.
#pragma once

#include <cstdint>
#include <memory>

#include <caf/fwd.hpp>

#include "actors/actor_context.hpp"
#include "models/model.hpp"

namespace troupe {

caf::actor spawn_stage_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                             std::int64_t segment, ActorContext context);

}  // namespace troupe
