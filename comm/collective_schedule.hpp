// The order in which a communicator issues its collectives during one round (one training step or
// one evaluation request), computed the same way on every rank from the round's shape alone.
//
// Ranks must issue the collectives of one communicator in the same order, or they deadlock (NCCL
// and UCX match operations by order). Requests reach a comm actor in whatever order the actors
// happen to run, so the comm actor holds each request until the schedule reaches it.
//
// A sorted key order (micro-batch, layer, phase) is not enough: it would put all of micro-batch
// 0, its backward included, before micro-batch 1's first dispatch, which serialises the pipeline
// (and with depth < micro-batches, deadlocks nothing but idles every expert). Instead the schedule
// replays the pipeline on a virtual clock:
//   - each micro-batch walks its phases in causal order: for every MoE layer in order, forward
//     dispatch then forward combine; then (training) for every layer in reverse, backward dispatch
//     then backward combine;
//   - micro-batch m < depth enters at tick m; micro-batch m >= depth enters on the tick after
//     micro-batch m − depth has finished (the pipeline's back-pressure);
//   - one phase per tick per micro-batch; within a tick the newest micro-batch goes first, so that
//     a new micro-batch's dispatch is issued while an older one's experts still compute (that is
//     the overlap the pipeline exists for).
// No entry can wait on a later one: an entry's causes (earlier phases of its micro-batch, and for a
// late entrant the whole of micro-batch m − depth) sit on strictly earlier ticks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

enum class CollectivePhase : std::uint8_t {
  dispatch_forward,   // token rows to their experts
  combine_forward,    // expert outputs back to their tokens
  dispatch_backward,  // output-row gradients to the experts
  combine_backward,   // input-row gradients back to their tokens
};

const char* collective_phase_name(CollectivePhase phase);

struct CollectiveSlot {
  std::int64_t micro_batch = 0;
  std::int64_t layer = 0;
  CollectivePhase phase = CollectivePhase::dispatch_forward;
  friend bool operator==(const CollectiveSlot&, const CollectiveSlot&) = default;
};

std::string to_string(const CollectiveSlot& slot);

struct RoundShape {
  std::int64_t micro_batches = 1;
  std::int64_t depth = 1;       // micro-batches in flight at most
  std::int64_t moe_layers = 1;  // MoE layers served by this communicator
  bool training = true;         // false: forward phases only
};

// Every collective of the round, in issue order. Throws std::invalid_argument on a non-positive
// micro-batch count or depth, or a negative layer count.
std::vector<CollectiveSlot> collective_schedule(const RoundShape& shape);

}  // namespace troupe
