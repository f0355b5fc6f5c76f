// The runtime changes when and where, never what: the actor runtime's losses, gradients and
// parameters after several optimizer steps are bit-identical to the sequential executor's on the
// CPU, for pipeline depths 1, 2 and 4, with the experts split over several shard actors and the
// optimizer state over several partitions (and through the offload manager), and with the input
// stage replicated; and ZeRO-Offload's parameters equal the partitioned runtime's at depths 1-3.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include <caf/all.hpp>

#include "models/lenet_moe.hpp"
#include "scheduler/actor_runtime.hpp"
#include "scheduler/sequential_executor.hpp"
#include "test_util/small_gpt.hpp"

using namespace troupe;

namespace {

constexpr std::int64_t kSteps = 3;
constexpr std::int64_t kMicroBatches = 4;
constexpr std::uint64_t kSeed = 1234;

std::shared_ptr<Model> make_lenet(bool noisy) {
  LeNetMoEConfig c;
  c.channels = 1;
  c.height = c.width = 16;  // small images keep the test fast
  c.num_classes = 5;
  c.moe.num_experts = 4;
  c.moe.k = noisy ? 1 : 2;
  c.moe.capacity_factor = 1.0;
  c.moe.min_capacity = 2;
  c.moe.use_rts = noisy;  // RTS priorities and Jitter noise come from the per-micro-batch streams
  c.moe.noisy_gate_policy = noisy ? "Jitter" : "None";
  c.init_seed = 7;
  return std::make_shared<LeNetMoE>(c);
}

std::shared_ptr<Model> make_gpt() {
  return test::make_small_moe_gpt();
}

// Deterministic synthetic micro-batches shaped for `model`.
std::vector<Batch> make_batches(const std::string& kind, std::int64_t step) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(step) * 977 + 5);
  std::vector<Batch> out;
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    Batch b;
    if (kind == "lenet") {
      b.inputs = Tensor::empty({6, 1, 16, 16});
      std::normal_distribution<float> n(0.0f, 1.0f);
      for (std::int64_t i = 0; i < b.inputs.numel(); ++i) b.inputs.data<float>()[i] = n(rng);
      b.targets = Tensor::empty({6}, DType::i32);
      for (std::int64_t i = 0; i < 6; ++i)
        b.targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 5);
    } else {
      b.inputs = Tensor::empty({3, 8}, DType::i32);
      b.targets = Tensor::empty({3, 8}, DType::i32);
      for (std::int64_t i = 0; i < 24; ++i) {
        b.inputs.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 11);
        b.targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 11);
      }
    }
    out.push_back(b);
  }
  return out;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

struct Trace {
  std::vector<step_result> results;
  std::vector<std::vector<Tensor>> grads;  // per step, before the optimizer
  std::vector<Tensor> params;              // after the last step
  std::vector<double> grad_norms;          // per step, before clipping
};

Trace run_sequential(std::shared_ptr<Model> model, const std::string& kind,
                     std::int64_t partitions) {
  AdamParams adam;
  adam.weight_decay = 0.01f;
  adam.adam_w_mode = true;
  SequentialExecutor exec(model, partitions, adam, kSeed);
  Trace t;
  for (std::int64_t step = 1; step <= kSteps; ++step) {
    t.results.push_back(exec.run_step(step, true, make_batches(kind, step)));
    std::vector<Tensor> grads;
    for (auto* p : model->parameters()) grads.push_back(p->grad.clone());
    t.grads.push_back(grads);
    t.grad_norms.push_back(exec.apply_optimizer(step, 1e-2f, 0.5f));
  }
  for (auto* p : model->parameters()) t.params.push_back(p->value.clone());
  return t;
}

Trace run_actors(std::shared_ptr<Model> model, const std::string& kind, std::int64_t depth,
                 std::int64_t shards, std::int64_t partitions, bool offload,
                 std::int64_t replicas = 1, float clip = 0.5f) {
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  caf::actor_system system(cfg);
  RuntimeOptions opt;
  opt.pipeline_depth = depth;
  opt.expert_shards = shards;
  opt.optimizer_partitions = partitions;
  opt.offload_optimizer = offload;
  opt.stage_replicas = replicas;
  opt.adam.weight_decay = 0.01f;
  opt.adam.adam_w_mode = true;
  opt.seed = kSeed;
  Trace t;
  {
    ActorRuntime runtime(system, model, opt);
    const auto buckets = runtime.gradient_buckets();
    caf::scoped_actor self{system};
    for (std::int64_t step = 1; step <= kSteps; ++step) {
      run_step request{step, true, {}};
      for (auto& b : make_batches(kind, step))
        request.micro_batches.push_back(
            batch_data{TensorHandle(b.inputs), TensorHandle(b.targets)});
      self->request(runtime.pipeline(), caf::infinite, request)
          .receive([&](step_result& r) { t.results.push_back(r); },
                   [&](caf::error& e) { FAIL("run_step failed: " << caf::to_string(e)); });
      std::vector<Tensor> grads;
      for (auto* p : model->parameters()) grads.push_back(p->grad.clone());
      t.grads.push_back(grads);
      std::vector<std::vector<double>> chunks;
      for (std::size_t i = 0; i < runtime.optimizer_partitions().size(); ++i)
        self->request(runtime.optimizer_partitions()[i], caf::infinite,
                      gradient_bucket{step, buckets[i], {}})
            .receive([&](const grad_norm_reply& r) { chunks.push_back(r.chunk_squared_norms); },
                     [&](caf::error& e) { FAIL(caf::to_string(e)); });
      t.grad_norms.push_back(std::sqrt(sum_in_order(chunks)));
      const float scale = clip_coefficient(t.grad_norms.back(), clip);
      for (std::size_t i = 0; i < runtime.optimizer_partitions().size(); ++i)
        self->request(runtime.optimizer_partitions()[i], caf::infinite,
                      optimizer_step{step, 1e-2f, scale, buckets[i], {}})
            .receive([](const optimizer_done&) {}, [&](caf::error& e) { FAIL(caf::to_string(e)); });
    }
  }
  for (auto* p : model->parameters()) t.params.push_back(p->value.clone());
  return t;
}

void require_identical(const Trace& a, const Trace& b) {
  REQUIRE(a.results.size() == b.results.size());
  for (std::size_t s = 0; s < a.results.size(); ++s) {
    INFO("step " << s + 1);
    CHECK(a.results[s].loss == b.results[s].loss);
    CHECK(a.results[s].l_aux == b.results[s].l_aux);
    CHECK(a.results[s].correct == b.results[s].correct);
    CHECK(a.results[s].exp_counts == b.results[s].exp_counts);
    CHECK(a.results[s].dropped == b.results[s].dropped);
    CHECK(a.grad_norms[s] == b.grad_norms[s]);
    for (std::size_t i = 0; i < a.grads[s].size(); ++i) {
      INFO("gradient " << i);
      CHECK(bitwise_equal(a.grads[s][i], b.grads[s][i]));
    }
  }
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    INFO("parameter " << i);
    CHECK(bitwise_equal(a.params[i], b.params[i]));
  }
}

}  // namespace

TEST_CASE("LeNet-MoE: actor runtime is bit-identical to the sequential executor") {
  const bool noisy = GENERATE(false, true);
  const Trace reference = run_sequential(make_lenet(noisy), "lenet", 2);
  // Training must actually move: a runtime that dropped the update would also "agree" with itself.
  REQUIRE(reference.results.front().loss != reference.results.back().loss);
  for (std::int64_t depth : {1, 2, 4}) {
    INFO("depth " << depth << (noisy ? " with RTS + Jitter" : " top-2"));
    require_identical(reference, run_actors(make_lenet(noisy), "lenet", depth, 2, 2, false));
  }
  // A replicated input stage: micro-batches run the convolutions at once on model replicas, and
  // the owner adds their gradients in micro-batch order.
  for (auto [depth, replicas] : {std::pair{2, 2}, std::pair{4, 3}}) {
    INFO("depth " << depth << ", " << replicas << " replicas of segment 0");
    require_identical(reference,
                      run_actors(make_lenet(noisy), "lenet", depth, 2, 2, false, replicas));
  }
}

TEST_CASE("GPT-MoE (two MoE layers): actor runtime is bit-identical, also with ZeRO-Offload") {
  const Trace reference = run_sequential(make_gpt(), "gpt", 3);
  for (std::int64_t depth : {1, 2, 4}) {
    INFO("depth " << depth);
    require_identical(reference, run_actors(make_gpt(), "gpt", depth, 4, 3, depth == 2));
  }
  INFO("depth 2, 2 replicas of segment 0");
  require_identical(reference, run_actors(make_gpt(), "gpt", 2, 4, 3, false, 2));
}

TEST_CASE("ZeRO-Offload gives the partitioned runtime's parameters bit for bit at depths 1 to 3") {
  const std::int64_t depth = GENERATE(1, 2, 3);
  INFO("depth " << depth);
  // A clip threshold below every step's gradient norm, so both scale their updates.
  const float clip = 0.05f;
  const Trace partitioned = run_actors(make_gpt(), "gpt", depth, 2, 3, false, 1, clip);
  const Trace offloaded = run_actors(make_gpt(), "gpt", depth, 2, 3, true, 1, clip);
  for (double norm : partitioned.grad_norms) CHECK(norm > clip);
  // Every parameter moved: an optimizer step that did nothing would also agree with itself.
  const auto fresh = make_gpt();
  const auto initial = fresh->parameters();
  REQUIRE(initial.size() == partitioned.params.size());
  for (std::size_t i = 0; i < initial.size(); ++i) {
    INFO("parameter " << initial[i]->name);
    CHECK_FALSE(bitwise_equal(initial[i]->value, partitioned.params[i]));
  }
  require_identical(partitioned, offloaded);
}
