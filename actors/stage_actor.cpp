// Dense stage actor (see stage_actor.hpp).
#include "actors/stage_actor.hpp"

#include <map>
#include <string>

#include <caf/all.hpp>

#include "actors/backward_order.hpp"
#include "actors/readiness_gate.hpp"
#include "models/segment_gradients.hpp"

namespace troupe {
namespace {

struct StageState {
  std::shared_ptr<Model> model;  // a replica's own instance (shared values, own gradients)
  std::int64_t segment = 0;
  StageReplica replica;
  ActorContext ctx;
  pipeline_links links;
  struct InFlight {
    Batch batch;
    std::unique_ptr<SegmentCache> cache;  // this stage's own
    float loss_weight = 1.0f;
  };
  std::map<MicroBatchKey, InFlight> in_flight;
  BackwardOrder order;
  ReadinessGate readiness;
  // The owner's gradient accumulation: per-micro-batch gradients waiting for their turn, and the
  // micro-batch whose turn it is.
  std::map<MicroBatchKey, std::vector<Tensor>> waiting;
  MicroBatchKey next_to_add{-1, 0};

  bool is_last() const { return segment == model->num_moe_layers(); }
  bool is_owner() const { return !replica.owner; }
};

Tensor scalar(float value) {
  return Tensor::from_vector({value}, {1});
}

// The owner adds each micro-batch's segment gradients into the parameters' gradients in
// micro-batch order (models/segment_gradients.hpp), then lets the micro-batch finish.
void add_in_order(stage_actor::pointer self, StageState& st, const MicroBatchKey& key,
                  std::vector<Tensor> grads, const Tensor& grad_input, const Tensor& carry) {
  if (key.step != st.next_to_add.step) {
    if (!st.waiting.empty())
      throw std::logic_error(st.ctx.track + ": step " + std::to_string(key.step) +
                             " began with gradients of the last step not added");
    st.next_to_add = MicroBatchKey{key.step, 0};
  }
  st.waiting.emplace(key, std::move(grads));
  for (auto node = st.waiting.find(st.next_to_add); node != st.waiting.end();
       node = st.waiting.find(st.next_to_add)) {
    {
      auto span = st.ctx.span("add_segment_gradients", "compute");
      add_segment_gradients(*st.model, st.segment, node->second);
    }
    const MicroBatchKey done = node->first;
    st.waiting.erase(node);
    ++st.next_to_add.micro_batch;
    if (st.segment == 0) {
      self->send(st.links.scheduler, micro_batch_done{done, st.ctx.stamp()});
    } else {
      // Only segment 0 is replicated, so here `done` is the micro-batch just computed.
      self->send(st.links.previous, backward_work{done, TensorHandle(grad_input),
                                                  TensorHandle(carry), st.ctx.stamp()});
    }
  }
}

void run_backward(stage_actor::pointer self, StageState& st, const MicroBatchKey& key,
                  const Tensor& gradient, const Tensor& carry_in) {
  if (st.replica.replicas == 1) st.order.check(key, st.ctx.track);
  auto node = st.in_flight.find(key);
  if (node == st.in_flight.end())
    throw std::logic_error(st.ctx.track + ": backward for unknown micro-batch " +
                           std::to_string(key.micro_batch));
  Tensor grad_input, carry_out;
  std::vector<Tensor> grads;
  {
    auto span = st.ctx.span("segment_backward", "compute");
    SegmentCache& cache = *node->second.cache;
    if (carry_in.defined()) st.model->accept_backward_carry(st.segment, cache, carry_in);
    grad_input =
        backward_segment_apart(*st.model, st.segment, node->second.batch, gradient, cache, grads);
    carry_out = st.model->backward_carry(st.segment, cache);
  }
  st.in_flight.erase(node);
  if (st.is_owner()) {
    add_in_order(self, st, key, std::move(grads), grad_input, carry_out);
  } else {
    std::vector<TensorHandle> handles(grads.begin(), grads.end());
    self->send(st.replica.owner, segment_gradients{key, std::move(handles), st.ctx.stamp()});
  }
}

void run_forward(stage_actor::pointer self, StageState& st, const forward_work& msg) {
  auto& entry = st.in_flight[msg.key];
  entry.batch = Batch{msg.inputs.tensor(), msg.targets.tensor()};
  entry.cache = st.model->make_cache();  // private: what crosses stages travels as `carry`
  entry.loss_weight = msg.loss_weight;
  Tensor moe_output = msg.activation.valid() ? msg.activation.tensor() : Tensor();
  Tensor out;
  {
    auto span = st.ctx.span("segment_forward", "compute");
    if (msg.carry.valid())
      st.model->accept_forward_carry(st.segment, *entry.cache, msg.carry.tensor());
    out =
        st.model->forward_segment(st.segment, entry.batch, moe_output, *entry.cache, msg.training);
  }
  if (!st.is_last()) {
    forward_work next = msg;
    next.activation = TensorHandle(out);
    next.carry = TensorHandle(st.model->forward_carry(st.segment, *entry.cache));
    next.stamp = st.ctx.stamp();
    if (!msg.training) st.in_flight.erase(msg.key);
    self->send(st.links.next, std::move(next));
    return;
  }
  const LossResult loss = st.model->loss(*entry.cache);
  self->send(st.links.scheduler,
             loss_report{msg.key, loss.loss, loss.correct, loss.count, msg.stats, st.ctx.stamp()});
  if (msg.training) {
    run_backward(self, st, msg.key, scalar(entry.loss_weight), Tensor());
  } else {
    st.in_flight.erase(msg.key);
  }
}

stage_actor::behavior_type stage_behavior(stage_actor::stateful_pointer<StageState> self,
                                          std::shared_ptr<Model> model, std::int64_t segment,
                                          StageReplica replica, ActorContext ctx) {
  auto& st = self->state;
  st.model = std::move(model);
  st.segment = segment;
  st.replica = std::move(replica);
  st.ctx = std::move(ctx);
  st.readiness.set_source(st.ctx.completion);
  return {
      [self](const pipeline_links& links) { self->state.links = links; },
      [self](const forward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "forward_work", msg.key.micro_batch, msg.activation.bytes());
        st.readiness.consume(self, {msg.inputs, msg.targets, msg.activation, msg.carry},
                             [self, msg] { run_forward(self, self->state, msg); });
      },
      [self](const backward_work& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "backward_work", msg.key.micro_batch, msg.gradient.bytes());
        st.readiness.consume(self, {msg.gradient, msg.carry}, [self, msg] {
          run_backward(self, self->state, msg.key, msg.gradient.tensor(),
                       msg.carry.valid() ? msg.carry.tensor() : Tensor());
        });
      },
      [self](const segment_gradients& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "segment_gradients", msg.key.micro_batch, 0);
        std::vector<TensorHandle> inputs = msg.gradients;
        st.readiness.consume(self, std::move(inputs), [self, msg] {
          std::vector<Tensor> grads;
          for (const auto& h : msg.gradients) grads.push_back(h.tensor());
          add_in_order(self, self->state, msg.key, std::move(grads), Tensor(), Tensor());
        });
      },
      [self](const handle_ready&) { self->state.readiness.resume(self); },
  };
}

}  // namespace

stage_actor spawn_stage_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                              std::int64_t segment, ActorContext context, StageReplica replica) {
  return system.spawn(stage_behavior, std::move(model), segment, std::move(replica),
                      std::move(context));
}

}  // namespace troupe
