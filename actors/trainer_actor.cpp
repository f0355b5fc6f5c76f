// Trainer actor (see trainer_actor.hpp).
#include "actors/trainer_actor.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "models/checkpoint.hpp"
#include "models/checkpoint_dir.hpp"
#include "models/optimizer_partition.hpp"
#include "models/sharded_checkpoint.hpp"

namespace troupe {
namespace {

using Clock = std::chrono::steady_clock;

struct EvalTotals {
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  std::int64_t count = 0;
  std::int64_t batches = 0;
};

struct TrainerState {
  std::shared_ptr<Model> model;
  TrainerOptions opt;
  TrainerLinks links;
  ActorContext ctx;
  std::optional<caf::typed_response_promise<training_summary>> promise;
  std::int64_t step = 0;
  Clock::time_point started;
  Clock::time_point interval_started;
  std::int64_t interval_samples = 0;
  std::ofstream metrics;
  float last_loss = 0.0f;
  // The next step's batches, requested while the optimizer ran (empty until they arrive).
  std::shared_ptr<std::optional<batches_reply>> prefetched;
  bool waiting_for_prefetch = false;
  // A stop asked on any rank, agreed by all at a step boundary (agree_on_stop); sticky.
  bool stop_agreed = false;
  std::string last_checkpoint;  // path of the newest checkpoint written
  std::int64_t last_checkpoint_step = -1;
};

using Self = trainer_actor::stateful_pointer<TrainerState>;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

void fail(Self self, const caf::error& err) {
  auto& st = self->state;
  spdlog::error("trainer: {}", caf::to_string(err));
  if (st.promise) st.promise->deliver(err);
  st.promise.reset();
  self->quit(err);
}

void write_metrics(Self self, const nlohmann::json& line) {
  auto& st = self->state;
  if (st.metrics.is_open()) st.metrics << line.dump() << '\n' << std::flush;
}

// Sends `make(i)` to every optimizer partition and calls `done` with the replies, in partition
// order, once all have answered.
template <class Reply, class Make, class Done>
void ask_all_partitions(Self self, Make make, Done done) {
  const auto& partitions = self->state.links.optimizer_partitions;
  auto replies = std::make_shared<std::vector<Reply>>(partitions.size());
  auto remaining = std::make_shared<std::size_t>(partitions.size());
  if (partitions.empty()) {
    done(*replies);
    return;
  }
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    self->request(partitions[i], caf::infinite, make(i))
        .then(
            [=](Reply& reply) {
              (*replies)[i] = std::move(reply);
              if (--*remaining == 0) done(*replies);
            },
            [self](caf::error& err) { fail(self, err); });
  }
}

// A group's chunk sums in chunk order: this rank's (its partitions' in order), or, when the
// group's optimizer state is partitioned over its ranks, every rank's, gathered in rank order (each
// rank's padded with zeros to the same count; adding them changes no bit).
template <class Then>
void group_chunk_sums(Self self, bool expert_group, std::vector<double> own, Then then) {
  auto& st = self->state;
  for (const auto& r : st.links.gradient_reductions) {
    if (!r.partitioned || r.expert_group != expert_group) continue;
    own.resize(static_cast<std::size_t>(r.norm_chunks_per_rank), 0.0);
    self->request(r.actor, caf::infinite, gather_values{st.step + 1, std::move(own)})
        .then([then](values_gathered& gathered) { then(std::move(gathered.values)); },
              [self](caf::error& err) { fail(self, err); });
    return;
  }
  then(std::move(own));
}

// Σ g² of the step's gradients from the partitions' replies (grad_norm_reply or optimizer_done),
// added chunk by chunk in order, non-expert group first, so the result does not depend on the
// partitioning, over partitions or over ranks (group_chunk_sums). When the experts are spread over
// the expert-parallel group's ranks, it is the non-expert sum (the same on every rank after the
// reduction) plus every rank's expert sum in rank order, gathered through the group's comm actor:
// each expert counted once, and every rank gets the same bits.
template <class Reply, class Then>
void global_squared_norm(Self self, std::vector<Reply>& replies, Then then) {
  auto& st = self->state;
  std::vector<double> dense, expert;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const bool is_expert = !st.links.expert_partitions.empty() && st.links.expert_partitions.at(i);
    auto& to = is_expert ? expert : dense;
    to.insert(to.end(), replies[i].chunk_squared_norms.begin(),
              replies[i].chunk_squared_norms.end());
  }
  group_chunk_sums(self, false, std::move(dense), [self, expert, then](std::vector<double> dense) {
    group_chunk_sums(self, true, expert, [self, dense, then](std::vector<double> expert) {
      auto& st = self->state;
      if (!st.links.expert_norms) {
        then(sum_in_order({dense, expert}));
        return;
      }
      const double own = sum_in_order({dense});
      self->request(st.links.expert_norms, caf::infinite,
                    gather_values{st.step + 1, {sum_in_order({expert})}})
          .then(
              [own, then](values_gathered& gathered) {
                double total = own;
                for (double v : gathered.values) total += v;
                then(total);
              },
              [self](caf::error& err) { fail(self, err); });
    });
  });
}

// Sends `make(r)` to the comm actor of every gradient group `r` that `wanted(r)` selects, all at
// once, and calls `then` when each has answered with a Reply.
template <class Reply, class Wanted, class Make, class Then>
void ask_gradient_groups(Self self, Wanted wanted, Make make, Then then) {
  auto& st = self->state;
  auto remaining = std::make_shared<std::size_t>(0);
  for (const auto& r : st.links.gradient_reductions) *remaining += wanted(r) ? 1 : 0;
  if (*remaining == 0) {
    then();
    return;
  }
  for (const auto& r : st.links.gradient_reductions) {
    if (!wanted(r)) continue;
    self->request(r.actor, caf::infinite, make(r))
        .then(
            [remaining, then](Reply&) {
              if (--*remaining == 0) then();
            },
            [self](caf::error& err) { fail(self, err); });
  }
}

// With ZeRO stage 1 over ranks: all-gathers each partitioned group's updated values (every rank
// updated only its range), then calls `then`.
template <class Then>
void gather_parameters_then(Self self, Then then) {
  ask_gradient_groups<parameters_gathered>(
      self, [](const GradientReduction& r) { return r.partitioned; },
      [self](const GradientReduction& r) {
        auto& st = self->state;
        return gather_parameters{st.step + 1, r.values, st.ctx.stamp()};
      },
      then);
}

void train_step(Self self);
void run_training_step(Self self, batches_reply reply);
void optimize_reduced(Self self, step_result result);

// Calls `done` with the evaluation's totals: this rank's, or when the data-parallel ranks shared
// the split, the sum of every rank's (all-gathered over the world, added in rank order, so every
// rank reports the same numbers).
void eval_totals(Self self, const EvalTotals& own, std::int64_t shards,
                 std::function<void(const EvalTotals&)> done) {
  auto& st = self->state;
  if (shards <= 1 || !st.links.world) {
    done(own);
    return;
  }
  self->request(st.links.world, caf::infinite,
                gather_values{st.step,
                              {own.loss_sum, static_cast<double>(own.correct),
                               static_cast<double>(own.count), static_cast<double>(own.batches)}})
      .then(
          [done](values_gathered& gathered) {
            EvalTotals sum;
            for (std::size_t i = 0; i + 3 < gathered.values.size(); i += 4) {
              sum.loss_sum += gathered.values[i];
              sum.correct += static_cast<std::int64_t>(gathered.values[i + 1]);
              sum.count += static_cast<std::int64_t>(gathered.values[i + 2]);
              sum.batches += static_cast<std::int64_t>(gathered.values[i + 3]);
            }
            done(sum);
          },
          [self](caf::error& err) { fail(self, err); });
}

// Streams the evaluation split (this rank's shard of it) through the scheduler; `max_batches` = 0
// means the whole split, else at most that many batches per rank.
void evaluate(Self self, std::int64_t max_batches, std::function<void(const EvalTotals&)> done) {
  auto totals = std::make_shared<EvalTotals>();
  auto shards = std::make_shared<std::int64_t>(1);
  auto next = std::make_shared<std::function<void()>>();
  auto finished = [self, totals, shards, done, next] {
    *next = nullptr;  // break the self-reference
    eval_totals(self, *totals, *shards, done);
  };
  *next = [self, totals, shards, finished, next, max_batches] {
    auto& st = self->state;
    self->request(st.links.data, caf::infinite, next_batches{st.opt.eval_micro_batches, true})
        .then(
            [self, totals, shards, finished, next, max_batches](batches_reply& reply) {
              auto& st = self->state;
              *shards = reply.eval_shards;
              if (reply.batches.empty()) {
                finished();
                return;
              }
              const bool last = reply.epoch_finished;
              totals->batches += static_cast<std::int64_t>(reply.batches.size());
              self->request(st.links.scheduler, caf::infinite,
                            run_step{st.step, false, std::move(reply.batches)})
                  .then(
                      [totals, finished, next, last, max_batches](step_result& result) {
                        totals->loss_sum += result.loss_sum;
                        totals->correct += result.correct;
                        totals->count += result.count;
                        const bool enough = max_batches > 0 && totals->batches >= max_batches;
                        if (last || enough) {
                          finished();
                        } else {
                          (*next)();
                        }
                      },
                      [self](caf::error& err) { fail(self, err); });
            },
            [self](caf::error& err) { fail(self, err); });
  };
  self->request(self->state.links.data, caf::infinite, rewind_eval{})
      .then([next] { (*next)(); }, [self](caf::error& err) { fail(self, err); });
}

void log_eval(Self self, const EvalTotals& totals) {
  auto& st = self->state;
  const double loss = totals.count ? totals.loss_sum / static_cast<double>(totals.count) : 0.0;
  const double accuracy =
      totals.count ? static_cast<double>(totals.correct) / static_cast<double>(totals.count) : 0.0;
  nlohmann::json line{{"type", "eval"},
                      {"step", st.step},
                      {"loss", loss},
                      {"accuracy", accuracy},
                      {"count", totals.count}};
  line["elapsed_s"] = seconds_since(st.started);  // plots put evaluations on the wall-time axis
  if (st.opt.language_model) {
    line["bits_per_char"] = loss / std::log(2.0);
    spdlog::info(
        "eval  step {} | loss {:.4f} | {:.4f} bits/char | accuracy {:.2f}% ({} predictions)",
        st.step, loss, loss / std::log(2.0), 100.0 * accuracy, totals.count);
  } else {
    spdlog::info("eval  step {} | loss {:.4f} | accuracy {:.2f}% ({} predictions)", st.step, loss,
                 100.0 * accuracy, totals.count);
  }
  write_metrics(self, line);
}

// With several ranks: every rank's shard of this step is written once every rank has sent its
// CRC-32 (an all-gather over the world); rank 0 then names them all in the manifest.
void confirm_shard(Self self, const std::string& path, std::function<void()> then) {
  auto& st = self->state;
  if (!st.links.world) {
    then();
    return;
  }
  const double crc = static_cast<double>(std::stoul(checkpoint_crc(path), nullptr, 16));
  self->request(st.links.world, caf::infinite, gather_values{st.step, {crc}})
      .then(
          [self, then](values_gathered& gathered) {
            auto& st = self->state;
            if (!st.opt.checkpoint_manifest_dir.empty()) {
              std::vector<std::string> crcs;
              for (double v : gathered.values)
                crcs.push_back(fmt::format("{:08x}", static_cast<std::uint32_t>(v)));
              try {
                write_sharded_latest(st.opt.checkpoint_manifest_dir, checkpoint_file_name(st.step),
                                     st.opt.run_id, crcs);
              } catch (const std::exception& e) {
                fail(self, caf::make_error(caf::sec::runtime_error,
                                           std::string("checkpoint manifest failed: ") + e.what()));
                return;
              }
              spdlog::info("checkpoint: step {}: all {} shards confirmed → {}/latest", st.step,
                           crcs.size(), st.opt.checkpoint_manifest_dir);
            }
            then();
          },
          [self](caf::error& err) { fail(self, err); });
}

void checkpoint(Self self, std::function<void()> then) {
  auto& st = self->state;
  self->request(st.links.data, caf::infinite, get_position{})
      .then(
          [self, then](const data_position& position) {
            ask_all_partitions<optimizer_state>(
                self, [](std::size_t) { return get_optimizer_state{}; },
                [self, then, position](std::vector<optimizer_state>& states) {
                  auto& st = self->state;
                  std::vector<PartitionState> optimizer;
                  for (auto& s : states) {
                    PartitionState p{s.expert_group, s.group_begin, s.names, {}};
                    for (auto& h : s.tensors) p.tensors.push_back(h.tensor());
                    optimizer.push_back(std::move(p));
                  }
                  CheckpointMeta meta{st.opt.run_id,  st.step,     position.epoch,
                                      position.index, st.opt.seed, st.model->name()};
                  std::string path;
                  try {
                    path = save_checkpoint(st.opt.checkpoint_dir, meta, st.model->parameters(),
                                           optimizer, st.opt.checkpoint_keep);
                  } catch (const std::exception& e) {
                    fail(self, caf::make_error(caf::sec::runtime_error,
                                               std::string("checkpoint failed: ") + e.what()));
                    return;
                  }
                  spdlog::info("checkpoint: step {} → {}", st.step, path);
                  st.last_checkpoint = path;
                  st.last_checkpoint_step = st.step;
                  confirm_shard(self, path, then);
                });
          },
          [self](caf::error& err) { fail(self, err); });
}

bool stop_requested(const TrainerState& st) {
  return st.stop_agreed || (st.opt.stop_requested && st.opt.stop_requested());
}

// Calls `then(true)` when the run stops at this step boundary. A stop waits until the next step's
// batches are not fetched yet: the checkpoint records the data position, which must not include
// batches not trained on (prefetch_batches fetches no further once a stop is asked). With several
// ranks all must stop after the same step, or the others would wait in the next step's
// collectives: every rank's (stop asked, batches fetched ahead) is all-gathered over the world at
// each boundary, a stop asked on any rank is agreed by all, and taken at the first boundary where
// no rank has fetched ahead.
template <class Then>
void agree_on_stop(Self self, Then then) {
  auto& st = self->state;
  const bool asked = stop_requested(st);
  const bool ahead = st.prefetched != nullptr;
  if (!st.links.world) {
    then(asked && !ahead);
    return;
  }
  self->request(st.links.world, caf::infinite,
                gather_values{st.step, {asked ? 1.0 : 0.0, ahead ? 1.0 : 0.0}})
      .then(
          [self, then](values_gathered& gathered) {
            bool any_asked = false, any_ahead = false;
            for (std::size_t i = 0; i + 1 < gathered.values.size(); i += 2) {
              any_asked = any_asked || gathered.values[i] != 0.0;
              any_ahead = any_ahead || gathered.values[i + 1] != 0.0;
            }
            if (any_asked) self->state.stop_agreed = true;
            then(any_asked && !any_ahead);
          },
          [self](caf::error& err) { fail(self, err); });
}

// The run's final checkpoint (checkpoint_final; skipped when this step already has one), then
// `then`.
void final_checkpoint(Self self, std::function<void()> then) {
  auto& st = self->state;
  if (st.opt.checkpoint_final && !st.opt.checkpoint_dir.empty() &&
      st.last_checkpoint_step != st.step) {
    checkpoint(self, std::move(then));
  } else {
    then();
  }
}

training_summary summary_so_far(const TrainerState& st) {
  training_summary summary;
  summary.steps = st.step;
  summary.final_train_loss = st.last_loss;
  summary.wall_seconds = seconds_since(st.started);
  summary.checkpoint = st.last_checkpoint;
  return summary;
}

// Ends a run stopped at a step boundary: no final evaluation.
void stop(Self self) {
  auto& st = self->state;
  spdlog::warn("stopping at step {} of {} as asked", st.step, st.opt.total_steps);
  training_summary summary = summary_so_far(st);
  summary.stopped = true;
  if (st.promise) st.promise->deliver(summary);
  st.promise.reset();
}

void finish(Self self) {
  // The final evaluation always covers the whole split; eval_batches bounds the periodic ones.
  evaluate(self, 0, [self](const EvalTotals& totals) {
    auto& st = self->state;
    log_eval(self, totals);
    training_summary summary = summary_so_far(st);
    summary.eval_count = totals.count;
    summary.eval_loss =
        totals.count ? static_cast<float>(totals.loss_sum / static_cast<double>(totals.count))
                     : 0.0f;
    summary.eval_accuracy = totals.count ? static_cast<float>(static_cast<double>(totals.correct) /
                                                              static_cast<double>(totals.count))
                                         : 0.0f;
    if (st.promise) st.promise->deliver(summary);
    st.promise.reset();
  });
}

void after_step(Self self) {
  auto& st = self->state;
  auto next = [self] {
    auto& st = self->state;
    if (st.step >= st.opt.total_steps) {
      final_checkpoint(self, [self] { finish(self); });
      return;
    }
    agree_on_stop(self, [self](bool stop_now) {
      if (stop_now) {
        final_checkpoint(self, [self] { stop(self); });
      } else {
        train_step(self);
      }
    });
  };
  auto maybe_checkpoint = [self, next] {
    auto& st = self->state;
    if (!st.opt.checkpoint_dir.empty() && st.opt.checkpoint_interval > 0 &&
        st.step % st.opt.checkpoint_interval == 0) {
      checkpoint(self, next);
    } else {
      next();
    }
  };
  if (st.opt.eval_interval > 0 && st.step % st.opt.eval_interval == 0 &&
      st.step < st.opt.total_steps) {
    evaluate(self, st.opt.eval_batches, [self, maybe_checkpoint](const EvalTotals& totals) {
      log_eval(self, totals);
      maybe_checkpoint();
    });
  } else {
    maybe_checkpoint();
  }
}

void report_step(Self self, const step_result& result, float lr, double grad_norm) {
  auto& st = self->state;
  st.last_loss = result.loss;
  const auto samples = st.opt.micro_batches_per_step * st.opt.samples_per_micro_batch;
  st.interval_samples += samples;
  nlohmann::json line{{"type", "train"},
                      {"step", st.step},
                      {"loss", result.loss},
                      {"l_aux", result.l_aux},
                      {"lr", lr},
                      {"grad_norm", grad_norm},
                      {"elapsed_s", seconds_since(st.started)},
                      {"exp_counts", result.exp_counts},
                      {"dropped", result.dropped}};
  const bool log_now = st.step % st.opt.log_interval == 0 || st.step == st.opt.total_steps;
  if (log_now) {
    const double interval = seconds_since(st.interval_started);
    const double rate = interval > 0 ? static_cast<double>(st.interval_samples) / interval : 0.0;
    const double remaining_samples = static_cast<double>((st.opt.total_steps - st.step) * samples);
    line["samples_per_s"] = rate;
    spdlog::info("step {}/{} | loss {:.4f} | l_aux {:.4f} | lr {:.2e} | {:.0f} samples/s | ETA {}",
                 st.step, st.opt.total_steps, result.loss, result.l_aux, lr, rate,
                 rate > 0 ? format_duration(remaining_samples / rate) : "?");
    st.interval_started = Clock::now();
    st.interval_samples = 0;
  }
  write_metrics(self, line);
}

// Asks the data actor for the next step's batches while the optimizer runs, unless a checkpoint
// comes first (it records the data position, which must not include batches not yet trained on),
// a stop was asked (the run's final checkpoint comes next) or this was the last step.
void prefetch_batches(Self self) {
  auto& st = self->state;
  const std::int64_t next = st.step + 2;  // the step after the one being optimized
  const bool checkpoint_due = !st.opt.checkpoint_dir.empty() && st.opt.checkpoint_interval > 0 &&
                              (st.step + 1) % st.opt.checkpoint_interval == 0;
  if (next > st.opt.total_steps || checkpoint_due || stop_requested(st)) return;
  auto slot = std::make_shared<std::optional<batches_reply>>();
  st.prefetched = slot;
  self->request(st.links.data, caf::infinite, next_batches{st.opt.micro_batches_per_step, false})
      .then(
          [self, slot](batches_reply& reply) {
            auto& st = self->state;
            *slot = std::move(reply);
            if (st.waiting_for_prefetch && st.prefetched == slot) {
              st.waiting_for_prefetch = false;
              st.prefetched.reset();
              run_training_step(self, std::move(**slot));
            }
          },
          [self](caf::error& err) { fail(self, err); });
}

void apply_optimizer(Self self, step_result result, float scale) {
  const float lr = self->state.opt.learning_rate(self->state.step + 1);
  prefetch_batches(self);
  ask_all_partitions<optimizer_done>(
      self,
      [self, lr, scale](std::size_t i) {
        auto& st = self->state;
        return optimizer_step{st.step + 1, lr, scale, st.links.gradient_buckets.at(i),
                              st.ctx.stamp()};
      },
      [self, result, lr](std::vector<optimizer_done>& done) {
        global_squared_norm(self, done, [self, result, lr](double squared) {
          gather_parameters_then(self, [self, result, lr, squared] {
            ++self->state.step;
            report_step(self, result, lr, std::sqrt(squared));
            after_step(self);
          });
        });
      });
}

// Sums the step's gradients over their data-parallel groups (one request to each group's comm
// actor, all at once), then calls `then`.
template <class Then>
void reduce_gradients_then(Self self, Then then) {
  ask_gradient_groups<gradients_reduced>(
      self, [](const GradientReduction&) { return true; },
      [self](const GradientReduction& r) {
        auto& st = self->state;
        return reduce_gradients{st.step + 1, r.buffers, r.scale, st.ctx.stamp(), r.partitioned};
      },
      then);
}

void optimize(Self self, step_result result) {
  reduce_gradients_then(self, [self, result] { optimize_reduced(self, result); });
}

void optimize_reduced(Self self, step_result result) {
  auto& st = self->state;
  if (st.opt.gradient_clipping <= 0.0f) {
    apply_optimizer(self, std::move(result), 1.0f);  // one round trip
    return;
  }
  // Clipping needs the global norm before any partition may update.
  ask_all_partitions<grad_norm_reply>(
      self,
      [self](std::size_t i) {
        auto& st = self->state;
        return gradient_bucket{st.step + 1, st.links.gradient_buckets.at(i), st.ctx.stamp()};
      },
      [self, result](std::vector<grad_norm_reply>& norms) {
        global_squared_norm(self, norms, [self, result](double squared) {
          apply_optimizer(self, result,
                          clip_coefficient(std::sqrt(squared), self->state.opt.gradient_clipping));
        });
      });
}

void run_training_step(Self self, batches_reply reply) {
  auto& st = self->state;
  self->request(st.links.scheduler, caf::infinite,
                run_step{st.step + 1, true, std::move(reply.batches)})
      .then([self](step_result& result) { optimize(self, std::move(result)); },
            [self](caf::error& err) { fail(self, err); });
}

void train_step(Self self) {
  auto& st = self->state;
  if (st.prefetched && st.prefetched->has_value()) {
    auto prefetched = std::move(st.prefetched);
    run_training_step(self, std::move(**prefetched));
    return;
  }
  if (st.prefetched) {
    // Still in flight: its reply handler continues the step (asking again would skip a step's
    // batches).
    st.waiting_for_prefetch = true;
    return;
  }
  self->request(st.links.data, caf::infinite, next_batches{st.opt.micro_batches_per_step, false})
      .then([self](batches_reply& reply) { run_training_step(self, std::move(reply)); },
            [self](caf::error& err) { fail(self, err); });
}

trainer_actor::behavior_type trainer_behavior(Self self, std::shared_ptr<Model> model,
                                              TrainerOptions options, TrainerLinks links,
                                              ActorContext ctx) {
  auto& st = self->state;
  st.model = std::move(model);
  st.opt = std::move(options);
  st.links = std::move(links);
  st.ctx = std::move(ctx);
  return {
      [self](start_training) -> caf::result<training_summary> {
        auto& st = self->state;
        if (st.promise)
          return caf::make_error(caf::sec::runtime_error, "trainer: training already running");
        if (!st.opt.metrics_file.empty()) {
          const auto parent = std::filesystem::path(st.opt.metrics_file).parent_path();
          if (!parent.empty()) std::filesystem::create_directories(parent);
          // A fresh run starts a fresh file; a resumed one continues the file it left.
          st.metrics.open(st.opt.metrics_file,
                          st.opt.start_step > 0 ? std::ios::app : std::ios::trunc);
          if (!st.metrics)
            return caf::make_error(caf::sec::runtime_error,
                                   "cannot open metrics file " + st.opt.metrics_file);
        }
        st.step = st.opt.start_step;
        st.started = st.interval_started = Clock::now();
        st.promise = self->make_response_promise<training_summary>();
        if (st.step >= st.opt.total_steps) {
          final_checkpoint(self, [self] { finish(self); });
        } else {
          train_step(self);
        }
        return *st.promise;
      },
  };
}

}  // namespace

trainer_actor spawn_trainer_actor(caf::actor_system& system, std::shared_ptr<Model> model,
                                  TrainerOptions options, TrainerLinks links,
                                  ActorContext context) {
  return system.spawn(trainer_behavior, std::move(model), std::move(options), std::move(links),
                      std::move(context));
}

}  // namespace troupe
