// Gate actor (see gate_actor.hpp).
#include "actors/gate_actor.hpp"

#include <map>

#include <caf/all.hpp>

#include "actors/backward_order.hpp"
#include "models/moe/dispatcher.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/noise.hpp"
#include "models/noise_stream.hpp"

namespace troupe {
namespace {

struct InFlight {
  forward_work work;         // the forward message (batch handles travel on with it)
  Tensor x;                  // the layer's input [S, d]
  MoEForwardState state;     // router plan, combine and residual activations
  RoutingPlan plan;          // until finish_forward takes it
  Tensor buffer;             // expert outputs (forward) or input-row gradients (backward) [R, d]
  std::int64_t pending = 0;  // shards still working
};

struct GateState {
  std::shared_ptr<Model> model;
  MoELayer* layer = nullptr;
  std::int64_t layer_index = 0;
  GateShards shards;
  std::uint64_t seed = 0;
  ActorContext ctx;
  pipeline_links links;
  std::map<MicroBatchKey, InFlight> in_flight;
  BackwardOrder order;
};

using Self = caf::stateful_actor<GateState>*;

// Rows [begin, end) of the expert-major buffer that belong to shard j.
std::pair<std::int64_t, std::int64_t> shard_rows(const RoutingPlan& plan,
                                                 const ExpertShardSpec& s) {
  return {plan.expert_offsets[static_cast<std::size_t>(s.first_expert)],
          plan.expert_offsets[static_cast<std::size_t>(s.last_expert)]};
}

void finish_forward(Self self, const MicroBatchKey& key, InFlight& f) {
  auto& st = self->state;
  MoEOutput out;
  {
    auto span = st.ctx.span("combine", "compute");
    out = st.layer->finish_forward(f.x, std::move(f.plan), f.buffer, f.state);
  }
  const auto& plan = f.state.plan;
  std::int64_t kept = 0;
  for (auto t : plan.tokens_per_expert) kept += t;
  self->send(st.links.scheduler, moe_stats{key, st.layer_index, out.l_aux, out.exp_counts,
                                           plan.tokens * plan.k - kept, st.ctx.stamp()});
  forward_work next = f.work;
  next.activation = TensorHandle(out.output);
  next.stamp = st.ctx.stamp();
  f.buffer = Tensor();
  self->send(st.links.next, std::move(next));
  if (!f.work.training) st.in_flight.erase(key);
}

void finish_backward(Self self, const MicroBatchKey& key, InFlight& f) {
  auto& st = self->state;
  Tensor grad_x;
  {
    auto span = st.ctx.span("unpermute_router_backward", "compute");
    const float grad_l_aux = st.model->aux_loss_coef() * f.work.loss_weight;
    grad_x = st.layer->end_backward(f.buffer, grad_l_aux, f.x, f.state);
  }
  st.in_flight.erase(key);
  self->send(st.links.previous, backward_work{key, TensorHandle(grad_x), st.ctx.stamp()});
}

caf::behavior gate_behavior(Self self, std::shared_ptr<Model> model, std::int64_t layer,
                            GateShards shards, std::uint64_t seed, ActorContext ctx) {
  auto& st = self->state;
  st.layer = &model->moe_layer(layer);
  st.model = std::move(model);
  st.layer_index = layer;
  st.shards = std::move(shards);
  st.seed = seed;
  st.ctx = std::move(ctx);
  return {
      [self](const pipeline_links& links) { self->state.links = links; },
      [self](const forward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "forward_work", msg.key.micro_batch, msg.activation.bytes());
        auto [node, inserted] = st.in_flight.try_emplace(msg.key);
        if (!inserted)
          throw std::logic_error(st.ctx.track + ": micro-batch " +
                                 std::to_string(msg.key.micro_batch) + " is already in flight");
        InFlight& f = node->second;
        f.work = msg;
        f.x = msg.activation.tensor();
        {
          auto span = st.ctx.span("route", "compute");
          SeededNoise noise(st.seed, noise_stream_id(msg.key.step, msg.key.micro_batch,
                                                     st.layer_index, msg.training));
          f.plan = st.layer->router().route(f.x, msg.training, noise);
        }
        Tensor rows;
        {
          // Moving token rows to their experts: in one process a permutation, across an
          // expert-parallel group the all-to-all; traced as communication either way.
          auto span = st.ctx.span("dispatch", "comm");
          rows = permute_tokens(f.x, f.plan);
          f.buffer = Tensor::empty(rows.shape());
        }
        f.pending = static_cast<std::int64_t>(st.shards.actors.size());
        for (std::size_t j = 0; j < st.shards.actors.size(); ++j) {
          const auto& spec = st.shards.specs[j];
          const auto [begin, end] = shard_rows(f.plan, spec);
          self->send(
              st.shards.actors[j],
              expert_forward{msg.key, msg.training, TensorHandle(rows.slice_rows(begin, end)),
                             f.plan.local_offsets(spec.first_expert, spec.last_expert),
                             TensorHandle(f.buffer.slice_rows(begin, end)), st.ctx.stamp()});
        }
      },
      [self](const backward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "backward_work", msg.key.micro_batch, msg.gradient.bytes());
        st.order.check(msg.key, st.ctx.track);
        InFlight& f = st.in_flight.at(msg.key);
        Tensor grad_rows;
        {
          auto span = st.ctx.span("combine_backward", "compute");
          grad_rows = st.layer->begin_backward(msg.gradient.tensor(), f.x, f.state);
          f.buffer = Tensor::empty(grad_rows.shape());
        }
        f.pending = static_cast<std::int64_t>(st.shards.actors.size());
        for (std::size_t j = 0; j < st.shards.actors.size(); ++j) {
          const auto [begin, end] = shard_rows(f.state.plan, st.shards.specs[j]);
          self->send(
              st.shards.actors[j],
              expert_backward{msg.key, TensorHandle(grad_rows.slice_rows(begin, end)),
                              TensorHandle(f.buffer.slice_rows(begin, end)), st.ctx.stamp()});
        }
      },
      [self](const expert_done& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "expert_done", msg.key.micro_batch, 0);
        InFlight& f = st.in_flight.at(msg.key);
        if (--f.pending > 0) return;
        if (msg.backward) {
          finish_backward(self, msg.key, f);
        } else {
          finish_forward(self, msg.key, f);
        }
      },
  };
}

}  // namespace

caf::actor spawn_gate_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                            std::int64_t layer, GateShards shards, std::uint64_t seed,
                            ActorContext context) {
  return system.spawn(gate_behavior, std::move(model), layer, std::move(shards), seed,
                      std::move(context));
}

}  // namespace troupe
