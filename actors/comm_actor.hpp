// The comm actor: one per communicator. The expert-parallel group's serves every MoE layer: it is
// where token rows move between the ranks that route them and the ranks whose experts process
// them:
//   comm_dispatch (from a gate) → expert_forward / expert_backward to the layer's expert shards;
//   expert_output (from every shard of that layer) → comm_combined back to the gate.
// With gradient clipping over ranks that hold different experts, it also gathers each rank's
// expert Σ g² (gather_values → all_gather → values_gathered).
// The data-parallel and expert-data-parallel groups' comm actors reduce the step's gradients:
//   reduce_gradients (from the trainer) → all_reduce of each buffer on the communicator, then the
//   scale, → gradients_reduced. The communicator's completion arrives as collective_finished from
//   its progress thread, so no worker ever waits on a collective.
// Each dispatch and each combine is one collective. They are issued in the order of the round's
// collective schedule (comm/collective_schedule.hpp), which every rank computes the same way, so a
// request that arrives early waits for the ones the schedule puts before it.
//
// With one process the backend is local: dispatch hands each shard a view of its rows and combine
// concatenates the shards' outputs (one shard: passes its tensor through). That is a local
// permutation, so it is traced as compute; only real transfers between ranks are traced as comm.
// The token exchange over UCX (host) and NCCL (device) plugs in at issue_dispatch / issue_combine;
// gradient reduction already runs on the spec's Communicator (comm/communicator.hpp: local with
// one process, UCX between CPU ranks).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "actors/actor_context.hpp"
#include "actors/expert_shard_actor.hpp"
#include "comm/collective_schedule.hpp"
#include "comm/communicator.hpp"

namespace troupe {

struct LayerShards {
  std::vector<expert_shard_actor> actors;
  std::vector<ExpertShardSpec> specs;  // same order; together they cover the layer's local experts
};

struct CommActorSpec {
  std::int64_t pipeline_depth = 1;
  std::vector<LayerShards> layers;  // by MoE layer (none for a gradient group's comm actor)
  // The group's communicator; null means this process alone (a LocalCommunicator).
  std::shared_ptr<Communicator> communicator;
  // Issue the token exchanges in the schedule's whole order even in one process, as every rank
  // must between ranks (tests of that order); otherwise one process keeps only each phase's order.
  bool schedule_order = false;
};

// Test hook: called with every collective in the order it is issued.
using IssueObserver = std::function<void(const CollectiveSlot&)>;

comm_actor spawn_comm_actor(caf::actor_system& system, CommActorSpec spec, ActorContext context,
                            IssueObserver observer = nullptr);

}  // namespace troupe
