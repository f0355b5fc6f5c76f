// Collectives are issued in the round's schedule order whatever order the actors happen to run in.
// The deterministic test coordinator runs the actor graph of a two-MoE-layer GPT at depth 2 one
// message at a time, picking the next actor at random (several seeds); the comm actor must issue
// exactly the schedule (comm/collective_schedule.hpp) and finish the step, with micro-batch 1's
// forward dispatch before micro-batch 0's backward dispatch: a sorted key order would serialise
// the pipeline there.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include <caf/all.hpp>

#include "scheduler/actor_runtime.hpp"
#include "test_util/deterministic_system.hpp"
#include "test_util/small_gpt.hpp"

using namespace troupe;

namespace {

std::shared_ptr<Model> make_gpt() {
  return test::make_small_moe_gpt();
}

run_step make_step(std::int64_t micro_batches) {
  std::mt19937_64 rng(11);
  run_step step{1, true, {}};
  for (std::int64_t m = 0; m < micro_batches; ++m) {
    Tensor x = Tensor::empty({2, 8}, DType::i32), y = Tensor::empty({2, 8}, DType::i32);
    for (std::int64_t i = 0; i < 16; ++i) {
      x.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 11);
      y.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 11);
    }
    step.micro_batches.push_back(batch_data{TensorHandle(x), TensorHandle(y)});
  }
  return step;
}

std::int64_t index_of(const std::vector<CollectiveSlot>& order, const CollectiveSlot& slot) {
  const auto it = std::find(order.begin(), order.end(), slot);
  REQUIRE(it != order.end());
  return it - order.begin();
}

}  // namespace

TEST_CASE("shuffled arrivals: the comm actor issues the schedule's order and the step finishes") {
  constexpr std::int64_t kMicroBatches = 2, kDepth = 2;
  const auto seed = GENERATE(1u, 2u, 3u, 4u, 5u);
  INFO("shuffle seed " << seed);
  test::DeterministicSystem deterministic;
  caf::actor_system& system = deterministic.system;
  caf::scheduler::test_coordinator& sched = deterministic.sched;

  std::vector<CollectiveSlot> issued;
  RuntimeOptions opt;
  opt.pipeline_depth = kDepth;
  opt.expert_shards = 2;
  opt.comm_observer = [&](const CollectiveSlot& s) { issued.push_back(s); };
  opt.comm_schedule_order = true;  // the order every rank keeps between ranks
  {
    ActorRuntime runtime(system, make_gpt(), opt);
    caf::scoped_actor self{system};
    self->send(runtime.pipeline(), make_step(kMicroBatches));
    std::mt19937 pick(seed);
    std::size_t steps = 0;
    while (sched.has_job()) {
      std::uniform_int_distribution<std::size_t> any(0, sched.jobs.size() - 1);
      std::rotate(sched.jobs.begin(), sched.jobs.begin() + static_cast<long>(any(pick)),
                  sched.jobs.end());
      sched.run_once();
      REQUIRE(++steps < 100000);
    }
    bool answered = false;
    self->receive([&](const step_result& r) { answered = std::isfinite(r.loss); },
                  [&](const caf::error& e) { FAIL(caf::to_string(e)); },
                  caf::after(std::chrono::seconds(0)) >> [] {});
    CHECK(answered);
    runtime.shutdown();
    sched.run();
  }
  const auto expected = collective_schedule({kMicroBatches, kDepth, 2, true});
  CHECK(issued == expected);
  using P = CollectivePhase;
  CHECK(index_of(issued, {1, 0, P::dispatch_forward}) <
        index_of(issued, {0, 1, P::dispatch_backward}));
}
