// Optimizer partition actor (see optimizer_partition_actor.hpp).
#include "actors/optimizer_partition_actor.hpp"

#include <stdexcept>

#include <caf/all.hpp>

#include "actors/readiness_gate.hpp"

namespace troupe {

optimizer_state partition_state(OptimizerPartition& partition) {
  return optimizer_state{{"exp_avg", "exp_avg_sq"},
                         {TensorHandle(partition.exp_avg()), TensorHandle(partition.exp_avg_sq())},
                         partition.expert_group(),
                         partition.group_begin()};
}

void restore_partition_state(OptimizerPartition& partition, const set_optimizer_state& state) {
  if (state.names.size() != state.tensors.size())
    throw std::invalid_argument("optimizer state: names and tensors differ in count");
  for (std::size_t i = 0; i < state.names.size(); ++i) {
    const Tensor& source = state.tensors[i].tensor();
    if (state.names[i] == "exp_avg")
      partition.exp_avg().copy_from(source);
    else if (state.names[i] == "exp_avg_sq")
      partition.exp_avg_sq().copy_from(source);
    else
      throw std::invalid_argument("optimizer state: unknown tensor '" + state.names[i] + "'");
  }
}

namespace {

struct PartitionActorState {
  std::shared_ptr<OptimizerPartition> partition;
  AdamParams hp;
  offload_manager_actor offload;
  ActorContext ctx;
  ReadinessGate readiness;
};

using Self = optimizer_partition_actor::stateful_pointer<PartitionActorState>;

// The one gradient handle a message must bring: this partition's range of its group's buffer.
const TensorHandle& gradient_of(const std::vector<TensorHandle>& gradients,
                                const OptimizerPartition& partition) {
  if (gradients.size() != 1 || !gradients.front().valid())
    throw std::invalid_argument("optimizer partition " + std::to_string(partition.index()) +
                                ": expected one gradient handle, got " +
                                std::to_string(gradients.size()));
  return gradients.front();
}

// Forwards a request to the offload manager and answers the original sender with its reply.
template <class Reply, class... Ts>
caf::response_promise relay(Self self, const offload_manager_actor& to, Ts&&... xs) {
  auto promise = self->make_response_promise();
  if constexpr (std::is_void_v<Reply>) {
    self->request(to, caf::infinite, std::forward<Ts>(xs)...)
        .then([promise]() mutable { promise.deliver(caf::unit); },
              [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
  } else {
    self->request(to, caf::infinite, std::forward<Ts>(xs)...)
        .then([promise](Reply& reply) mutable { promise.deliver(std::move(reply)); },
              [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
  }
  return promise;
}

optimizer_partition_actor::behavior_type partition_behavior(
    Self self, std::shared_ptr<OptimizerPartition> partition, AdamParams hp,
    offload_manager_actor offload, ActorContext ctx) {
  auto& st = self->state;
  st.partition = std::move(partition);
  st.hp = hp;
  st.offload = std::move(offload);
  st.ctx = std::move(ctx);
  st.readiness.set_source(st.ctx.completion);
  return {
      [self](const gradient_bucket& msg) -> caf::result<grad_norm_reply> {
        auto& st = self->state;
        const TensorHandle& grads = gradient_of(msg.gradients, *st.partition);
        st.ctx.received(msg.stamp, "gradient_bucket", -1, grads.bytes());
        auto promise = self->make_response_promise<grad_norm_reply>();
        st.readiness.consume(self, {grads}, [self, grads, promise]() mutable {
          auto& st = self->state;
          auto span = st.ctx.span("grad_norm", "optimizer");
          promise.deliver(grad_norm_reply{st.partition->index(),
                                          st.partition->chunk_squared_norms(grads.tensor())});
        });
        return promise;
      },
      [self](const optimizer_step& msg) -> caf::result<optimizer_done> {
        auto& st = self->state;
        const TensorHandle& grads = gradient_of(msg.gradients, *st.partition);
        st.ctx.received(msg.stamp, "optimizer_step", -1, grads.bytes());
        auto promise = self->make_response_promise<optimizer_done>();
        if (st.offload) {
          // The offload manager reads the gradients only once they are ready here.
          st.readiness.consume(self, {grads}, [self, msg, grads, promise]() mutable {
            auto& st = self->state;
            self->request(st.offload, caf::infinite,
                          offload_step{st.partition->index(), grads, msg.step, msg.lr,
                                       msg.grad_scale, st.ctx.stamp()})
                .then([promise](optimizer_done& d) mutable { promise.deliver(std::move(d)); },
                      [promise](caf::error& e) mutable { promise.deliver(std::move(e)); });
          });
          return promise;
        }
        st.readiness.consume(self, {grads}, [self, msg, grads, promise]() mutable {
          auto& st = self->state;
          auto span = st.ctx.span("adam", "optimizer");
          auto norms = st.partition->chunk_squared_norms(grads.tensor());
          AdamParams step_hp = st.hp;
          step_hp.lr = msg.lr;
          st.partition->apply(step_hp, msg.step, msg.grad_scale, grads.tensor());
          promise.deliver(optimizer_done{st.partition->index(), msg.step, std::move(norms)});
        });
        return promise;
      },
      [self](get_optimizer_state) -> caf::result<optimizer_state> {
        auto& st = self->state;
        if (st.offload)
          return relay<optimizer_state>(self, st.offload, get_optimizer_state{},
                                        st.partition->index());
        return partition_state(*st.partition);
      },
      [self](const set_optimizer_state& msg) -> caf::result<void> {
        auto& st = self->state;
        if (st.offload) return relay<void>(self, st.offload, msg, st.partition->index());
        restore_partition_state(*st.partition, msg);
        return caf::unit;
      },
      [self](const handle_ready&) { self->state.readiness.resume(self); },
  };
}

}  // namespace

optimizer_partition_actor spawn_optimizer_partition_actor(
    caf::actor_system& system, std::shared_ptr<OptimizerPartition> partition,
    AdamParams hyperparameters, offload_manager_actor offload_manager, ActorContext context) {
  return system.spawn(partition_behavior, std::move(partition), hyperparameters,
                      std::move(offload_manager), std::move(context));
}

}  // namespace troupe
