// Gate actor (see gate_actor.hpp).
#include "actors/gate_actor.hpp"

#include <map>

#include <caf/all.hpp>

#include "actors/backward_order.hpp"
#include "actors/readiness_gate.hpp"
#include "models/moe/dispatcher.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/noise.hpp"
#include "models/noise_stream.hpp"

namespace troupe {
namespace {

struct InFlight {
  forward_work work;  // the forward message (batch handles travel on with it)
  pipeline_stage_actor
      came_from;          // gets the backward pass: the stage (replica) that holds its cache
  Tensor x;               // the layer's input [S, d]
  MoEForwardState state;  // router plan, combine and residual activations
  RoutingPlan plan;       // until finish_forward takes it
  TensorHandle carry;     // the backward carry passing through to the segment before
};

struct GateState {
  std::shared_ptr<Model> model;
  MoELayer* layer = nullptr;
  std::int64_t layer_index = 0;
  comm_actor comm;
  RoutingNoise noise;
  ActorContext ctx;
  pipeline_links links;
  std::map<MicroBatchKey, InFlight> in_flight;
  BackwardOrder order;
  ReadinessGate readiness;
};

using Self = gate_actor::stateful_pointer<GateState>;

void route_and_dispatch(Self self, const forward_work& msg, pipeline_stage_actor came_from) {
  auto& st = self->state;
  auto [node, inserted] = st.in_flight.try_emplace(msg.key);
  if (!inserted)
    throw std::logic_error(st.ctx.track + ": micro-batch " + std::to_string(msg.key.micro_batch) +
                           " is already in flight");
  InFlight& f = node->second;
  f.work = msg;
  f.came_from = std::move(came_from);
  f.x = msg.activation.tensor();
  Tensor rows;
  {
    auto span = st.ctx.span("route", "compute");
    const std::int64_t micro_batch =
        msg.key.micro_batch + (msg.training ? st.noise.micro_batch_offset : 0);
    SeededNoise noise(st.noise.seed,
                      noise_stream_id(msg.key.step, micro_batch, st.layer_index, msg.training));
    f.plan = st.layer->router().route(f.x, msg.training, noise);
    rows = permute_tokens(f.x, f.plan);
  }
  self->send(st.comm, comm_dispatch{msg.key, msg.micro_batches, msg.training, st.layer_index, false,
                                    TensorHandle(rows), f.plan.expert_offsets, st.ctx.stamp()});
}

void finish_forward(Self self, const MicroBatchKey& key, const Tensor& expert_out) {
  auto& st = self->state;
  InFlight& f = st.in_flight.at(key);
  MoEOutput out;
  {
    auto span = st.ctx.span("combine", "compute");
    out = st.layer->finish_forward(f.x, std::move(f.plan), expert_out, f.state);
  }
  const auto& plan = f.state.plan;
  std::int64_t kept = 0;
  for (auto t : plan.tokens_per_expert) kept += t;
  forward_work next = f.work;
  next.activation = TensorHandle(out.output);
  next.stats.push_back(
      moe_stats{key, st.layer_index, out.l_aux, out.exp_counts, plan.tokens * plan.k - kept});
  next.stamp = st.ctx.stamp();
  if (!f.work.training) st.in_flight.erase(key);
  self->send(st.links.next, std::move(next));
}

void combine_and_dispatch_backward(Self self, const backward_work& msg) {
  auto& st = self->state;
  st.order.check(msg.key, st.ctx.track);
  InFlight& f = st.in_flight.at(msg.key);
  f.carry = msg.carry;
  Tensor grad_rows;
  {
    auto span = st.ctx.span("combine_backward", "compute");
    grad_rows = st.layer->begin_backward(msg.gradient.tensor(), f.x, f.state);
  }
  self->send(st.comm,
             comm_dispatch{msg.key, f.work.micro_batches, true, st.layer_index, true,
                           TensorHandle(grad_rows), f.state.plan.expert_offsets, st.ctx.stamp()});
}

void finish_backward(Self self, const MicroBatchKey& key, const Tensor& grad_rows) {
  auto& st = self->state;
  InFlight& f = st.in_flight.at(key);
  Tensor grad_x;
  {
    auto span = st.ctx.span("unpermute_router_backward", "compute");
    const float grad_l_aux = st.model->aux_loss_coef() * f.work.loss_weight;
    grad_x = st.layer->end_backward(grad_rows, grad_l_aux, f.x, f.state);
  }
  const pipeline_stage_actor previous = f.came_from;
  const TensorHandle carry = f.carry;
  st.in_flight.erase(key);
  self->send(previous, backward_work{key, TensorHandle(grad_x), carry, st.ctx.stamp()});
}

gate_actor::behavior_type gate_behavior(Self self, std::shared_ptr<Model> model, std::int64_t layer,
                                        comm_actor comm, RoutingNoise noise, ActorContext ctx) {
  auto& st = self->state;
  st.layer = &model->moe_layer(layer);
  st.model = std::move(model);
  st.layer_index = layer;
  st.comm = std::move(comm);
  st.noise = noise;
  st.ctx = std::move(ctx);
  st.readiness.set_source(st.ctx.completion);
  return {
      [self](const pipeline_links& links) { self->state.links = links; },
      [self](const forward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "forward_work", msg.key.micro_batch, msg.activation.bytes());
        st.readiness.consume(
            self, {msg.activation},
            // Stages (and the embedding program standing in for them) send forward_work; each
            // accepts backward_work.
            [self, msg, from = caf::actor_cast<pipeline_stage_actor>(self->current_sender())] {
              route_and_dispatch(self, msg, from);
            });
      },
      [self](const backward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "backward_work", msg.key.micro_batch, msg.gradient.bytes());
        st.readiness.consume(self, {msg.gradient},
                             [self, msg] { combine_and_dispatch_backward(self, msg); });
      },
      [self](const comm_combined& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "comm_combined", msg.key.micro_batch, msg.rows.bytes());
        st.readiness.consume(self, {msg.rows}, [self, msg] {
          if (msg.backward) {
            finish_backward(self, msg.key, msg.rows.tensor());
          } else {
            finish_forward(self, msg.key, msg.rows.tensor());
          }
        });
      },
      [self](const handle_ready&) { self->state.readiness.resume(self); },
  };
}

}  // namespace

gate_actor spawn_gate_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                            std::int64_t layer, comm_actor comm, RoutingNoise noise,
                            ActorContext context) {
  return system.spawn(gate_behavior, std::move(model), layer, std::move(comm), noise,
                      std::move(context));
}

}  // namespace troupe
