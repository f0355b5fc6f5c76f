// The pipeline overlaps micro-batches, shown without timing: under CAF's deterministic test
// coordinator the expert shard is held (its jobs are not run) while every other actor runs until
// nothing else can. By then the gate must have routed and dispatched micro-batch 1 while
// micro-batch 0's experts had not run: the comm actor issued both dispatches, the shard holds both
// requests, and the scheduler has admitted exactly `depth` of the 4 micro-batches. Released, the
// step completes and micro-batches 2 and 3 enter only as earlier ones finish.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include <caf/all.hpp>

#include "models/lenet_moe.hpp"
#include "scheduler/actor_runtime.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;

namespace {

std::shared_ptr<Model> make_lenet() {
  LeNetMoEConfig c;
  c.height = c.width = 16;
  c.num_classes = 5;
  c.moe.num_experts = 2;
  c.moe.k = 1;
  c.moe.min_capacity = 2;
  c.init_seed = 5;
  return std::make_shared<LeNetMoE>(c);
}

run_step make_step(std::int64_t micro_batches) {
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  run_step step{1, true, {}};
  for (std::int64_t m = 0; m < micro_batches; ++m) {
    Tensor x = Tensor::empty({3, 1, 16, 16});
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
    Tensor y = Tensor::empty({3}, DType::i32);
    for (std::int64_t i = 0; i < 3; ++i)
      y.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 5);
    step.micro_batches.push_back(batch_data{TensorHandle(x), TensorHandle(y)});
  }
  return step;
}

}  // namespace

TEST_CASE("a held expert shard does not stop the gate from routing the next micro-batch") {
  constexpr std::int64_t kDepth = 2, kMicroBatches = 4;
  test::DeterministicSystem deterministic;
  caf::actor_system& system = deterministic.system;
  caf::scheduler::test_coordinator& sched = deterministic.sched;

  std::vector<CollectiveSlot> issued;
  RuntimeOptions opt;
  opt.pipeline_depth = kDepth;
  opt.expert_shards = 1;
  opt.comm_observer = [&](const CollectiveSlot& s) { issued.push_back(s); };
  {
    ActorRuntime runtime(system, make_lenet(), opt);
    caf::scoped_actor self{system};
    self->send(runtime.pipeline(), make_step(kMicroBatches));
    REQUIRE(runtime.expert_shards().size() == 1);
    auto* shard = caf::actor_cast<caf::abstract_actor*>(runtime.expert_shards().front());
    auto is_shard = [shard](caf::resumable* job) {
      return dynamic_cast<caf::abstract_actor*>(job) == shard;
    };
    std::size_t ran = 0;
    while (sched.run_jobs_filtered([&](caf::resumable* job) { return !is_shard(job); }) > 0)
      REQUIRE(++ran < 10000);

    using P = CollectivePhase;
    // Both admitted micro-batches were routed and dispatched; nothing came back from the experts.
    REQUIRE(issued.size() == 2);
    CHECK(issued[0] == CollectiveSlot{0, 0, P::dispatch_forward});
    CHECK(issued[1] == CollectiveSlot{1, 0, P::dispatch_forward});
    // Only the held shard has work left, and the scheduler admitted no more than `depth`.
    REQUIRE(sched.jobs.size() == 1);
    CHECK(is_shard(sched.jobs.front()));

    sched.run();
    bool answered = false;
    self->receive([&](const step_result& r) { answered = r.count == 3 * kMicroBatches; },
                  [&](const caf::error& e) { FAIL(caf::to_string(e)); },
                  caf::after(std::chrono::seconds(0)) >> [] {});
    CHECK(answered);
    // Micro-batch 2 is dispatched only after micro-batch 0 has finished its last collective.
    const auto first_of_2 = std::find_if(
        issued.begin(), issued.end(), [](const CollectiveSlot& s) { return s.micro_batch == 2; });
    const auto last_of_0 =
        std::find(issued.begin(), issued.end(), CollectiveSlot{0, 0, P::combine_backward});
    REQUIRE(first_of_2 != issued.end());
    REQUIRE(last_of_0 != issued.end());
    CHECK(last_of_0 < first_of_2);
    runtime.shutdown();
    sched.run();
  }
}
