// The trainer actor's optimizer flow (gradient norm from the partitions, clipping, Adam step with
// the step's learning rate) is bit-identical to the sequential executor's, with clipping active:
// a small GPT-MoE trained for several steps through the actors as `troupe train` wires them
// (data actor → trainer → scheduler → optimizer partitions) ends with the same parameters, bit for
// bit, as the sequential executor fed the same batches, and the trainer reports the same losses
// and gradient norms (all above the clip threshold).
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <random>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/data_actor.hpp"
#include "actors/trainer_actor.hpp"
#include "data/batcher.hpp"
#include "data/text_dataset.hpp"
#include "scheduler/actor_runtime.hpp"
#include "scheduler/sequential_executor.hpp"
#include "test_util/small_gpt.hpp"
#include "test_util/temp_dir.hpp"

using namespace troupe;

namespace {

constexpr std::int64_t kSteps = 4;
constexpr std::int64_t kMicroBatches = 3;  // per step
constexpr std::int64_t kBatch = 2;         // windows per micro-batch
constexpr std::int64_t kSeqLen = 8;        // the small GPT's
constexpr std::int64_t kPartitions = 3;
constexpr std::uint64_t kSeed = 21;
// Well below the gradient norm of this model at init (≈ 1), so every step clips.
constexpr float kClip = 0.05f;

float learning_rate(std::int64_t step) {
  return 1e-2f / static_cast<float>(step);
}

AdamParams adam() {
  AdamParams a;
  a.weight_decay = 0.01f;
  a.adam_w_mode = true;
  return a;
}

// Random tokens of the small GPT's vocabulary (11), cut into seq_len windows.
std::shared_ptr<const TokenWindows> windows(std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(count * kSeqLen + 1));
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng() % 11);
  return std::make_shared<TokenWindows>(std::move(tokens), kSeqLen);
}

BatcherOptions batcher_options() {
  BatcherOptions o;
  o.batch_size = kBatch;
  o.seed = kSeed;
  return o;
}

std::vector<Tensor> parameter_values(Model& model) {
  std::vector<Tensor> out;
  for (auto* p : model.parameters()) out.push_back(p->value.clone());
  return out;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

struct Run {
  std::vector<double> losses;
  std::vector<double> grad_norms;  // before clipping
  std::vector<Tensor> params;      // after the last step
};

// The sequential executor on the batches the data actor hands out (the same Batcher, in order).
Run run_sequential(std::shared_ptr<const Dataset> train) {
  auto model = test::make_small_moe_gpt();
  SequentialExecutor exec(model, kPartitions, adam(), kSeed);
  Batcher batcher(std::move(train), batcher_options());
  Run run;
  for (std::int64_t step = 1; step <= kSteps; ++step) {
    std::vector<Batch> batches(kMicroBatches);
    for (auto& b : batches) batcher.next(b.inputs, b.targets);
    run.losses.push_back(exec.run_step(step, true, batches).loss);
    run.grad_norms.push_back(exec.apply_optimizer(step, learning_rate(step), kClip));
  }
  run.params = parameter_values(*model);
  return run;
}

// The trainer actor driving the actor runtime; losses and norms read back from its metrics file.
Run run_trainer(std::shared_ptr<const Dataset> train, std::shared_ptr<const Dataset> eval) {
  const test::TempDir dir("trainer_flow");
  auto model = test::make_small_moe_gpt();
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  caf::actor_system system(cfg);
  {
    RuntimeOptions ro;
    ro.pipeline_depth = 2;
    ro.expert_shards = 2;
    ro.optimizer_partitions = kPartitions;
    ro.adam = adam();
    ro.seed = kSeed;
    ActorRuntime runtime(system, model, ro);

    DataActorOptions data;
    data.train = batcher_options();
    data.eval_batch_size = kBatch;
    auto data_actor = spawn_data_actor(system, train, eval, data, {"data", nullptr, nullptr});

    TrainerOptions to;
    to.total_steps = kSteps;
    to.micro_batches_per_step = kMicroBatches;
    to.samples_per_micro_batch = kBatch;
    to.learning_rate = learning_rate;
    to.gradient_clipping = kClip;
    to.log_interval = kSteps;
    to.metrics_file = dir.file("metrics.jsonl");
    to.language_model = true;
    TrainerLinks links{data_actor, runtime.pipeline(), runtime.optimizer_partitions(),
                       runtime.gradient_buckets(), runtime.gradient_reductions()};
    auto trainer = spawn_trainer_actor(system, model, to, links, {"trainer", nullptr, nullptr});

    caf::scoped_actor self{system};
    // A step takes milliseconds; a minute without a reply is a hang.
    self->request(trainer, std::chrono::seconds(60), start_training{})
        .receive([](const training_summary& s) { CHECK(s.steps == kSteps); },
                 [](const caf::error& e) { FAIL("training failed: " << caf::to_string(e)); });
    self->send_exit(trainer, caf::exit_reason::user_shutdown);
    self->send_exit(data_actor, caf::exit_reason::user_shutdown);
  }
  Run run;
  std::ifstream in(dir.file("metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("type") != "train") continue;
    CHECK(j.at("step").get<std::int64_t>() == static_cast<std::int64_t>(run.losses.size()) + 1);
    run.losses.push_back(j.at("loss").get<double>());
    run.grad_norms.push_back(j.at("grad_norm").get<double>());
  }
  run.params = parameter_values(*model);
  return run;
}

}  // namespace

TEST_CASE("trainer actor with gradient clipping is bit-identical to the sequential executor") {
  const auto train = windows(kSteps * kMicroBatches * kBatch, 5);
  const auto eval = windows(3, 6);
  const Run reference = run_sequential(train);
  REQUIRE(reference.losses.front() != reference.losses.back());  // training moved
  for (double norm : reference.grad_norms) CHECK(norm > kClip);  // clipping scaled every step

  const Run actors = run_trainer(train, eval);
  // JSON keeps doubles exactly (shortest round-trip form), so these compare bit for bit.
  CHECK(actors.losses == reference.losses);
  CHECK(actors.grad_norms == reference.grad_norms);
  REQUIRE(actors.params.size() == reference.params.size());
  for (std::size_t i = 0; i < actors.params.size(); ++i) {
    INFO("parameter " << i);
    CHECK(bitwise_equal(actors.params[i], reference.params[i]));
  }
}
