// Micro-batch pipeline scheduler actor (see pipeline_actor.hpp).
#include "scheduler/pipeline_actor.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include <caf/all.hpp>

namespace troupe {
namespace {

struct PipelineState {
  PipelineShape shape;
  std::vector<pipeline_stage_actor> first_stages;  // segment 0's replicas
  ActorContext ctx;

  // The step in progress.
  std::optional<caf::typed_response_promise<step_result>> promise;
  run_step request;
  std::int64_t launched = 0;
  std::int64_t completed = 0;
  std::vector<loss_report> losses;  // by micro-batch; each carries its layers' statistics
  // What has arrived of each micro-batch: a micro-batch is complete when its loss (with every
  // layer's statistics) and, in training, its done message have both arrived, in either order.
  std::vector<bool> has_loss, has_done;

  std::int64_t in_flight() const { return launched - completed; }
};

using Self = pipeline_actor::stateful_pointer<PipelineState>;

void launch_ready(Self self) {
  auto& st = self->state;
  const auto total = static_cast<std::int64_t>(st.request.micro_batches.size());
  while (st.launched < total && st.in_flight() < st.shape.depth) {
    const auto m = st.launched++;
    const auto& data = st.request.micro_batches[static_cast<std::size_t>(m)];
    forward_work work;
    work.key = MicroBatchKey{st.request.step, m};
    work.training = st.request.training;
    work.inputs = data.inputs;
    work.targets = data.targets;
    work.micro_batches = total;
    work.loss_weight = 1.0f / static_cast<float>(total);
    work.stamp = st.ctx.stamp();
    self->send(st.first_stages[static_cast<std::size_t>(m) % st.first_stages.size()],
               std::move(work));
  }
}

step_result summarize(const PipelineState& st) {
  step_result out;
  out.step = st.request.step;
  out.exp_counts.assign(static_cast<std::size_t>(st.shape.moe_layers),
                        std::vector<std::int64_t>(static_cast<std::size_t>(st.shape.experts), 0));
  double loss = 0.0, l_aux = 0.0;
  for (std::size_t m = 0; m < st.losses.size(); ++m) {
    loss += st.losses[m].loss;
    out.loss_sum +=
        static_cast<double>(st.losses[m].loss) * static_cast<double>(st.losses[m].count);
    out.correct += st.losses[m].correct;
    out.count += st.losses[m].count;
    for (const auto& s : st.losses[m].stats) {
      l_aux += s.l_aux;
      out.dropped += s.dropped;
      auto& counts = out.exp_counts[static_cast<std::size_t>(s.layer)];
      for (std::size_t e = 0; e < s.exp_counts.size() && e < counts.size(); ++e)
        counts[e] += s.exp_counts[e];
    }
  }
  const double m = static_cast<double>(st.losses.size());
  out.loss = static_cast<float>(loss / m);
  out.l_aux = static_cast<float>(l_aux / m);
  return out;
}

// Counts micro-batch m complete once everything it owes has arrived; then admits the next one
// or, after the last, answers the step.
void complete_if_done(Self self, std::size_t m) {
  auto& st = self->state;
  if (!st.has_loss[m] || !st.has_done[m]) return;
  st.has_loss[m] = false;  // counted once
  ++st.completed;
  if (st.completed == static_cast<std::int64_t>(st.request.micro_batches.size())) {
    st.promise->deliver(summarize(st));
    st.promise.reset();
    return;
  }
  launch_ready(self);
}

void fail(Self self, caf::error reason) {
  auto& st = self->state;
  if (st.promise) {
    st.promise->deliver(std::move(reason));
    st.promise.reset();
  }
}

pipeline_actor::behavior_type pipeline_behavior(Self self, PipelineShape shape,
                                                std::vector<pipeline_stage_actor> first_stages,
                                                std::vector<caf::strong_actor_ptr> members,
                                                ActorContext ctx) {
  auto& st = self->state;
  st.shape = shape;
  st.first_stages = std::move(first_stages);
  st.ctx = std::move(ctx);
  for (const auto& member : members) self->monitor(member);
  self->set_down_handler([self](const caf::down_msg& down) {
    fail(self, down.reason ? down.reason
                           : caf::make_error(caf::sec::runtime_error, "a pipeline actor stopped"));
    self->quit(down.reason);
  });
  return {
      [self](run_step& request) -> caf::result<step_result> {
        auto& st = self->state;
        if (st.promise)
          return caf::make_error(caf::sec::runtime_error, "pipeline: a step is already running");
        if (request.micro_batches.empty())
          return caf::make_error(caf::sec::invalid_argument,
                                 "pipeline: run_step without micro-batches");
        const auto total = request.micro_batches.size();
        st.request = std::move(request);
        st.launched = st.completed = 0;
        st.losses.assign(total, loss_report{});
        st.has_loss.assign(total, false);
        st.has_done.assign(total, !st.request.training);  // evaluation sends no done message
        st.promise = self->make_response_promise<step_result>();
        launch_ready(self);
        return *st.promise;
      },
      [self](loss_report& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "loss_report", msg.key.micro_batch, 0);
        const auto m = static_cast<std::size_t>(msg.key.micro_batch);
        if (static_cast<std::int64_t>(msg.stats.size()) != st.shape.moe_layers)
          throw std::logic_error("pipeline: micro-batch " + std::to_string(m) + " reported " +
                                 std::to_string(msg.stats.size()) + " MoE layers' statistics, " +
                                 "expected " + std::to_string(st.shape.moe_layers));
        // Sum layer statistics in layer order whatever order they were collected in.
        std::sort(msg.stats.begin(), msg.stats.end(),
                  [](const moe_stats& a, const moe_stats& b) { return a.layer < b.layer; });
        st.losses.at(m) = std::move(msg);
        st.has_loss.at(m) = true;
        complete_if_done(self, m);
      },
      [self](const micro_batch_done& msg) {
        auto& st = self->state;
        st.ctx.received(msg.stamp, "micro_batch_done", msg.key.micro_batch, 0);
        const auto m = static_cast<std::size_t>(msg.key.micro_batch);
        st.has_done.at(m) = true;
        complete_if_done(self, m);
      },
  };
}

}  // namespace

pipeline_actor spawn_pipeline_actor(caf::actor_system& system, PipelineShape shape,
                                    std::vector<pipeline_stage_actor> first_stages,
                                    std::vector<caf::strong_actor_ptr> members,
                                    ActorContext context) {
  return system.spawn(pipeline_behavior, shape, std::move(first_stages), std::move(members),
                      std::move(context));
}

}  // namespace troupe
