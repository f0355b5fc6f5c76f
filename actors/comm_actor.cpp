// Comm actor (see comm_actor.hpp).
#include "actors/comm_actor.hpp"

#include <array>
#include <cstring>
#include <map>
#include <tuple>

#include <caf/all.hpp>

#include "actors/readiness_gate.hpp"
#include "comm/expert_exchange.hpp"
#include "comm/local_communicator.hpp"
#include "kernels/ops/reduce.hpp"
#include "models/optimizer_partition.hpp"

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

// A gradient group's collectives in flight (one per buffer: a reduction or a parameter
// all-gather), and what to do once all have finished.
struct GroupCollective {
  std::string what;  // "gradient reduction of step 3", for the error
  std::size_t unfinished = 0;
  std::string error;                          // the first failure
  std::vector<std::function<void()>> finish;  // per part, run once every part succeeded
  std::function<void()> succeeded;            // then this
  std::function<void(caf::error)> failed;     // or this
};

using Continuation = std::function<void(const collective_finished&)>;

struct CommState {
  CommActorSpec spec;
  ActorContext ctx;
  IssueObserver observer;
  ReadinessGate readiness;
  // The round in progress.
  bool training = true;
  std::vector<CollectiveSlot> schedule;
  std::map<SlotKey, Request> requests;
  // Between ranks: each (micro-batch, layer)'s exchange, from its forward dispatch to its last
  // combine; and whether a forward dispatch's counts are still in flight (its rows, and so every
  // later collective, must wait for them: all ranks issue in the same order).
  std::map<std::pair<std::int64_t, std::int64_t>, ExpertExchange> exchanges;
  bool counts_in_flight = false;
  // Token exchanges finish in any order, but their results are handed on in issue order (the
  // schedule's), as in one process: a later micro-batch's combine must not overtake an earlier
  // one's, or the stages downstream would see the micro-batches out of order.
  std::uint64_t exchanges_issued = 0;
  std::uint64_t exchanges_delivered = 0;
  std::map<std::uint64_t, std::function<void()>> finished_exchanges;
  // Collectives in flight: what to do when each finishes, by token.
  std::uint64_t next_token = 0;
  std::map<std::uint64_t, Continuation> continuations;
  std::uint64_t next_group_collective = 0;
  std::map<std::uint64_t, GroupCollective> group_collectives;

  // In one process: each phase's slots (indices into `schedule`) and the next of each to issue.
  std::array<std::vector<std::size_t>, 4> phase_slots;
  std::array<std::size_t, 4> phase_next{};
  std::size_t issued = 0;  // slots of the round issued so far

  bool round_open() const { return issued < schedule.size(); }
  bool in_schedule_order() const { return between_ranks() || spec.schedule_order; }
  bool between_ranks() const { return spec.communicator->size() > 1; }
};

using Self = comm_actor::stateful_pointer<CommState>;

bool is_backward(CollectivePhase p) {
  return p == CollectivePhase::dispatch_backward || p == CollectivePhase::combine_backward;
}

// Runs `then` (on this actor) once `request` finishes; its completion arrives as
// collective_finished from the backend's thread, so no worker waits.
void await(Self self, const CommRequestPtr& request, Continuation then) {
  auto& st = self->state;
  const std::uint64_t token = st.next_token++;
  st.continuations.emplace(token, std::move(then));
  request->on_finish([target = caf::actor_cast<comm_actor>(self), token](const CommRequest& done) {
    caf::anon_send(target, collective_finished{token, done.failed(), done.error()});
  });
}

// A failed token exchange ends the actor: the pipeline fails the step with this reason.
void check_exchange(const CommState& st, const collective_finished& done, const char* what) {
  if (done.failed)
    throw std::runtime_error(st.ctx.track + ": " + what + " failed on " +
                             st.spec.communicator->describe() + ": " + done.error);
}

// The all-to-all of `send` (send_rows[p] rows to peer p) into a fresh buffer (recv_rows[p] from
// peer p), traced as communication from issue to completion; `then` gets the received rows, in
// the order the exchanges were issued.
void exchange_rows(Self self, const char* name, const Tensor& send,
                   const std::vector<std::int64_t>& send_rows,
                   const std::vector<std::int64_t>& recv_rows, std::function<void(Tensor)> then) {
  auto& st = self->state;
  std::int64_t total = 0;
  for (auto n : recv_rows) total += n;
  Shape shape = send.shape();
  shape[0] = total;
  Tensor recv = Tensor::empty(shape, send.dtype());
  const SpanId span =
      st.ctx.tracing() ? st.ctx.recorder->begin_span(st.ctx.track, name, "comm") : no_span;
  const CommRequestPtr request =
      st.spec.communicator->all_to_all_v(send, send_rows, recv, recv_rows);
  const std::uint64_t order = st.exchanges_issued++;
  await(self, request, [self, name, span, recv, then, order](const collective_finished& done) {
    auto& st = self->state;
    if (span != no_span) st.ctx.recorder->end_span(span);
    check_exchange(st, done, name);
    st.finished_exchanges.emplace(order, [then, recv] { then(recv); });
    for (auto next = st.finished_exchanges.find(st.exchanges_delivered);
         next != st.finished_exchanges.end();
         next = st.finished_exchanges.find(st.exchanges_delivered)) {
      const auto deliver = std::move(next->second);
      st.finished_exchanges.erase(next);
      ++st.exchanges_delivered;
      deliver();
    }
  });
}

// Hands each shard of the layer its experts' rows: `rows` is expert-major over the layer's local
// experts, `offsets` their (local experts + 1) offsets.
void send_to_shards(Self self, const CollectiveSlot& slot, const MicroBatchKey& key,
                    const TensorHandle& rows, const std::vector<std::int64_t>& offsets) {
  auto& st = self->state;
  const auto& layer = st.spec.layers.at(static_cast<std::size_t>(slot.layer));
  const Tensor all = rows.tensor();
  for (std::size_t j = 0; j < layer.actors.size(); ++j) {
    const auto& s = layer.specs[j];
    const auto begin = offsets.at(static_cast<std::size_t>(s.first_expert));
    const auto end = offsets.at(static_cast<std::size_t>(s.last_expert));
    TensorHandle slice(all.slice_rows(begin, end), rows.readiness());
    if (is_backward(slot.phase)) {
      self->send(layer.actors[j], expert_backward{key, slice, st.ctx.stamp()});
    } else {
      std::vector<std::int64_t> local;
      for (auto e = s.first_expert; e <= s.last_expert; ++e)
        local.push_back(offsets[static_cast<std::size_t>(e)] - begin);
      self->send(layer.actors[j],
                 expert_forward{key, st.training, slice, std::move(local), st.ctx.stamp()});
    }
  }
}

void pump(Self self);

// Between ranks: the rows of `r` go to the ranks holding their experts, and what arrives goes to
// this rank's shards in the experts' order.
void dispatch_between_ranks(Self self, const CollectiveSlot& slot, const Request& r,
                            const ExpertExchange& x) {
  exchange_rows(self, "all_to_all_dispatch", r.rows.tensor(), x.send_rows, x.recv_rows(),
                [self, slot, key = r.key, x](Tensor arrived) {
                  auto& st = self->state;
                  Tensor rows;
                  {
                    auto span = st.ctx.span("dispatch_permute", "compute");
                    rows = peer_major_to_expert_major(arrived, x);
                  }
                  send_to_shards(self, slot, key, TensorHandle(rows), x.expert_offsets());
                });
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
  if (!st.between_ranks()) {
    send_to_shards(self, slot, r.key, r.rows, r.expert_offsets);
    return;
  }
  const auto exchange_key = std::make_pair(slot.micro_batch, slot.layer);
  if (backward) {
    dispatch_between_ranks(self, slot, r, st.exchanges.at(exchange_key));
    return;
  }
  // Forward: first every rank learns how many rows each peer sends to each of its experts (L
  // counts to each peer), then the rows move. Nothing else is issued in between.
  ExpertExchange x;
  x.peers = st.spec.communicator->size();
  x.local_experts = layer.specs.back().last_expert;
  x.send_rows = rows_per_peer(r.expert_offsets, x.peers);
  const Tensor send_counts = counts_tensor(r.expert_offsets);
  const Tensor recv_counts = Tensor::empty({x.peers * x.local_experts, 1}, DType::i64);
  const std::vector<std::int64_t> per_peer(static_cast<std::size_t>(x.peers), x.local_experts);
  st.counts_in_flight = true;
  await(self, st.spec.communicator->all_to_all_v(send_counts, per_peer, recv_counts, per_peer),
        [self, slot, r, x, exchange_key, recv_counts](const collective_finished& done) mutable {
          auto& st = self->state;
          check_exchange(st, done, "the token counts exchange");
          const auto* counts = recv_counts.data<std::int64_t>();
          x.recv_counts.assign(counts, counts + recv_counts.numel());
          st.exchanges[exchange_key] = x;
          dispatch_between_ranks(self, slot, r, x);
          st.counts_in_flight = false;
          pump(self);
        });
}

void issue_combine(Self self, const CollectiveSlot& slot, Request& r) {
  auto& st = self->state;
  TensorHandle combined;
  if (r.parts.size() == 1) {
    combined = r.parts.front();
  } else {
    // The shards' outputs, in expert order, as one buffer.
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
  const bool backward = is_backward(slot.phase);
  const auto answer = [self, slot, key = r.key, gate = r.gate, backward](TensorHandle rows) {
    self->send(gate,
               comm_combined{key, slot.layer, backward, std::move(rows), self->state.ctx.stamp()});
  };
  if (!st.between_ranks()) {
    answer(combined);
    return;
  }
  // The reverse exchange: every row returns to the rank (and the slot) it came from. The layer's
  // exchange ends with its last combine: the backward one, or the forward one in evaluation.
  const auto exchange_key = std::make_pair(slot.micro_batch, slot.layer);
  const ExpertExchange x = st.exchanges.at(exchange_key);
  if (backward || !st.training) st.exchanges.erase(exchange_key);
  Tensor send;
  {
    auto span = st.ctx.span("combine_permute", "compute");
    send = expert_major_to_peer_major(combined.tensor(), x);
  }
  exchange_rows(self, "all_to_all_combine", send, x.recv_rows(), x.send_rows,
                [answer](Tensor returned) { answer(TensorHandle(returned)); });
}

// Issues `slot` if its request is complete; returns whether it did.
bool issue_if_complete(Self self, const CollectiveSlot& slot) {
  auto& st = self->state;
  auto node = st.requests.find(key_of(slot.micro_batch, slot.layer, slot.phase));
  if (node == st.requests.end() || !node->second.complete) return false;
  Request r = std::move(node->second);
  st.requests.erase(node);
  ++st.issued;
  if (st.observer) st.observer(slot);
  if (slot.phase == CollectivePhase::dispatch_forward ||
      slot.phase == CollectivePhase::dispatch_backward) {
    issue_dispatch(self, slot, r);
  } else {
    issue_combine(self, slot, r);
  }
  return true;
}

// Issues every collective whose turn has come and whose request is complete. Between ranks the
// turn is the schedule's, slot after slot: every rank must issue the same collectives in the same
// order. In one process nothing crosses a rank, so a slot waits only for the earlier slots of its
// own phase: each phase's slots keep the schedule's (micro-batch) order, which is all the stages
// downstream need (backward passes in micro-batch order), but a micro-batch's forward combine no
// longer waits for the next micro-batch's forward dispatch.
void pump(Self self) {
  auto& st = self->state;
  if (st.in_schedule_order()) {
    // Each slot issued advances `issued`, the schedule's next slot.
    while (st.round_open() && !st.counts_in_flight)
      if (!issue_if_complete(self, st.schedule[st.issued])) return;
    return;
  }
  for (std::size_t p = 0; p < st.phase_slots.size(); ++p) {
    const auto& slots = st.phase_slots[p];
    auto& next = st.phase_next[p];
    while (next < slots.size() && issue_if_complete(self, st.schedule[slots[next]])) ++next;
  }
}

void finish_group_part(Self self, std::uint64_t id, const collective_finished& msg) {
  auto& st = self->state;
  auto node = st.group_collectives.find(id);
  auto& c = node->second;
  if (msg.failed && c.error.empty()) c.error = msg.error;
  if (--c.unfinished > 0) return;
  GroupCollective done = std::move(c);
  st.group_collectives.erase(node);
  if (!done.error.empty()) {
    done.failed(caf::make_error(caf::sec::runtime_error,
                                st.ctx.track + ": " + done.what + " failed: " + done.error));
    return;
  }
  for (auto& f : done.finish) f();
  done.succeeded();
}

// One collective of a group collective: its request, and what to do with its result once every
// part has succeeded.
struct GroupPart {
  CommRequestPtr request;
  std::function<void()> finish;
};

// Waits for `parts` as one group collective.
void start_group_collective(Self self, GroupCollective c, std::vector<GroupPart> parts) {
  auto& st = self->state;
  const std::uint64_t id = st.next_group_collective++;
  c.unfinished = parts.size();
  for (auto& part : parts) c.finish.push_back(std::move(part.finish));
  st.group_collectives.emplace(id, std::move(c));
  for (const auto& part : parts)
    await(self, part.request,
          [self, id](const collective_finished& done) { finish_group_part(self, id, done); });
}

// A copy of the flat f32 `buffer` zero-padded to `numel` elements (a collective's equal chunks).
Tensor padded_copy(const Tensor& buffer, std::int64_t numel) {
  Tensor out = Tensor::empty({numel});
  if (buffer.numel() > 0) out.slice_rows(0, buffer.numel()).copy_from(buffer);
  if (numel > buffer.numel()) out.slice_rows(buffer.numel(), numel).fill(0.0f);
  return out;
}

void check_flat(const CommState& st, const Tensor& buffer, const char* what) {
  if (buffer.dim() != 1 || buffer.dtype() != DType::f32)
    throw std::invalid_argument(st.ctx.track + ": " + what + " needs flat f32 buffers, got " +
                                shape_string(buffer.shape()));
}

// Sums each buffer of `msg` over the group in rank order: an all_reduce of the whole buffer, or
// with `scatter` a reduce-scatter into this rank's range (the rest cleared); then the scale.
void start_reduction(Self self, const reduce_gradients& msg,
                     caf::typed_response_promise<gradients_reduced> promise) {
  auto& st = self->state;
  if (msg.buffers.empty()) {
    promise.deliver(gradients_reduced{msg.step});
    return;
  }
  const auto& comm = st.spec.communicator;
  const RankShard shard{comm->rank(), comm->size()};
  GroupCollective c;
  c.what = "gradient reduction of step " + std::to_string(msg.step);
  c.succeeded = [promise, step = msg.step]() mutable { promise.deliver(gradients_reduced{step}); };
  c.failed = [promise](caf::error err) mutable { promise.deliver(std::move(err)); };
  // A group of one moves no bytes: only a real exchange is traced as communication.
  auto traced = st.ctx.span(msg.scatter ? "reduce_scatter_gradients" : "all_reduce_gradients",
                            st.between_ranks() ? "comm" : "compute");
  std::vector<GroupPart> parts;
  for (const auto& handle : msg.buffers) {
    const Tensor buffer = handle.tensor();
    const float scale = msg.scale;
    if (!msg.scatter) {
      parts.push_back({comm->all_reduce(buffer), [buffer, scale] {
                         if (scale != 1.0f) ops::scale(cpu_context(), buffer, scale);
                       }});
      continue;
    }
    check_flat(st, buffer, "a reduce-scatter of gradients");
    const std::int64_t span = rank_span(buffer.numel(), shard.size);
    const Tensor send = padded_copy(buffer, span * shard.size);
    Tensor cleared = buffer;  // what is not this rank's range starts the next step at zero
    cleared.fill(0.0f);
    const Tensor recv = Tensor::empty({span});
    parts.push_back({comm->reduce_scatter(send, recv), [buffer, recv, scale, shard] {
                       const auto [first, last] = rank_range(buffer.numel(), shard);
                       if (first == last) return;
                       Tensor range = buffer.slice_rows(first, last);
                       range.copy_from(recv.slice_rows(0, last - first));
                       if (scale != 1.0f) ops::scale(cpu_context(), range, scale);
                     }});
  }
  start_group_collective(self, std::move(c), std::move(parts));
}

// All-gathers every rank's range of each flat value buffer into every rank's buffer.
void start_parameter_gather(Self self, const gather_parameters& msg,
                            caf::typed_response_promise<parameters_gathered> promise) {
  auto& st = self->state;
  const auto& comm = st.spec.communicator;
  const RankShard shard{comm->rank(), comm->size()};
  GroupCollective c;
  c.what = "parameter all-gather of step " + std::to_string(msg.step);
  c.succeeded = [promise, step = msg.step]() mutable {
    promise.deliver(parameters_gathered{step});
  };
  c.failed = [promise](caf::error err) mutable { promise.deliver(std::move(err)); };
  auto traced = st.ctx.span("all_gather_parameters", st.between_ranks() ? "comm" : "compute");
  std::vector<GroupPart> parts;
  for (const auto& handle : msg.buffers) {
    const Tensor buffer = handle.tensor();
    check_flat(st, buffer, "a parameter all-gather");
    const std::int64_t span = rank_span(buffer.numel(), shard.size);
    const auto [first, last] = rank_range(buffer.numel(), shard);
    const Tensor send = padded_copy(buffer.slice_rows(first, last), span);
    const Tensor recv = Tensor::empty({span * shard.size});
    // The other ranks' ranges only: this rank's is what its optimizer partitions just wrote.
    const std::int64_t own_first = first, own_last = last;
    parts.push_back({comm->all_gather(send, recv), [buffer, recv, own_first, own_last] {
                       const auto copy = [&](std::int64_t from, std::int64_t to) {
                         if (from == to) return;
                         Tensor others = buffer.slice_rows(from, to);
                         others.copy_from(recv.slice_rows(from, to));
                       };
                       copy(0, own_first);
                       copy(own_last, buffer.numel());
                     }});
  }
  start_group_collective(self, std::move(c), std::move(parts));
}

// All-gathers every rank's values (as their bytes: the sum is the caller's, in rank order).
void start_value_gather(Self self, const gather_values& msg,
                        caf::typed_response_promise<values_gathered> promise) {
  auto& st = self->state;
  const auto n = static_cast<std::int64_t>(msg.values.size());
  Tensor send = Tensor::empty({n}, DType::i64);
  std::memcpy(send.raw_data(), msg.values.data(), send.nbytes());
  Tensor recv = Tensor::empty({n * st.spec.communicator->size()}, DType::i64);
  await(self, st.spec.communicator->all_gather(send, recv),
        [self, send, recv, n, promise, step = msg.step](const collective_finished& done) mutable {
          auto& st = self->state;
          if (done.failed) {
            promise.deliver(caf::make_error(
                caf::sec::runtime_error, st.ctx.track + ": gathering the gradient norms of step " +
                                             std::to_string(step) + " failed: " + done.error));
            return;
          }
          values_gathered out;
          out.values.resize(static_cast<std::size_t>(recv.numel()));
          std::memcpy(out.values.data(), recv.raw_data(), recv.nbytes());
          promise.deliver(std::move(out));
        });
}

void finish_collective(Self self, const collective_finished& msg) {
  auto& st = self->state;
  auto node = st.continuations.find(msg.token);
  if (node == st.continuations.end())
    throw std::logic_error(st.ctx.track + ": completion of unknown collective " +
                           std::to_string(msg.token));
  Continuation then = std::move(node->second);
  st.continuations.erase(node);
  then(msg);
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
          st.issued = 0;
          for (auto& slots : st.phase_slots) slots.clear();
          st.phase_next.fill(0);
          for (std::size_t i = 0; i < st.schedule.size(); ++i)
            st.phase_slots[static_cast<std::size_t>(st.schedule[i].phase)].push_back(i);
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
      [self](const gather_parameters& msg) -> caf::typed_response_promise<parameters_gathered> {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "gather_parameters", -1, 0);
        auto promise = self->make_response_promise<parameters_gathered>();
        // The buffers hold this rank's updated range once the optimizer step is done.
        st.readiness.consume(self, msg.buffers,
                             [self, msg, promise] { start_parameter_gather(self, msg, promise); });
        return promise;
      },
      [self](const gather_values& msg) -> caf::typed_response_promise<values_gathered> {
        auto promise = self->make_response_promise<values_gathered>();
        start_value_gather(self, msg, promise);
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
