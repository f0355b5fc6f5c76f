// Data actor (see data_actor.hpp).
#include "actors/data_actor.hpp"

#include <deque>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

namespace troupe {
namespace {

struct Prepared {
  batch_data batch;
  // Where training resumes to hand out this batch next: where the batcher stood before drawing
  // it, or with data parallelism at the start of its global step (the same on every rank).
  BatcherPosition position;
  std::int64_t epoch = 0;  // the epoch the batch belongs to
};

struct DataState {
  std::unique_ptr<Batcher> train;
  std::unique_ptr<EvalShard> eval;
  DataActorOptions options;
  ActorContext ctx;
  std::deque<Prepared> ready;  // prefetched training batches, oldest first
};

template <class Source>
batch_data draw(Source& batcher, const ActorContext& ctx) {
  auto span = ctx.span("load_batch", "data");
  Tensor inputs, targets;
  batcher.next(inputs, targets);
  return batch_data{TensorHandle(inputs), TensorHandle(targets)};
}

// One step's micro-batches of this rank (`count` of them), out of the global step's
// data_parallel_size × count.
void draw_step(DataState& st, std::int64_t count) {
  const BatcherPosition start = st.train->position();
  const std::int64_t first = st.options.data_parallel_rank * count;
  for (std::int64_t i = 0; i < st.options.data_parallel_size * count; ++i) {
    if (i >= first && i < first + count) {
      const BatcherPosition own = st.train->position();
      st.ready.push_back(Prepared{draw(*st.train, st.ctx),
                                  st.options.data_parallel_size == 1 ? own : start, own.epoch});
    } else {
      st.train->skip();
    }
  }
}

data_actor::behavior_type data_behavior(data_actor::stateful_pointer<DataState> self,
                                        std::shared_ptr<const Dataset> train,
                                        std::shared_ptr<const Dataset> eval,
                                        DataActorOptions options, ActorContext ctx) {
  auto& st = self->state;
  st.train = std::make_unique<Batcher>(std::move(train), options.train);
  st.train->seek(options.start);
  st.options = options;
  st.ctx = std::move(ctx);
  if (options.data_parallel_size < 1 || options.data_parallel_rank < 0 ||
      options.data_parallel_rank >= options.data_parallel_size)
    throw std::invalid_argument("data actor: data-parallel rank " +
                                std::to_string(options.data_parallel_rank) + " of " +
                                std::to_string(options.data_parallel_size) + " is not a rank");
  st.eval = std::make_unique<EvalShard>(std::move(eval), options.eval_batch_size,
                                        options.data_parallel_rank, options.data_parallel_size);
  if (st.eval->sharded())
    spdlog::info("evaluation sharded over {} ranks: {} batches of up to {} samples each",
                 options.data_parallel_size, st.eval->batches().size(), options.eval_batch_size);
  return {
      [self](const next_batches& request) -> caf::result<batches_reply> {
        auto& st = self->state;
        if (request.count < 1)
          return caf::make_error(
              caf::sec::invalid_argument,
              "next_batches: count = " + std::to_string(request.count) + ", must be >= 1");
        batches_reply reply;
        if (request.evaluation) {
          while (static_cast<std::int64_t>(reply.batches.size()) < request.count &&
                 !st.eval->finished())
            reply.batches.push_back(draw(*st.eval, st.ctx));
          reply.epoch_finished = st.eval->finished();
          reply.eval_shards = st.eval->sharded() ? st.options.data_parallel_size : 1;
          return reply;
        }
        for (std::int64_t i = 0; i < request.count; ++i) {
          if (st.ready.empty()) draw_step(st, request.count);
          reply.batches.push_back(st.ready.front().batch);
          // The batch's epoch is that of the position it was drawn from: the batcher itself is
          // already past the epoch's end after its last batch, or further on after prefetching.
          reply.epoch = st.ready.front().epoch;
          st.ready.pop_front();
        }
        // Prepare the next step's batches after this reply is on its way.
        if (st.options.prefetch > 0)
          self->send(self, prefetch_atom::value, request.count, st.options.prefetch);
        return reply;
      },
      [self](prefetch_atom, std::int64_t count, std::int64_t steps) {
        auto& st = self->state;
        while (static_cast<std::int64_t>(st.ready.size()) < count * steps) draw_step(st, count);
      },
      [self](rewind_eval) { self->state.eval->rewind(); },
      [self](get_position) {
        auto& st = self->state;
        const BatcherPosition p =
            st.ready.empty() ? st.train->position() : st.ready.front().position;
        return data_position{p.epoch, p.index};
      },
      [self](const set_position& msg) {
        auto& st = self->state;
        st.ready.clear();
        st.train->seek(BatcherPosition{msg.position.epoch, msg.position.index});
      },
  };
}

}  // namespace

data_actor spawn_data_actor(caf::actor_system& system, std::shared_ptr<const Dataset> train,
                            std::shared_ptr<const Dataset> eval, DataActorOptions options,
                            ActorContext context) {
  return system.spawn(data_behavior, std::move(train), std::move(eval), options,
                      std::move(context));
}

}  // namespace troupe
