// The micro-batch pipeline: the scheduler actor that runs one optimizer step (or one evaluation
// pass) by streaming micro-batches through the chain of stage and gate actors.
//
// At most `depth` micro-batches are in flight (started, and not yet back at segment 0 after
// their backward pass): a new one enters only when one leaves, which bounds activation memory
// and gives back-pressure. With depth ≥ 2, micro-batch m+1 is routed by a gate while m is in the
// experts and m−1 is being combined or runs backward. Results are summed in micro-batch order,
// so the reported numbers do not depend on timing.
//
// Protocol: run_step → step_result (after every micro-batch is done). If any actor of the
// pipeline dies, the pending request fails with that actor's exit reason (no hang).
#pragma once

#include <cstdint>
#include <vector>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"

namespace troupe {

struct PipelineShape {
  std::int64_t depth = 2;
  std::int64_t moe_layers = 0;
  std::int64_t experts = 0;  // per layer, for exp_counts
};

// `first_stages` receive forward_work for segment 0: micro-batch m goes to replica m mod R;
// `members` are every actor of the pipeline, whatever its interface (monitored only: if one dies
// the step fails); strong references, so that each is alive when the pipeline actor monitors it.
pipeline_actor spawn_pipeline_actor(caf::actor_system& system, PipelineShape shape,
                                    std::vector<pipeline_stage_actor> first_stages,
                                    std::vector<caf::strong_actor_ptr> members,
                                    ActorContext context);

}  // namespace troupe
