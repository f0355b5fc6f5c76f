// The runtime's failure behaviour: bad runtime settings are refused with a clear message, and a
// failing actor makes the step fail with an error instead of hanging the caller.
#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include "models/lenet_moe.hpp"
#include "scheduler/actor_runtime.hpp"

using namespace troupe;

TEST_CASE("expert shards must divide the experts sensibly") {
  CHECK(shard_expert_ranges(8, 3) ==
        std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 2}, {2, 5}, {5, 8}});
  CHECK_THROWS_WITH(shard_expert_ranges(4, 5), Catch::Contains("runtime.expert_shards = 5"));
  CHECK_THROWS_AS(shard_expert_ranges(4, 0), std::invalid_argument);
}

TEST_CASE("a micro-batch with bad targets fails the step instead of hanging") {
  LeNetMoEConfig c;
  c.height = c.width = 16;
  c.num_classes = 5;
  c.moe.num_experts = 4;
  c.moe.min_capacity = 2;
  auto model = std::make_shared<LeNetMoE>(c);
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  caf::actor_system system(cfg);
  {
    ActorRuntime runtime(system, model, RuntimeOptions{});
    Tensor inputs = Tensor::zeros({4, 1, 16, 16});
    Tensor targets = Tensor::empty({4}, DType::i32);
    for (int i = 0; i < 4; ++i) targets.data<std::int32_t>()[i] = 9;  // ≥ num_classes: invalid
    caf::scoped_actor self{system};
    bool failed = false;
    self->request(runtime.pipeline(), std::chrono::seconds(30),
                  run_step{1, true, {batch_data{TensorHandle(inputs), TensorHandle(targets)}}})
        .receive([](const step_result&) {},
                 [&](const caf::error& e) {
                   failed = true;
                   CHECK(e != caf::sec::request_timeout);
                 });
    CHECK(failed);
  }
}
