// The data actor: reads batches from a dataset in a seeded shuffled order, and prepares the next
// step's batches while the current step trains (prefetch), so the pipeline never waits on data.
// It also streams the evaluation split, unshuffled, for evaluation passes.
//
// Protocol:
//   next_batches{count, evaluation = false} → batches_reply   (training; crosses epochs freely)
//   next_batches{count, evaluation = true}  → batches_reply   (up to count; epoch_finished at end)
//   rewind_eval → unit; get_position → data_position; set_position → unit (resume)
#pragma once

#include <cstdint>
#include <memory>

#include "actors/actor_context.hpp"
#include "actors/protocols.hpp"
#include "data/batcher.hpp"
#include "data/dataset.hpp"
#include "data/eval_shard.hpp"

namespace troupe {

struct DataActorOptions {
  BatcherOptions train;  // batch_size = micro-batch size
  std::int64_t eval_batch_size = 256;
  std::int64_t prefetch = 1;  // steps' worth of batches prepared ahead; 0 = none
  BatcherPosition start;      // where training batches begin (a checkpoint's position)
  // Data parallelism: a step's global batch is data_parallel_size × count micro-batches read in
  // order, and rank r takes micro-batches [r·count, (r + 1)·count) of it, skipping the others
  // unread. Positions (get_position, set_position) are those of a step's start, the same on
  // every rank. Evaluation is sharded over the same ranks (data/eval_shard.hpp): each evaluates
  // its shard, in as many batches as every other rank.
  std::int64_t data_parallel_rank = 0;
  std::int64_t data_parallel_size = 1;
};

data_actor spawn_data_actor(caf::actor_system& system, std::shared_ptr<const Dataset> train,
                            std::shared_ptr<const Dataset> eval, DataActorOptions options,
                            ActorContext context);

}  // namespace troupe
