// Optimizer partition actor (see optimizer_partition_actor.hpp).
#include "actors/optimizer_partition_actor.hpp"

#include <stdexcept>

#include <caf/all.hpp>

namespace troupe {

optimizer_state partition_state(OptimizerPartition& partition) {
  return optimizer_state{{"exp_avg", "exp_avg_sq"},
                         {TensorHandle(partition.exp_avg()), TensorHandle(partition.exp_avg_sq())}};
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

// Forwards a request to the offload manager and answers the original sender with its reply.
template <class Reply, class... Ts>
caf::response_promise relay(caf::event_based_actor* self, const caf::actor& to, Ts&&... xs) {
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

caf::behavior partition_behavior(caf::event_based_actor* self,
                                 std::shared_ptr<OptimizerPartition> partition, AdamParams hp,
                                 caf::actor offload, ActorContext ctx) {
  return {
      [=](const gradient_bucket& msg) {
        std::uint64_t bytes = 0;
        for (const auto& g : msg.gradients) bytes += g.bytes();
        ctx.received(msg.stamp, "gradient_bucket", -1, bytes);
        auto span = ctx.span("grad_norm", "optimizer");
        return grad_norm_reply{partition->index(), partition->grad_squared_norm()};
      },
      [=](const optimizer_step& msg) -> caf::result<optimizer_done> {
        ctx.received(msg.stamp, "optimizer_step", -1, 0);
        if (offload)
          return relay<optimizer_done>(
              self, offload,
              offload_step{partition->index(), msg.step, msg.lr, msg.grad_scale, ctx.stamp()});
        auto span = ctx.span("adam", "optimizer");
        const double squared = partition->grad_squared_norm();
        AdamParams step_hp = hp;
        step_hp.lr = msg.lr;
        partition->apply(step_hp, msg.step, msg.grad_scale);
        return optimizer_done{partition->index(), msg.step, squared};
      },
      [=](get_optimizer_state) -> caf::result<optimizer_state> {
        if (offload)
          return relay<optimizer_state>(self, offload, get_optimizer_state{}, partition->index());
        return partition_state(*partition);
      },
      [=](const set_optimizer_state& msg) -> caf::result<void> {
        if (offload) return relay<void>(self, offload, msg, partition->index());
        restore_partition_state(*partition, msg);
        return caf::unit;
      },
  };
}

}  // namespace

caf::actor spawn_optimizer_partition_actor(caf::actor_system& system,
                                           std::shared_ptr<OptimizerPartition> partition,
                                           AdamParams hyperparameters, caf::actor offload_manager,
                                           ActorContext context) {
  return system.spawn(partition_behavior, std::move(partition), hyperparameters,
                      std::move(offload_manager), std::move(context));
}

}  // namespace troupe
