// What the actor runtime gains over the sequential executor on the main job's model.
//
// Trains the Fashion-MNIST LeNet-MoE (28×28 inputs, conv1 padded by 2, 8 experts, top-2, dropless,
// Adam) on synthetic
// data with the SequentialExecutor and with the ActorRuntime, for each configuration
// (micro-batches × micro-batch size at a pipeline depth). Every run is validated first: it must
// end with parameters bit-identical to the sequential run's (the runtime changes when and where,
// never what), else the program exits 1. Timing:
//   - each run trains `--warmup` untimed steps, then `--steps` timed ones; the median of `--runs`
//     runs is reported;
//   - the sequential executor is timed with 2 BLAS threads and the intra-op pool at 2, as a user
//     of one process would run it, and also with 1 BLAS thread ("vs best" divides the faster of
//     the two by the actors' time); bit-identity is checked against the 1-thread run, the actors'
//     BLAS setting (OpenBLAS may split a GEMM's sums differently with 2);
//   - the actors run on 2 CAF workers (sharing policy), 1 BLAS thread each, driven step by step by
//     an actor (run_step, then one optimizer_step round trip to the partitions), as the trainer
//     does;
//   - each timed run starts after a pause in which the threads of the run before go idle;
//   - messages per step come from one traced run; µs per hop from a ping-pong between two actors
//     on the same system.
//
// `--only actors|sequential` runs one executor alone and `--config i` one configuration, without
// the check or the table, so that a profiler sees only that executor's work; `--trace FILE` then
// also writes the Chrome trace of one more actor run (for `troupe trace summarize`).
//
//   troupe_bench_runtime [--steps 30] [--warmup 3] [--runs 5] [--only E] [--config i]
//                        [--trace FILE]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include "kernels/ops/gemm.hpp"
#include "models/lenet_moe.hpp"
#include "scheduler/actor_runtime.hpp"
#include "scheduler/sequential_executor.hpp"
#include "trace/trace_summary.hpp"

namespace {

using namespace troupe;
using Clock = std::chrono::steady_clock;
using go_atom = caf::atom_constant<caf::atom("go")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;

struct Options {
  std::int64_t steps = 30;
  std::int64_t warmup = 3;
  std::int64_t runs = 5;
  std::string only;  // "", "actors" or "sequential": time one executor alone (for profiling)
  std::int64_t config = -1;  // index into the configurations, -1 = all
  std::string trace;         // with --only actors: also write one traced run's Chrome trace here
};

struct Config {
  std::int64_t micro_batches, micro_batch_size, depth, replicas;  // replicas of the input stage
};

using Data = std::vector<std::vector<Batch>>;  // [step][micro-batch]

std::shared_ptr<Model> make_model() {
  LeNetMoEConfig c;     // 1×28×28, 10 classes, fc3 width 84
  c.conv1_padding = 2;  // as the main job (configs/fashion_mnist_moe.json)
  c.moe.num_experts = 8;
  c.moe.k = 2;
  c.moe.drop_tokens = false;
  c.init_seed = 1;
  return std::make_shared<LeNetMoE>(c);
}

Data make_data(const Config& config, std::int64_t steps) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> pixel(0.0f, 1.0f);
  Data data(static_cast<std::size_t>(steps));
  for (auto& step : data)
    for (std::int64_t m = 0; m < config.micro_batches; ++m) {
      Batch b{Tensor::empty({config.micro_batch_size, 1, 28, 28}),
              Tensor::empty({config.micro_batch_size}, DType::i32)};
      for (std::int64_t i = 0; i < b.inputs.numel(); ++i) b.inputs.data<float>()[i] = pixel(rng);
      for (std::int64_t i = 0; i < config.micro_batch_size; ++i)
        b.targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 10);
      step.push_back(b);
    }
  return data;
}

std::vector<Tensor> snapshot(Model& model) {
  std::vector<Tensor> out;
  for (auto* p : model.parameters()) out.push_back(p->value.clone());
  return out;
}

bool identical(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()) != 0) return false;
  return true;
}

// Seconds for the steps after `warmup`.
double run_sequential(const Data& data, std::int64_t warmup, std::vector<Tensor>& params,
                      int gemm_threads) {
  ops::set_cpu_gemm_threads(gemm_threads);
  auto model = make_model();
  SequentialExecutor exec(model, 2, AdamParams{}, 42);
  Clock::time_point start = Clock::now();
  for (std::size_t s = 0; s < data.size(); ++s) {
    if (static_cast<std::int64_t>(s) == warmup) start = Clock::now();
    const auto step = static_cast<std::int64_t>(s) + 1;
    exec.run_step(step, true, data[s]);
    exec.apply_optimizer(step, 1e-3f, 0.0f);
  }
  params = snapshot(*model);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Drives the runtime like the trainer: run_step, then one optimizer_step round trip, per step.
struct DriverState {
  pipeline_actor pipeline;
  std::vector<optimizer_partition_actor> partitions;
  std::vector<std::vector<TensorHandle>> buckets;
  std::vector<GradientReduction> reductions;
  const Data* data = nullptr;
  std::int64_t warmup = 0;
  std::size_t step = 0;
  Clock::time_point timed_start;
  caf::typed_response_promise<double> done;
};

void drive_step(caf::stateful_actor<DriverState>* self) {
  auto& st = self->state;
  if (st.step == st.data->size()) {
    st.done.deliver(std::chrono::duration<double>(Clock::now() - st.timed_start).count());
    return;
  }
  if (static_cast<std::int64_t>(st.step) == st.warmup) st.timed_start = Clock::now();
  const auto step = static_cast<std::int64_t>(st.step) + 1;
  run_step request{step, true, {}};
  for (const auto& b : (*st.data)[st.step])
    request.micro_batches.push_back(batch_data{TensorHandle(b.inputs), TensorHandle(b.targets)});
  auto fail = [self](caf::error& e) { self->state.done.deliver(std::move(e)); };
  // The optimizer phase as the trainer runs it: the gradient groups' reductions, then the
  // partitions' updates.
  auto update = [self, step, fail] {
    auto& st = self->state;
    auto remaining = std::make_shared<std::size_t>(st.partitions.size());
    for (std::size_t i = 0; i < st.partitions.size(); ++i)
      self->request(st.partitions[i], caf::infinite,
                    optimizer_step{step, 1e-3f, 1.0f, st.buckets[i], {}})
          .then(
              [self, remaining](const optimizer_done&) {
                if (--*remaining > 0) return;
                ++self->state.step;
                drive_step(self);
              },
              fail);
  };
  self->request(st.pipeline, caf::infinite, std::move(request))
      .then(
          [self, step, fail, update](const step_result&) {
            auto& st = self->state;
            auto remaining = std::make_shared<std::size_t>(st.reductions.size());
            for (const auto& r : st.reductions)
              self->request(r.actor, caf::infinite, reduce_gradients{step, r.buffers, r.scale, {}})
                  .then(
                      [remaining, update](const gradients_reduced&) {
                        if (--*remaining == 0) update();
                      },
                      fail);
            if (st.reductions.empty()) update();
          },
          fail);
}

caf::behavior driver(caf::stateful_actor<DriverState>* self, DriverState init) {
  self->state = std::move(init);
  return {[self](go_atom) -> caf::result<double> {
    self->state.done = self->make_response_promise<double>();
    drive_step(self);
    return self->state.done;
  }};
}

caf::actor_system_config actor_config() {
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", 2);
  return cfg;
}

double run_actors(const Data& data, const Config& config, std::int64_t warmup,
                  std::vector<Tensor>& params, std::shared_ptr<TraceRecorder> recorder = nullptr) {
  ops::set_cpu_gemm_threads(1);
  auto model = make_model();
  auto cfg = actor_config();
  caf::actor_system system(cfg);
  RuntimeOptions ro;
  ro.pipeline_depth = config.depth;
  ro.stage_replicas = config.replicas;
  ro.expert_shards = 2;
  ro.optimizer_partitions = 2;
  ro.seed = 42;
  ro.recorder = std::move(recorder);
  double seconds = -1.0;
  {
    ActorRuntime runtime(system, model, ro);
    DriverState init;
    init.pipeline = runtime.pipeline();
    init.partitions = runtime.optimizer_partitions();
    init.buckets = runtime.gradient_buckets();
    init.reductions = runtime.gradient_reductions();
    init.data = &data;
    init.warmup = warmup;
    auto drive = system.spawn(driver, std::move(init));
    caf::scoped_actor self{system};
    self->request(drive, caf::infinite, go_atom::value)
        .receive([&](double s) { seconds = s; },
                 [&](const caf::error& e) {
                   std::fprintf(stderr, "error: %s\n", caf::to_string(e).c_str());
                 });
    self->send_exit(drive, caf::exit_reason::user_shutdown);
  }
  if (seconds < 0) std::exit(1);
  params = snapshot(*model);
  return seconds;
}

// One-way message latency between two actors on the benchmark's actor system, in µs.
double microseconds_per_hop() {
  auto cfg = actor_config();
  caf::actor_system system(cfg);
  auto pong =
      system.spawn([]() -> caf::behavior { return {[](ping_atom, std::int64_t n) { return n; }}; });
  constexpr std::int64_t kRoundTrips = 20000;
  double seconds = 0.0;
  {
    auto ping = system.spawn([pong](caf::event_based_actor* self) -> caf::behavior {
      return {[self, pong](go_atom) -> caf::result<double> {
        auto promise = self->make_response_promise<double>();
        auto start = Clock::now();
        auto next = std::make_shared<std::function<void(std::int64_t)>>();
        *next = [self, pong, promise, start, next](std::int64_t n) mutable {
          if (n == kRoundTrips) {
            promise.deliver(std::chrono::duration<double>(Clock::now() - start).count());
            *next = nullptr;
            return;
          }
          self->request(pong, caf::infinite, ping_atom::value, n + 1).then([next](std::int64_t m) {
            (*next)(m);
          });
        };
        (*next)(0);
        return promise;
      }};
    });
    caf::scoped_actor self{system};
    self->request(ping, caf::infinite, go_atom::value)
        .receive([&](double s) { seconds = s; }, [](const caf::error&) {});
    self->send_exit(ping, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(pong, caf::exit_reason::user_shutdown);
  return seconds * 1e6 / (2.0 * kRoundTrips);
}

// Waits until the threads of the run before have gone idle: after its last GEMM an OpenBLAS
// thread spins (sched_yield) for about 0.1 s more, and a run that starts meanwhile shares a core
// with it. Measured with perf: the actor run that follows the 2-thread sequential run had that
// thread busy for its first 150 ms, and took 5.1–5.2 ms/step instead of 4.0–4.2 after this pause.
// Called before every timed run, whichever executor.
void settle() {
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Actor runtime vs sequential executor on the LeNet-MoE main-job model"};
  app.add_option("--steps", opt.steps, "Timed optimizer steps per run")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "Untimed steps before them")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--runs", opt.runs, "Runs per executor (the median is reported)")
      ->check(CLI::PositiveNumber);
  app.add_option("--only", opt.only, "Time one executor alone, for profiling")
      ->check(CLI::IsMember({"actors", "sequential"}));
  app.add_option("--config", opt.config, "Run only this configuration (0-based index)");
  app.add_option("--trace", opt.trace, "With --only actors: write one traced run's Chrome trace");
  CLI11_PARSE(app, argc, argv);

  std::vector<Config> configs{{2, 32, 2, 1}, {2, 32, 2, 2}, {4, 16, 2, 2}, {4, 16, 4, 2}};
  if (opt.config < -1 || opt.config >= static_cast<std::int64_t>(configs.size())) {
    std::fprintf(stderr, "--config = %lld, allowed -1 (all) or 0..%zu\n",
                 static_cast<long long>(opt.config), configs.size() - 1);
    return 2;
  }
  if (opt.config >= 0) configs = {configs[static_cast<std::size_t>(opt.config)]};
  if (!opt.only.empty()) {
    for (const auto& config : configs) {
      const auto data = make_data(config, opt.warmup + opt.steps);
      std::vector<double> times;
      for (std::int64_t r = 0; r < opt.runs; ++r) {
        std::vector<Tensor> params;
        times.push_back(opt.only == "actors" ? run_actors(data, config, opt.warmup, params)
                                             : run_sequential(data, opt.warmup, params, 2));
      }
      std::printf("%lld x %lld depth %lld replicas %lld: %s %.3f ms/step\n",
                  static_cast<long long>(config.micro_batches),
                  static_cast<long long>(config.micro_batch_size),
                  static_cast<long long>(config.depth), static_cast<long long>(config.replicas),
                  opt.only.c_str(), median(times) * 1e3 / static_cast<double>(opt.steps));
      if (opt.only == "actors" && !opt.trace.empty()) {
        auto recorder = std::make_shared<TraceRecorder>("runtime_bench");
        std::vector<Tensor> params;
        run_actors(data, config, opt.warmup, params, recorder);
        recorder->write_chrome_trace(opt.trace);
      }
    }
    return 0;
  }
  const double hop_us = microseconds_per_hop();
  std::printf(
      "%lld timed steps after %lld warm-up steps, median of %lld runs; one hop (CAF "
      "message, 2 workers, sharing) = %.1f us\n",
      static_cast<long long>(opt.steps), static_cast<long long>(opt.warmup),
      static_cast<long long>(opt.runs), hop_us);
  std::printf("%-14s %6s %9s %14s %14s %14s %9s %9s %14s\n", "micro-batches", "depth", "replicas",
              "seq ms (2 BLAS)", "seq ms (1 BLAS)", "actors ms", "speed-up", "vs best",
              "messages/step");
  for (const auto& config : configs) {
    const auto data = make_data(config, opt.warmup + opt.steps);
    // The reference for bit-identity: the sequential executor with the actors' single BLAS thread
    // (OpenBLAS may split a GEMM's sums differently with more threads).
    std::vector<Tensor> reference;
    std::vector<double> seq, seq1, act;
    for (std::int64_t r = 0; r < opt.runs; ++r) {
      std::vector<Tensor> ignored, params;
      settle();
      seq1.push_back(run_sequential(data, opt.warmup, reference, 1));
      settle();
      seq.push_back(run_sequential(data, opt.warmup, ignored, 2));
      settle();
      act.push_back(run_actors(data, config, opt.warmup, params));
      if (!identical(reference, params)) {
        std::fprintf(stderr, "%lldx%lld depth %lld: parameters differ from the sequential run\n",
                     static_cast<long long>(config.micro_batches),
                     static_cast<long long>(config.micro_batch_size),
                     static_cast<long long>(config.depth));
        return 1;
      }
    }
    // Messages per step, from one traced run of the same configuration.
    auto recorder = std::make_shared<TraceRecorder>("runtime_bench");
    std::vector<Tensor> ignored;
    const Data few(data.begin(), data.begin() + std::min<std::int64_t>(4, opt.steps));
    run_actors(few, config, 0, ignored, recorder);
    const auto path = std::filesystem::temp_directory_path() / "troupe_runtime_bench_trace.json";
    recorder->write_chrome_trace(path.string());
    std::int64_t messages = 0;
    for (const auto& t : summarize_chrome_trace(path.string()).tracks)
      messages += t.messages_received;
    std::filesystem::remove(path);

    const double per_step = 1e3 / static_cast<double>(opt.steps);
    const double s = median(seq) * per_step, s1 = median(seq1) * per_step,
                 a = median(act) * per_step;
    std::printf("%5lld x %-6lld %6lld %9lld %14.3f %14.3f %14.3f %9.2f %9.2f %14.1f\n",
                static_cast<long long>(config.micro_batches),
                static_cast<long long>(config.micro_batch_size),
                static_cast<long long>(config.depth), static_cast<long long>(config.replicas), s,
                s1, a, s / a, std::min(s, s1) / a,
                static_cast<double>(messages) / static_cast<double>(few.size()));
  }
  std::printf("All runs ended with parameters bit-identical to the sequential executor's.\n");
  return 0;
}
