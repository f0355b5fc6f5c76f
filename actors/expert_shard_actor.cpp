// Expert shard actor (see expert_shard_actor.hpp).
#include "actors/expert_shard_actor.hpp"

#include <map>

#include <caf/all.hpp>

#include "actors/backward_order.hpp"
#include "actors/readiness_gate.hpp"
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
  ReadinessGate readiness;
};

using Self = expert_shard_actor::stateful_pointer<ShardState>;

// Only the comm actor sends expert_forward / expert_backward, and it accepts expert_output.
expert_output_actor sender_of(Self self) {
  return caf::actor_cast<expert_output_actor>(self->current_sender());
}

expert_shard_actor::behavior_type shard_behavior(Self self, std::shared_ptr<Model> model,
                                                 ExpertShardSpec spec, ActorContext ctx) {
  auto& st = self->state;
  st.experts = &model->moe_layer(spec.layer).experts();
  st.model = std::move(model);
  st.spec = spec;
  st.ctx = std::move(ctx);
  st.readiness.set_source(st.ctx.completion);
  return {
      [self](const expert_forward& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "expert_forward", msg.key.micro_batch, msg.rows.bytes());
        st.readiness.consume(self, {msg.rows}, [self, msg, reply_to = sender_of(self)] {
          auto& st = self->state;
          ExpertActivations activations;
          Tensor out;
          {
            auto span = st.ctx.span("experts_forward", "compute");
            out = st.experts->forward(st.spec.first_expert, st.spec.last_expert, msg.rows.tensor(),
                                      msg.offsets, activations);
          }
          if (msg.training) st.saved.emplace(msg.key, std::move(activations));
          self->send(reply_to, expert_output{msg.key, st.spec.layer, st.spec.shard, false,
                                             TensorHandle(out), st.ctx.stamp()});
        });
      },
      [self](const expert_backward& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "expert_backward", msg.key.micro_batch, msg.grad_output.bytes());
        st.readiness.consume(self, {msg.grad_output}, [self, msg, reply_to = sender_of(self)] {
          auto& st = self->state;
          st.order.check(msg.key, st.ctx.track);
          auto node = st.saved.find(msg.key);
          if (node == st.saved.end())
            throw std::logic_error(st.ctx.track + ": backward without forward for micro-batch " +
                                   std::to_string(msg.key.micro_batch));
          Tensor grad;
          {
            auto span = st.ctx.span("experts_backward", "compute");
            grad = st.experts->backward(st.spec.first_expert, st.spec.last_expert,
                                        msg.grad_output.tensor(), node->second);
          }
          st.saved.erase(node);
          self->send(reply_to, expert_output{msg.key, st.spec.layer, st.spec.shard, true,
                                             TensorHandle(grad), st.ctx.stamp()});
        });
      },
      [self](const handle_ready&) { self->state.readiness.resume(self); },
  };
}

}  // namespace

expert_shard_actor spawn_expert_shard_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                                            ExpertShardSpec spec, ActorContext context) {
  return system.spawn(shard_behavior, std::move(model), spec, std::move(context));
}

}  // namespace troupe
