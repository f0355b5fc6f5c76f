// What the actor runtime gains over the sequential executor on the main job's model.
//
// Trains the Fashion-MNIST LeNet-MoE (28×28 inputs, 8 experts, top-2, dropless, Adam) for a few
// steps on synthetic data with the SequentialExecutor and with the ActorRuntime at several
// pipeline depths, and reports steps per second. Before timing anything it checks that every run
// ends with parameters bit-identical to the sequential run's (the runtime must change when and
// where, never what) and exits 1 if not.
//
//   troupe_bench_runtime [--steps 60] [--micro-batches 2] [--micro-batch-size 32]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include <caf/all.hpp>

#include "kernels/cpu/gemm.hpp"
#include "models/lenet_moe.hpp"
#include "scheduler/actor_runtime.hpp"
#include "scheduler/sequential_executor.hpp"

namespace {

using namespace troupe;

struct Options {
  std::int64_t steps = 60;
  std::int64_t micro_batches = 2;
  std::int64_t micro_batch_size = 32;
};

std::shared_ptr<Model> make_model() {
  LeNetMoEConfig c;  // 1×28×28, 10 classes, 8 experts (set below), fc3 width 84
  c.moe.num_experts = 8;
  c.moe.k = 2;
  c.moe.drop_tokens = false;
  c.init_seed = 1;
  return std::make_shared<LeNetMoE>(c);
}

std::vector<std::vector<Batch>> make_data(const Options& opt) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> pixel(0.0f, 1.0f);
  std::vector<std::vector<Batch>> steps(static_cast<std::size_t>(opt.steps));
  for (auto& step : steps)
    for (std::int64_t m = 0; m < opt.micro_batches; ++m) {
      Batch b{Tensor::empty({opt.micro_batch_size, 1, 28, 28}),
              Tensor::empty({opt.micro_batch_size}, DType::i32)};
      for (std::int64_t i = 0; i < b.inputs.numel(); ++i) b.inputs.data<float>()[i] = pixel(rng);
      for (std::int64_t i = 0; i < opt.micro_batch_size; ++i)
        b.targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 10);
      step.push_back(b);
    }
  return steps;
}

std::vector<Tensor> snapshot(Model& model) {
  std::vector<Tensor> out;
  for (auto* p : model.parameters()) out.push_back(p->value.clone());
  return out;
}

double run_sequential(const std::vector<std::vector<Batch>>& data, std::vector<Tensor>& params) {
  auto model = make_model();
  SequentialExecutor exec(model, 2, AdamParams{}, 42);
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t s = 0; s < data.size(); ++s) {
    const auto step = static_cast<std::int64_t>(s) + 1;
    exec.run_step(step, true, data[s]);
    exec.apply_optimizer(step, 1e-3f, 0.0f);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  params = snapshot(*model);
  return seconds;
}

double run_actors(const std::vector<std::vector<Batch>>& data, std::int64_t depth,
                  const std::string& policy, std::vector<Tensor>& params) {
  auto model = make_model();
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  cfg.set("scheduler.policy", caf::atom_from_string(policy));
  caf::actor_system system(cfg);
  RuntimeOptions ro;
  ro.pipeline_depth = depth;
  ro.expert_shards = 2;
  ro.optimizer_partitions = 2;
  ro.seed = 42;
  double seconds = 0.0;
  {
    ActorRuntime runtime(system, model, ro);
    const auto buckets = runtime.gradient_buckets();
    caf::scoped_actor self{system};
    bool failed = false;
    auto on_error = [&](const caf::error& e) {
      std::fprintf(stderr, "error: %s\n", caf::to_string(e).c_str());
      failed = true;
    };
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t s = 0; s < data.size() && !failed; ++s) {
      const auto step = static_cast<std::int64_t>(s) + 1;
      run_step request{step, true, {}};
      for (const auto& b : data[s])
        request.micro_batches.push_back(
            batch_data{TensorHandle(b.inputs), TensorHandle(b.targets)});
      self->request(runtime.pipeline(), caf::infinite, request)
          .receive([](const step_result&) {}, on_error);
      // Clipping is off, so the norms are only collected, as the trainer does.
      for (std::size_t i = 0; i < buckets.size(); ++i)
        self->request(runtime.optimizer_partitions()[i], caf::infinite,
                      gradient_bucket{step, buckets[i], {}})
            .receive([](const grad_norm_reply&) {}, on_error);
      for (const auto& p : runtime.optimizer_partitions())
        self->request(p, caf::infinite, optimizer_step{step, 1e-3f, 1.0f, {}})
            .receive([](const optimizer_done&) {}, on_error);
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (failed) std::exit(1);
  }
  params = snapshot(*model);
  return seconds;
}

bool identical(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()) != 0) return false;
  return a.size() == b.size();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Actor runtime vs sequential executor on the LeNet-MoE main-job model"};
  app.add_option("--steps", opt.steps, "Optimizer steps per run")->check(CLI::PositiveNumber);
  app.add_option("--micro-batches", opt.micro_batches, "Micro-batches per step")
      ->check(CLI::PositiveNumber);
  app.add_option("--micro-batch-size", opt.micro_batch_size, "Images per micro-batch")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  troupe::cpu::set_blas_threads(1);  // as `troupe train` runs it

  const auto data = make_data(opt);
  std::vector<Tensor> reference, params;
  const double sequential = run_sequential(data, reference);
  struct Row {
    std::string policy;
    std::int64_t depth;
    double seconds;
  };
  std::vector<Row> rows;
  for (const std::string policy : {"stealing", "sharing"})
    for (std::int64_t depth : {1, 2, 4}) {
      const double seconds = run_actors(data, depth, policy, params);
      if (!identical(reference, params)) {
        std::fprintf(stderr, "depth %lld: parameters differ from the sequential executor's\n",
                     static_cast<long long>(depth));
        return 1;
      }
      rows.push_back({policy, depth, seconds});
    }
  std::printf("All runs end with bit-identical parameters. %lld steps of %lld x %lld images:\n",
              static_cast<long long>(opt.steps), static_cast<long long>(opt.micro_batches),
              static_cast<long long>(opt.micro_batch_size));
  std::printf("%-22s %10s %12s %8s\n", "executor", "seconds", "steps/s", "speed-up");
  const auto steps = static_cast<double>(opt.steps);
  std::printf("%-22s %10.3f %12.1f %8.2f\n", "sequential", sequential, steps / sequential, 1.0);
  for (const auto& r : rows)
    std::printf("actors, %-8s depth %lld %10.3f %12.1f %8.2f\n", r.policy.c_str(),
                static_cast<long long>(r.depth), r.seconds, steps / r.seconds,
                sequential / r.seconds);
  return 0;
}
