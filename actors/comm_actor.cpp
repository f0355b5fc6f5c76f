// Comm actor (see comm_actor.hpp).
#include "actors/comm_actor.hpp"

#include <cstring>
#include <map>
#include <tuple>

#include <caf/all.hpp>

#include "actors/readiness_gate.hpp"
#include "comm/local_communicator.hpp"
#include "kernels/ops/reduce.hpp"

namespace troupe {
namespace {

using SlotKey = std::tuple<std::int64_t, std::int64_t, int>;  // micro-batch, layer, phase

SlotKey key_of(std::int64_t micro_batch, std::int64_t layer, CollectivePhase phase) {
  return {micro_batch, layer, static_cast<int>(phase)};
}

// A dispatch waiting for its turn, or a combine whose parts are being collected.
struct Request {
  MicroBatchKey key;
  comm_combined_actor gate;
  TensorHandle rows;                         // dispatch: the gate's expert-major rows
  std::vector<std::int64_t> expert_offsets;  // dispatch
  std::vector<TensorHandle> parts;           // combine: one per shard
  std::int64_t parts_missing = 0;
  bool complete = false;  // may be issued when the schedule reaches it
};

// A gradient reduction in flight: its collectives by token, and whom to answer.
struct Reduction {
  caf::typed_response_promise<gradients_reduced> promise;
  std::int64_t step = 0;
  std::vector<TensorHandle> buffers;
  float scale = 1.0f;
  std::size_t unfinished = 0;
  std::string error;  // the first failure
};

struct CommState {
  CommActorSpec spec;
  ActorContext ctx;
  IssueObserver observer;
  ReadinessGate readiness;
  // The round in progress.
  bool training = true;
  std::vector<CollectiveSlot> schedule;
  std::size_t next = 0;
  std::map<SlotKey, Request> requests;
  // Gradient reductions: collective token → reduction id; reductions by id.
  std::uint64_t next_token = 0;
  std::map<std::uint64_t, std::uint64_t> reduction_of_token;
  std::map<std::uint64_t, Reduction> reductions;

  bool round_open() const { return next < schedule.size(); }
};

using Self = comm_actor::stateful_pointer<CommState>;

bool is_backward(CollectivePhase p) {
  return p == CollectivePhase::dispatch_backward || p == CollectivePhase::combine_backward;
}

void issue_dispatch(Self self, const CollectiveSlot& slot, Request& r) {
  auto& st = self->state;
  const auto& layer = st.spec.layers.at(static_cast<std::size_t>(slot.layer));
  const bool backward = is_backward(slot.phase);
  // The combine answering this dispatch collects one part per shard.
  auto& combine = st.requests[key_of(
      slot.micro_batch, slot.layer,
      backward ? CollectivePhase::combine_backward : CollectivePhase::combine_forward)];
  combine.key = r.key;
  combine.gate = r.gate;
  combine.parts.assign(layer.actors.size(), TensorHandle());
  combine.parts_missing = static_cast<std::int64_t>(layer.actors.size());
  const Tensor rows = r.rows.tensor();
  for (std::size_t j = 0; j < layer.actors.size(); ++j) {
    const auto& s = layer.specs[j];
    const auto begin = r.expert_offsets.at(static_cast<std::size_t>(s.first_expert));
    const auto end = r.expert_offsets.at(static_cast<std::size_t>(s.last_expert));
    TensorHandle slice(rows.slice_rows(begin, end), r.rows.readiness());
    if (backward) {
      self->send(layer.actors[j], expert_backward{r.key, slice, st.ctx.stamp()});
    } else {
      std::vector<std::int64_t> offsets;
      for (auto e = s.first_expert; e <= s.last_expert; ++e)
        offsets.push_back(r.expert_offsets[static_cast<std::size_t>(e)] - begin);
      self->send(layer.actors[j],
                 expert_forward{r.key, st.training, slice, std::move(offsets), st.ctx.stamp()});
    }
  }
}

void issue_combine(Self self, const CollectiveSlot& slot, Request& r) {
  auto& st = self->state;
  TensorHandle combined;
  if (r.parts.size() == 1) {
    combined = r.parts.front();
  } else {
    // The local reverse exchange: the shards' outputs, in expert order, as one buffer.
    auto span = st.ctx.span(is_backward(slot.phase) ? "combine_backward_gather" : "combine_gather",
                            "compute");
    std::int64_t rows = 0, width = 0;
    for (const auto& p : r.parts) {
      rows += p.tensor().size(0);
      width = p.tensor().size(1);
    }
    Tensor out = Tensor::empty({rows, width});
    auto* dst = static_cast<char*>(out.raw_data());
    for (const auto& p : r.parts) {
      std::memcpy(dst, p.tensor().raw_data(), p.tensor().nbytes());
      dst += p.tensor().nbytes();
    }
    combined = TensorHandle(out);
  }
  self->send(r.gate,
             comm_combined{r.key, slot.layer, is_backward(slot.phase), combined, st.ctx.stamp()});
}

// Issues every collective whose turn has come and whose request is complete.
void pump(Self self) {
  auto& st = self->state;
  while (st.round_open()) {
    const CollectiveSlot slot = st.schedule[st.next];
    auto node = st.requests.find(key_of(slot.micro_batch, slot.layer, slot.phase));
    if (node == st.requests.end() || !node->second.complete) return;
    Request r = std::move(node->second);
    st.requests.erase(node);
    ++st.next;
    if (st.observer) st.observer(slot);
    if (slot.phase == CollectivePhase::dispatch_forward ||
        slot.phase == CollectivePhase::dispatch_backward) {
      issue_dispatch(self, slot, r);
    } else {
      issue_combine(self, slot, r);
    }
  }
}

// Issues one all_reduce per buffer of `msg` on the group's communicator; each request's completion
// comes back as collective_finished from the backend's thread.
void start_reduction(Self self, const reduce_gradients& msg,
                     caf::typed_response_promise<gradients_reduced> promise) {
  auto& st = self->state;
  const std::uint64_t id = st.next_token;
  auto& r = st.reductions[id];
  r.promise = std::move(promise);
  r.step = msg.step;
  r.buffers = msg.buffers;
  r.scale = msg.scale;
  r.unfinished = msg.buffers.size();
  if (msg.buffers.empty()) {
    r.promise.deliver(gradients_reduced{msg.step});
    st.reductions.erase(id);
    return;
  }
  // A group of one moves no bytes: only a real exchange is traced as communication.
  auto span =
      st.ctx.span("all_reduce_gradients", st.spec.communicator->size() > 1 ? "comm" : "compute");
  for (const auto& buffer : msg.buffers) {
    const std::uint64_t token = st.next_token++;
    st.reduction_of_token[token] = id;
    const CommRequestPtr request = st.spec.communicator->all_reduce(buffer.tensor());
    request->on_finish(
        [target = caf::actor_cast<comm_actor>(self), token](const CommRequest& done) {
          caf::anon_send(target, collective_finished{token, done.failed(), done.error()});
        });
  }
}

void finish_collective(Self self, const collective_finished& msg) {
  auto& st = self->state;
  auto token = st.reduction_of_token.find(msg.token);
  if (token == st.reduction_of_token.end())
    throw std::logic_error(st.ctx.track + ": completion of unknown collective " +
                           std::to_string(msg.token));
  const std::uint64_t id = token->second;
  st.reduction_of_token.erase(token);
  auto& r = st.reductions.at(id);
  if (msg.failed && r.error.empty()) r.error = msg.error;
  if (--r.unfinished > 0) return;
  if (!r.error.empty()) {
    r.promise.deliver(caf::make_error(caf::sec::runtime_error,
                                      st.ctx.track + ": gradient reduction of step " +
                                          std::to_string(r.step) + " failed: " + r.error));
  } else {
    if (r.scale != 1.0f)
      for (const auto& buffer : r.buffers) ops::scale(cpu_context(), buffer.tensor(), r.scale);
    r.promise.deliver(gradients_reduced{r.step});
  }
  st.reductions.erase(id);
}

comm_actor::behavior_type comm_behavior(Self self, CommActorSpec spec, ActorContext ctx,
                                        IssueObserver observer) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.ctx = std::move(ctx);
  st.observer = std::move(observer);
  if (!st.spec.communicator) st.spec.communicator = std::make_shared<LocalCommunicator>();
  st.readiness.set_source(st.ctx.completion);
  return {
      [self](const comm_dispatch& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "comm_dispatch", msg.key.micro_batch, msg.rows.bytes());
        if (msg.layer < 0 || msg.layer >= static_cast<std::int64_t>(st.spec.layers.size()))
          throw std::logic_error(st.ctx.track + ": dispatch for unknown MoE layer " +
                                 std::to_string(msg.layer));
        if (!st.round_open()) {
          if (!st.requests.empty())
            throw std::logic_error(st.ctx.track + ": a new round began with requests pending");
          st.training = msg.training;
          st.schedule =
              collective_schedule({msg.micro_batches, st.spec.pipeline_depth,
                                   static_cast<std::int64_t>(st.spec.layers.size()), msg.training});
          st.next = 0;
        }
        const auto phase =
            msg.backward ? CollectivePhase::dispatch_backward : CollectivePhase::dispatch_forward;
        auto& r = st.requests[key_of(msg.key.micro_batch, msg.layer, phase)];
        r.key = msg.key;
        // Only gates send comm_dispatch, and a gate accepts comm_combined.
        r.gate = caf::actor_cast<comm_combined_actor>(self->current_sender());
        r.rows = msg.rows;
        r.expert_offsets = msg.expert_offsets;
        r.complete = true;
        pump(self);
      },
      [self](const expert_output& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "expert_output", msg.key.micro_batch, msg.rows.bytes());
        st.readiness.consume(self, {msg.rows}, [self, msg] {
          auto& st = self->state;
          const auto phase =
              msg.backward ? CollectivePhase::combine_backward : CollectivePhase::combine_forward;
          auto node = st.requests.find(key_of(msg.key.micro_batch, msg.layer, phase));
          const auto j = static_cast<std::size_t>(msg.shard);
          if (node == st.requests.end() || j >= node->second.parts.size() ||
              node->second.parts[j].valid())
            throw std::logic_error(st.ctx.track + ": unexpected expert output from shard " +
                                   std::to_string(msg.shard) + " of layer " +
                                   std::to_string(msg.layer) + " for micro-batch " +
                                   std::to_string(msg.key.micro_batch));
          auto& r = node->second;
          r.parts[j] = msg.rows;
          if (--r.parts_missing == 0) r.complete = true;
          pump(self);
        });
      },
      [self](const reduce_gradients& msg) -> caf::typed_response_promise<gradients_reduced> {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "reduce_gradients", -1, 0);
        auto promise = self->make_response_promise<gradients_reduced>();
        // The buffers are the step's finished gradients; the collective may start once they are.
        st.readiness.consume(self, msg.buffers,
                             [self, msg, promise] { start_reduction(self, msg, promise); });
        return promise;
      },
      [self](const collective_finished& msg) { finish_collective(self, msg); },
      [self](const handle_ready&) { self->state.readiness.resume(self); },
  };
}

}  // namespace

comm_actor spawn_comm_actor(caf::actor_system& system, CommActorSpec spec, ActorContext context,
                            IssueObserver observer) {
  return system.spawn(comm_behavior, std::move(spec), std::move(context), std::move(observer));
}

}  // namespace troupe
