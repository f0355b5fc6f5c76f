// Expert shard actor (see expert_shard_actor.hpp).
#include "actors/expert_shard_actor.hpp"

#include <map>

#include <caf/all.hpp>

#include "actors/backward_order.hpp"
#include "models/moe/moe_layer.hpp"

namespace troupe {
namespace {

struct ShardState {
  std::shared_ptr<Model> model;
  Experts* experts = nullptr;
  ExpertShardSpec spec;
  ActorContext ctx;
  std::map<MicroBatchKey, ExpertActivations> saved;
  BackwardOrder order;
};

caf::behavior shard_behavior(caf::stateful_actor<ShardState>* self, std::shared_ptr<Model> model,
                             ExpertShardSpec spec, ActorContext ctx) {
  auto& st = self->state;
  st.experts = &model->moe_layer(spec.layer).experts();
  st.model = std::move(model);
  st.spec = spec;
  st.ctx = std::move(ctx);
  return {
      [self](const expert_forward& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "expert_forward", msg.key.micro_batch, msg.rows.bytes());
        ExpertActivations activations;
        Tensor out;
        {
          auto span = st.ctx.span("experts_forward", "compute");
          out = st.experts->forward(st.spec.first_expert, st.spec.last_expert, msg.rows.tensor(),
                                    msg.offsets, activations);
          // The gate owns the output buffer (one [rows, d] tensor for all shards): write our rows.
          Tensor destination = msg.output.tensor();
          destination.copy_from(out);
        }
        if (msg.training) st.saved.emplace(msg.key, std::move(activations));
        return expert_done{msg.key, st.spec.shard, false, st.ctx.stamp()};
      },
      [self](const expert_backward& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "expert_backward", msg.key.micro_batch, msg.grad_output.bytes());
        st.order.check(msg.key, st.ctx.track);
        auto node = st.saved.find(msg.key);
        if (node == st.saved.end())
          throw std::logic_error(st.ctx.track + ": backward without forward for micro-batch " +
                                 std::to_string(msg.key.micro_batch));
        {
          auto span = st.ctx.span("experts_backward", "compute");
          const Tensor grad = st.experts->backward(st.spec.first_expert, st.spec.last_expert,
                                                   msg.grad_output.tensor(), node->second);
          Tensor destination = msg.grad_rows.tensor();
          destination.copy_from(grad);
        }
        st.saved.erase(node);
        return expert_done{msg.key, st.spec.shard, true, st.ctx.stamp()};
      },
  };
}

}  // namespace

caf::actor spawn_expert_shard_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                                    ExpertShardSpec spec, ActorContext context) {
  return system.spawn(shard_behavior, std::move(model), spec, std::move(context));
}

}  // namespace troupe
