// Every actor's protocol as a CAF typed_actor interface, so a message an actor does not accept is
// a compile error at the send, and a request's reply handler must take the type the interface
// promises. Each interface lists who sends what to the actor and what it replies; the messages
// are those of actors/messages.hpp.
//
// Where several actors accept the same messages the common part is an interface of its own and
// the wider interfaces extend it: a typed handle is assignable to any interface whose messages it
// accepts (checked at compile time), never the other way round. Handles stored by an actor are
// typed as the narrowest interface it uses.
#pragma once

#include <cstdint>

#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace troupe {

// ---- common interfaces -------------------------------------------------------------------------

// pipeline_stage_actor (a dense stage or a gate: forward_work / backward_work) and
// pipeline_sink_actor (the scheduler side: loss_report / micro_batch_done) are declared in
// actors/messages.hpp, because pipeline_links names them.

// Completion source → any actor that waits for handles (actors/readiness_gate.hpp).
using handle_ready_actor = caf::typed_actor<caf::reacts_to<handle_ready>>;

// Comm actor → the gate that sent a comm_dispatch: the experts' combined rows.
using comm_combined_actor = caf::typed_actor<caf::reacts_to<comm_combined>>;

// Expert shard → the comm actor that sent expert_forward / expert_backward.
using expert_output_actor = caf::typed_actor<caf::reacts_to<expert_output>>;

// ---- the micro-batch pipeline ------------------------------------------------------------------

// Dense stage (actors/stage_actor.hpp).
//   scheduler → pipeline_links (once); previous stage / scheduler → forward_work;
//   next gate → backward_work; its replicas → segment_gradients (owner only).
using stage_actor =
    pipeline_stage_actor::extend<caf::reacts_to<pipeline_links>, caf::reacts_to<segment_gradients>,
                                 caf::reacts_to<handle_ready>>;

// Gate (actors/gate_actor.hpp).
//   scheduler → pipeline_links (once); stages → forward_work / backward_work;
//   comm actor → comm_combined.
using gate_actor =
    pipeline_stage_actor::extend<caf::reacts_to<pipeline_links>, caf::reacts_to<comm_combined>,
                                 caf::reacts_to<handle_ready>>;

// Comm actor (actors/comm_actor.hpp), one per communicator: gates → comm_dispatch; expert
// shards → expert_output; trainer → reduce_gradients → gradients_reduced, gather_values →
// values_gathered, gather_parameters → parameters_gathered; its communicator's progress thread →
// collective_finished.
using comm_actor =
    caf::typed_actor<caf::reacts_to<comm_dispatch>, caf::reacts_to<expert_output>,
                     caf::replies_to<reduce_gradients>::with<gradients_reduced>,
                     caf::replies_to<gather_values>::with<values_gathered>,
                     caf::replies_to<gather_parameters>::with<parameters_gathered>,
                     caf::reacts_to<collective_finished>, caf::reacts_to<handle_ready>>;

// Expert shard (actors/expert_shard_actor.hpp): comm actor → expert_forward / expert_backward,
// each answered by an expert_output message sent to the comm actor.
using expert_shard_actor =
    caf::typed_actor<caf::reacts_to<expert_forward>, caf::reacts_to<expert_backward>,
                     caf::reacts_to<handle_ready>>;

// Pipeline (scheduler) actor (scheduler/pipeline_actor.hpp): trainer → run_step, replied to
// with step_result; the last stage → loss_report, segment 0 → micro_batch_done.
using pipeline_actor = pipeline_sink_actor::extend<caf::replies_to<run_step>::with<step_result>>;

// ---- data --------------------------------------------------------------------------------------

// The data actor sends this (with a step's micro-batches and the steps to have ready) to itself
// after a reply, so the next step's batches are prepared while the current step trains.
using prefetch_atom = caf::atom_constant<caf::atom("prefetch")>;

// Data actor (actors/data_actor.hpp): trainer → next_batches → batches_reply; rewind_eval →
// (empty reply); get_position → data_position; set_position → (empty reply); itself → prefetch.
using data_actor = caf::typed_actor<
    caf::replies_to<next_batches>::with<batches_reply>, caf::reacts_to<rewind_eval>,
    caf::replies_to<get_position>::with<data_position>, caf::reacts_to<set_position>,
    caf::reacts_to<prefetch_atom, std::int64_t, std::int64_t>>;

// ---- optimizer ---------------------------------------------------------------------------------

// Optimizer partition (actors/optimizer_partition_actor.hpp): trainer → gradient_bucket →
// grad_norm_reply; optimizer_step → optimizer_done; checkpoints: get_optimizer_state →
// optimizer_state, set_optimizer_state → (empty reply).
using optimizer_partition_actor =
    caf::typed_actor<caf::replies_to<gradient_bucket>::with<grad_norm_reply>,
                     caf::replies_to<optimizer_step>::with<optimizer_done>,
                     caf::replies_to<get_optimizer_state>::with<optimizer_state>,
                     caf::reacts_to<set_optimizer_state>, caf::reacts_to<handle_ready>>;

// Offload manager (actors/offload_manager_actor.hpp): optimizer partitions → offload_step →
// optimizer_done; (get_optimizer_state, partition) → optimizer_state;
// (set_optimizer_state, partition) → (empty reply).
using offload_manager_actor =
    caf::typed_actor<caf::replies_to<offload_step>::with<optimizer_done>,
                     caf::replies_to<get_optimizer_state, std::int64_t>::with<optimizer_state>,
                     caf::reacts_to<set_optimizer_state, std::int64_t>>;

// ---- training and tracing ----------------------------------------------------------------------

// Trainer (actors/trainer_actor.hpp): caller → start_training → training_summary.
using trainer_actor = caf::typed_actor<caf::replies_to<start_training>::with<training_summary>>;

// Trace actor (actors/trace_actor.hpp): anyone → flush_trace (empty reply once written).
using trace_actor = caf::typed_actor<caf::reacts_to<flush_trace>>;

}  // namespace troupe
