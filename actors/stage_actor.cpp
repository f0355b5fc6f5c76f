// Dense stage actor (see stage_actor.hpp).
#include "actors/stage_actor.hpp"

#include <map>
#include <string>

#include <caf/all.hpp>

#include "actors/backward_order.hpp"
#include "actors/readiness_gate.hpp"

namespace troupe {
namespace {

struct StageState {
  std::shared_ptr<Model> model;
  std::int64_t segment = 0;
  ActorContext ctx;
  pipeline_links links;
  struct InFlight {
    Batch batch;
    std::shared_ptr<SegmentCache> cache;
    float loss_weight = 1.0f;
  };
  std::map<MicroBatchKey, InFlight> in_flight;
  BackwardOrder order;
  ReadinessGate readiness;

  bool is_last() const { return segment == model->num_moe_layers(); }
};

Tensor scalar(float value) {
  return Tensor::from_vector({value}, {1});
}

void run_backward(caf::event_based_actor* self, StageState& st, const MicroBatchKey& key,
                  const Tensor& gradient) {
  st.order.check(key, st.ctx.track);
  auto node = st.in_flight.find(key);
  if (node == st.in_flight.end())
    throw std::logic_error(st.ctx.track + ": backward for unknown micro-batch " +
                           std::to_string(key.micro_batch));
  Tensor grad_input;
  {
    auto span = st.ctx.span("segment_backward", "compute");
    grad_input =
        st.model->backward_segment(st.segment, node->second.batch, gradient, *node->second.cache);
  }
  st.in_flight.erase(node);
  if (st.segment == 0) {
    self->send(st.links.scheduler, micro_batch_done{key, st.ctx.stamp()});
  } else {
    self->send(st.links.previous, backward_work{key, TensorHandle(grad_input), st.ctx.stamp()});
  }
}

void run_forward(caf::event_based_actor* self, StageState& st, const forward_work& msg) {
  auto& entry = st.in_flight[msg.key];
  entry.batch = Batch{msg.inputs.tensor(), msg.targets.tensor()};
  entry.cache =
      msg.cache.cache ? msg.cache.cache : std::shared_ptr<SegmentCache>(st.model->make_cache());
  entry.loss_weight = msg.loss_weight;
  Tensor moe_output = msg.activation.valid() ? msg.activation.tensor() : Tensor();
  Tensor out;
  {
    auto span = st.ctx.span("segment_forward", "compute");
    out =
        st.model->forward_segment(st.segment, entry.batch, moe_output, *entry.cache, msg.training);
  }
  if (!st.is_last()) {
    forward_work next = msg;
    next.activation = TensorHandle(out);
    next.cache.cache = entry.cache;
    next.stamp = st.ctx.stamp();
    if (!msg.training) st.in_flight.erase(msg.key);
    self->send(st.links.next, std::move(next));
    return;
  }
  const LossResult loss = st.model->loss(*entry.cache);
  self->send(st.links.scheduler,
             loss_report{msg.key, loss.loss, loss.correct, loss.count, msg.stats, st.ctx.stamp()});
  if (msg.training) {
    run_backward(self, st, msg.key, scalar(entry.loss_weight));
  } else {
    st.in_flight.erase(msg.key);
  }
}

caf::behavior stage_behavior(caf::stateful_actor<StageState>* self, std::shared_ptr<Model> model,
                             std::int64_t segment, ActorContext ctx) {
  auto& st = self->state;
  st.model = std::move(model);
  st.segment = segment;
  st.ctx = std::move(ctx);
  st.readiness.set_source(st.ctx.completion);
  return {
      [self](const pipeline_links& links) { self->state.links = links; },
      [self](const forward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "forward_work", msg.key.micro_batch, msg.activation.bytes());
        st.readiness.consume(self, {msg.inputs, msg.targets, msg.activation},
                             [self, msg] { run_forward(self, self->state, msg); });
      },
      [self](const backward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "backward_work", msg.key.micro_batch, msg.gradient.bytes());
        st.readiness.consume(self, {msg.gradient}, [self, msg] {
          run_backward(self, self->state, msg.key, msg.gradient.tensor());
        });
      },
      [self](const handle_ready&) { self->state.readiness.resume(self); },
  };
}

}  // namespace

caf::actor spawn_stage_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                             std::int64_t segment, ActorContext context) {
  return system.spawn(stage_behavior, std::move(model), segment, std::move(context));
}

}  // namespace troupe
