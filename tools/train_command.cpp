// `troupe train` (see train_command.hpp).
#include "tools/train_command.hpp"

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "actors/data_actor.hpp"
#include "actors/trace_actor.hpp"
#include "actors/trainer_actor.hpp"
#include "comm/rank_world.hpp"
#include "comm/rendezvous.hpp"
#include "configs/lr_schedule.hpp"
#include "configs/run_config.hpp"
#include "kernels/ops/gemm.hpp"
#include "models/checkpoint.hpp"
#include "models/checkpoint_dir.hpp"
#include "models/parameter_file.hpp"
#include "models/sharded_checkpoint.hpp"
#include "scheduler/actor_runtime.hpp"
#include "tools/plot_command.hpp"
#include "tools/rank_environment.hpp"
#include "tools/run_setup.hpp"
#include "tools/stop_signals.hpp"

namespace troupe {
namespace {

AdamParams adam_from(const OptimizerSection& o) {
  AdamParams hp;
  hp.lr = static_cast<float>(o.lr);
  hp.beta1 = static_cast<float>(o.betas[0]);
  hp.beta2 = static_cast<float>(o.betas[1]);
  hp.eps = static_cast<float>(o.eps);
  hp.weight_decay = static_cast<float>(o.weight_decay);
  hp.adam_w_mode = o.decoupled_weight_decay();
  hp.bias_correction = o.bias_correction;
  return hp;
}

std::int64_t count_parameters(Model& model, bool expert) {
  std::int64_t n = 0;
  for (auto* p : model.parameters())
    if (p->is_expert == expert) n += p->value.numel();
  return n;
}

// `--plot`: the metrics (and the trace, if one was written) as PNG files beside the metrics.
int plot_run(const std::string& metrics_file, const std::string& trace_file) {
  if (metrics_file.empty()) {
    spdlog::error("--plot needs a metrics file, and runtime.metrics_file is empty");
    return 1;
  }
  PlotCommand plot;
  plot.inputs.push_back(metrics_file);
  if (!trace_file.empty()) plot.inputs.push_back(trace_file);
  plot.out_dir = std::filesystem::path(metrics_file).parent_path().string();
  if (plot.out_dir.empty()) plot.out_dir = ".";
  const int code = run_plot(plot);
  if (code == 0) std::printf("plots: %s\n", plot.out_dir.c_str());
  return code;
}

// "runs/x/trace.json" → "runs/x/trace.rank1.json": each rank writes its own file.
std::string per_rank_path(const std::string& path, int rank) {
  std::filesystem::path p(path);
  return (p.parent_path() /
          (p.stem().string() + ".rank" + std::to_string(rank) + p.extension().string()))
      .string();
}

// This rank's communicators (none with one rank).
std::unique_ptr<RankWorld> connect_ranks(const RunConfig& config, const RankEnvironment& rank) {
  if (config.runtime.world_size == 1) return nullptr;
  if (rank.master_addr.empty() || rank.master_port <= 0)
    throw std::invalid_argument(
        "rank " + std::to_string(rank.rank) + " of " + std::to_string(rank.world_size) + " (" +
        rank.launcher +
        " environment) needs MASTER_ADDR and MASTER_PORT: the address and a free port of the "
        "host of rank 0, where the ranks meet");
  RankWorldOptions options;
  options.rank = static_cast<int>(rank.rank);
  options.dims.world_size = static_cast<int>(config.runtime.world_size);
  options.dims.ep_size = static_cast<int>(config.model.moe.ep_size);
  options.dims.use_data_before_expert_parallel = config.use_data_before_expert_parallelism;
  options.master_addr = rank.master_addr;
  options.master_port = static_cast<std::uint16_t>(rank.master_port);
  options.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.runtime.master_timeout * 1000.0));
  spdlog::info("rank {} of {}: meeting the others at {}:{} (ep_size {})", rank.rank,
               rank.world_size, rank.master_addr, rank.master_port, options.dims.ep_size);
  auto world = RankWorld::connect(options);
  spdlog::info("rank {}: connected: {}", rank.rank, world->world->describe());
  return world;
}

int train(RunConfig config, const TrainCommand& command, const RankEnvironment& rank) {
  if (config.runtime.executor != ExecutorKind::actors)
    throw ConfigError(config.name, "runtime.executor",
                      "\"sequential\" is the reference executor the tests compare against; "
                      "`troupe train` runs \"actors\"");
  std::unique_ptr<RankWorld> world = connect_ranks(config, rank);
  const bool multi_rank = world != nullptr;
  const bool rank0 = rank.rank == 0;
  // Logs, metrics and the printed results come from rank 0; the others report only problems.
  if (!rank0) spdlog::set_level(spdlog::level::warn);
  const std::int64_t ep_rank = multi_rank ? world->expert_parallel->rank() : 0;
  const std::int64_t dp_rank = multi_rank ? world->data_parallel->rank() : 0;
  const std::int64_t dp_size = config.data_parallel_size();
  RunSetup setup = build_run(config, ep_rank);
  spdlog::info("data: {}", setup.data_summary);
  Model& model = *setup.model;
  spdlog::info("model: {} | {} dense + {} expert parameters | {} MoE layer(s)", model.name(),
               count_parameters(model, false), count_parameters(model, true),
               model.num_moe_layers());

  const auto micro = config.train_micro_batch_size_per_gpu;
  const auto accumulation = config.gradient_accumulation_steps;
  const std::int64_t train_samples =
      config.data.limit_train_samples > 0
          ? std::min(config.data.limit_train_samples, setup.train->size())
          : setup.train->size();
  const std::int64_t steps_per_epoch = train_samples / (micro * accumulation * dp_size);
  if (steps_per_epoch < 1)
    throw ConfigError(config.name, "train_batch_size",
                      std::to_string(config.train_batch_size) +
                          " is larger than the training set (" + std::to_string(train_samples) +
                          " samples)");
  std::int64_t total_steps = config.runtime.train_steps > 0
                                 ? config.runtime.train_steps
                                 : config.runtime.epochs * steps_per_epoch;
  if (command.steps > 0) total_steps = command.steps;

  std::string trace_file =
      !command.trace_file.empty() ? command.trace_file : config.runtime.trace_file;
  if (multi_rank && !trace_file.empty()) trace_file = per_rank_path(trace_file, rank.rank);
  std::shared_ptr<TraceRecorder> recorder;
  if (!trace_file.empty()) recorder = std::make_shared<TraceRecorder>("troupe " + config.name);
  if (recorder && multi_rank) {
    // Each rank's file is its own process in a trace viewer, on rank 0's clock.
    recorder->set_rank(static_cast<int>(rank.rank), static_cast<int>(rank.world_size));
    const ClockOffset offset = world->store().measure_clock_offset();
    recorder->set_clock_offset(offset.offset_us, offset.rtt_us);
  }

  if (!command.init_from.empty()) {
    init_parameters_from(command.init_from, model.parameters());
    spdlog::info("parameters from {} (fresh optimizer state, step 0)", command.init_from);
  }

  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) ops::set_cpu_gemm_threads(1);
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  // Workers wait on a condition variable instead of CAF's default sleep-polling work stealing:
  // micro-batch messages are latency-bound (bench/runtime_bench.cpp: 0.60 → 0.76 of the
  // sequential executor's speed on this model).
  cfg.set("scheduler.policy", caf::atom("sharing"));
  // Ranks on one host share its cores: each gets its share of CAF workers (at least one).
  if (rank.local_world_size > 1) {
    const auto cores = static_cast<std::int64_t>(std::thread::hardware_concurrency());
    cfg.set("scheduler.max-threads",
            static_cast<std::size_t>(std::max<std::int64_t>(1, cores / rank.local_world_size)));
  }
  caf::actor_system system(cfg);

  RuntimeOptions ro;
  ro.pipeline_depth = config.runtime.pipeline_depth;
  ro.expert_shards = config.runtime.expert_shards;
  ro.stage_replicas = config.runtime.stage_replicas;
  ro.optimizer_partitions = config.runtime.optimizer_partitions;
  ro.zero_stage = config.zero_optimization.stage;
  ro.offload_optimizer = config.zero_optimization.offload_optimizer.device == OffloadDevice::cpu;
  ro.adam = adam_from(config.optimizer);
  ro.seed = config.runtime.seed;
  ro.micro_batch_offset = dp_rank * accumulation;
  ro.recorder = recorder;
  if (multi_rank) {
    ro.expert_parallel = world->expert_parallel;
    ro.data_parallel = world->data_parallel;
    ro.expert_data_parallel = world->expert_data_parallel;
    ro.world = world->world;
  }
  ActorRuntime runtime(system, setup.model, ro);

  DataActorOptions data;
  data.train.batch_size = micro;
  data.train.seed = config.runtime.seed;
  data.train.shuffle = config.data.shuffle;
  data.train.limit_samples = config.data.limit_train_samples;
  data.eval_batch_size = std::max<std::int64_t>(micro, 256);
  data.prefetch = config.data.prefetch;
  data.data_parallel_rank = dp_rank;
  data.data_parallel_size = dp_size;
  // Each rank keeps its own checkpoints (its experts, its optimizer ranges; its copy of the rest)
  // in DIR/rankR, and rank 0 the manifest in DIR (models/sharded_checkpoint.hpp).
  const std::string run_checkpoint_dir = config.runtime.checkpoint.dir;
  if (multi_rank)
    config.runtime.checkpoint.dir = checkpoint_shard_dir(run_checkpoint_dir, rank.rank);

  TrainerOptions to;
  // With several ranks `--resume DIR` names the run's checkpoint directory: every rank verifies
  // every rank's shard of the step the manifest names (or falls back to the newest step whose
  // shards are all intact), then loads its own.
  std::string resume = command.resume;
  std::vector<std::string> skipped_shards;
  if (multi_rank && !resume.empty()) {
    ShardedResume sharded = resolve_sharded_checkpoint(resume, rank.world_size);
    resume = sharded.shard_paths.at(static_cast<std::size_t>(rank.rank));
    skipped_shards = std::move(sharded.skipped);
  }
  if (!resume.empty()) {
    LoadedCheckpoint ckpt = load_checkpoint(resume, model.parameters(), model.name());
    ckpt.skipped.insert(ckpt.skipped.end(), skipped_shards.begin(), skipped_shards.end());
    for (const auto& skipped : ckpt.skipped)
      spdlog::warn("skipping a damaged checkpoint: {}", skipped);
    if (!ckpt.skipped.empty())
      spdlog::warn("falling back to the previous intact checkpoint {} (step {})", ckpt.path,
                   ckpt.meta.step);
    // Each partition takes its range of its group's state, whatever partitioning wrote it.
    for (std::size_t i = 0; i < runtime.partitions().size(); ++i) {
      const auto& partition = *runtime.partitions()[i];
      PartitionState slice = ckpt.partition_state(partition.expert_group(), partition.group_begin(),
                                                  partition.numel());
      set_optimizer_state state{std::move(slice.names), {}};
      for (auto& t : slice.tensors) state.tensors.emplace_back(t);
      caf::scoped_actor self{system};
      self->request(runtime.optimizer_partitions()[i], caf::infinite, state)
          .receive([] {}, [](caf::error& e) { throw std::runtime_error(caf::to_string(e)); });
    }
    if (ckpt.meta.seed != config.runtime.seed)
      spdlog::warn("resuming with runtime.seed = {} but the checkpoint was written with seed {}",
                   config.runtime.seed, ckpt.meta.seed);
    data.start = BatcherPosition{ckpt.meta.data_epoch, ckpt.meta.data_index};
    to.start_step = ckpt.meta.step;
    to.run_id = ckpt.meta.run_id;
    spdlog::info("resumed run {} from {} at step {}", to.run_id, ckpt.path, ckpt.meta.step);
  } else {
    // One run id for all ranks: rank 0 draws it and the others read it from the store.
    if (!multi_rank) {
      to.run_id = new_run_id();
    } else if (rank0) {
      to.run_id = new_run_id();
      world->store().set("troupe/run_id", to.run_id);
    } else {
      to.run_id = world->store().get("troupe/run_id");
    }
    spdlog::info("run id: {} (a new run)", to.run_id);
  }
  const bool checkpoints =
      config.runtime.checkpoint.interval > 0 || config.runtime.checkpoint.final;
  if (checkpoints) {
    // Each rank claims its own directory; rank 0 also the run's, which holds the manifest.
    std::vector<std::string> dirs{config.runtime.checkpoint.dir};
    if (multi_rank && rank0) dirs.push_back(run_checkpoint_dir);
    for (const auto& dir : dirs) {
      const ClaimResult claim =
          claim_checkpoint_dir(dir, to.run_id, !resume.empty(), command.overwrite_checkpoints);
      if (!claim.removed_temporaries.empty())
        spdlog::info("removed {} temporary file(s) of interrupted checkpoint writes from {}",
                     claim.removed_temporaries.size(), dir);
      if (!claim.removed_checkpoints.empty())
        spdlog::warn("--overwrite_checkpoints: removed another run's checkpoint files from {}: {}",
                     dir, fmt::join(claim.removed_checkpoints, ", "));
    }
  }
  auto data_actor = spawn_data_actor(system, setup.train, setup.eval, data, {"data", recorder});

  to.total_steps = total_steps;
  to.micro_batches_per_step = accumulation;
  to.samples_per_micro_batch = micro;
  const OptimizerSection optimizer = config.optimizer;
  const auto scheduler = config.scheduler;
  to.learning_rate = [optimizer, scheduler](std::int64_t step) {
    return static_cast<float>(learning_rate_for_update(optimizer, scheduler, step));
  };
  to.gradient_clipping = static_cast<float>(config.gradient_clipping);
  to.eval_interval = config.runtime.eval_interval > 0
                         ? config.runtime.eval_interval
                         : (config.runtime.epochs > 0 ? steps_per_epoch : 0);
  to.eval_batches = config.runtime.eval_batches;
  to.eval_micro_batches = std::max<std::int64_t>(2, config.runtime.pipeline_depth);
  to.log_interval =
      config.runtime.log_interval > 0 ? config.runtime.log_interval : config.steps_per_print;
  to.metrics_file =
      !command.metrics_file.empty() ? command.metrics_file : config.runtime.metrics_file;
  if (!rank0) to.metrics_file.clear();
  to.checkpoint_dir = config.runtime.checkpoint.dir;
  to.checkpoint_interval = config.runtime.checkpoint.interval;
  to.checkpoint_keep = config.runtime.checkpoint.keep;
  to.checkpoint_final = config.runtime.checkpoint.final;
  if (multi_rank && rank0) to.checkpoint_manifest_dir = run_checkpoint_dir;
  install_stop_signal_handlers();
  to.stop_requested = [] { return stop_signal() != 0; };
  to.seed = config.runtime.seed;
  to.language_model = setup.language_model;

  if (config.zero_optimization.stage == 0) {
    spdlog::info("ZeRO-0: one optimizer state per parameter group");
  } else {
    std::int64_t dense = 0, expert = 0;
    for (const auto& p : runtime.partitions()) (p->expert_group() ? expert : dense) += 1;
    spdlog::info("ZeRO-{}: {} dense, {} expert partitions{}", config.zero_optimization.stage, dense,
                 expert,
                 multi_rank ? " of this rank's ranges (the optimizer state is partitioned over the "
                              "data-parallel and expert-data-parallel groups)"
                            : "");
  }

  TrainerLinks links{data_actor,
                     runtime.pipeline(),
                     runtime.optimizer_partitions(),
                     runtime.gradient_buckets(),
                     runtime.gradient_reductions(),
                     runtime.expert_norms(),
                     runtime.expert_partitions(),
                     runtime.world_comm()};
  auto trainer = spawn_trainer_actor(system, setup.model, to, links, {"trainer", recorder});
  spdlog::info(
      "training: {} steps of {} samples ({} rank(s) x {} micro-batches of {}), {} steps per "
      "epoch, pipeline depth {}, {} expert shard(s) per layer, {} optimizer partition(s){}",
      total_steps, config.train_batch_size, dp_size, accumulation, micro, steps_per_epoch,
      ro.pipeline_depth, ro.expert_shards, runtime.partitions().size(),
      ro.offload_optimizer ? ", ZeRO-Offload" : "");
  if (!to.metrics_file.empty()) spdlog::info("metrics: {}", to.metrics_file);

  int exit_code = 0;
  std::string checkpoint;
  caf::scoped_actor self{system};
  self->request(trainer, caf::infinite, start_training{})
      .receive(
          [&](const training_summary& s) {
            checkpoint = s.checkpoint;
            if (s.stopped) {
              // A rank may stop without a signal of its own: the ranks agree to stop together
              // when any of them is interrupted. It exits as if interrupted by SIGINT.
              const int signal = stop_signal();
              spdlog::warn("{} after step {} of {}{}",
                           signal != 0 ? fmt::format("interrupted by {}", strsignal(signal))
                                       : std::string("stopped with the other ranks (another rank "
                                                     "was interrupted)"),
                           s.steps, total_steps,
                           checkpoint.empty() ? " (no checkpoint: checkpoints are off)"
                                              : "; --resume continues it");
              exit_code = 128 + (signal != 0 ? signal : SIGINT);
            } else if (!rank0) {
              // Rank 0 prints the results.
            } else if (setup.language_model) {
              std::printf("validation loss: %.4f nats/char = %.4f bits/char (%lld characters)\n",
                          s.eval_loss, s.eval_loss / std::log(2.0),
                          static_cast<long long>(s.eval_count));
            } else {
              std::printf("test accuracy: %.2f%% (%lld images)\n", 100.0 * s.eval_accuracy,
                          static_cast<long long>(s.eval_count));
            }
            if (rank0)
              std::printf("steps: %lld, wall time: %.1f s\n", static_cast<long long>(s.steps),
                          s.wall_seconds);
          },
          [&](const caf::error& e) {
            spdlog::error("training failed: {}", caf::to_string(e));
            exit_code = 1;
          });
  if (recorder) {
    auto tracer = spawn_trace_actor(system, recorder);
    self->request(tracer, caf::infinite, flush_trace{trace_file})
        .receive([] {},
                 [&](const caf::error& e) {
                   spdlog::error("writing the trace failed: {}", caf::to_string(e));
                   exit_code = 1;
                 });
    self->send_exit(tracer, caf::exit_reason::user_shutdown);
  }
  self->send_exit(trainer, caf::exit_reason::user_shutdown);
  self->send_exit(data_actor, caf::exit_reason::user_shutdown);
  runtime.shutdown();
  // No rank disconnects while a peer may still wait on it.
  if (multi_rank && exit_code == 0) world->finish();
  if (exit_code == 0 && command.plot) exit_code = plot_run(to.metrics_file, trace_file);
  // Last, so that scripts find the saved model on the last line.
  if (!checkpoint.empty()) std::printf("checkpoint: %s\n", checkpoint.c_str());
  return exit_code;
}

}  // namespace

int run_train(const TrainCommand& command) {
  RunConfig config;
  RankEnvironment rank;
  try {
    rank = read_rank_environment(current_environment());
    const bool launched = rank.launcher != "none";
    config = load_run_config(command.config_path, command.deepspeed_config_path,
                             launched ? rank.world_size : 0);
    if (!launched && config.runtime.world_size > 1) {
      spdlog::error(
          "{}: runtime.world_size is {}, but this process was not started by a launcher (no "
          "RANK / WORLD_SIZE in its environment): start the ranks with `tools/troupe-launch "
          "--nproc_per_node {} {}` (or torchrun, srun or mpirun, with MASTER_ADDR and "
          "MASTER_PORT set)",
          command.config_path, config.runtime.world_size, config.runtime.world_size,
          command.config_path);
      return 2;
    }
  } catch (const ConfigError& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  try {
    return train(std::move(config), command, rank);
  } catch (const ConfigError& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

}  // namespace troupe
