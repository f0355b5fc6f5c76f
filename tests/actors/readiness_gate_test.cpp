// A handle that is not ready is waited for as a message, and waiting keeps the sender's order.
// Under CAF's deterministic test coordinator an expert shard gets the backward passes of
// micro-batches 0 and 1; micro-batch 0's gradient is not ready yet (a ManualEvent standing in for
// a CUDA event). Micro-batch 1's, although ready, must wait behind it: the shard accumulates
// parameter gradients in arrival order and the runtime promises micro-batch order. Nothing runs
// until the test completes the event and drives the completion source.
#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include "actors/expert_shard_actor.hpp"
#include "models/lenet_moe.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/moe_test_util.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;

TEST_CASE("a deferred gradient holds back the sender's later messages, then both run in order") {
  test::DeterministicSystem deterministic;
  caf::actor_system& system = deterministic.system;
  caf::scheduler::test_coordinator& sched = deterministic.sched;

  LeNetMoEConfig c;
  c.height = c.width = 16;
  c.moe.num_experts = 2;
  c.init_seed = 1;
  auto model = std::make_shared<LeNetMoE>(c);
  const std::int64_t d = model->moe_layer(0).config().hidden_size;
  auto source = std::make_shared<DrivenCompletionSource>();
  const ExpertShardSpec spec{0, 0, 0, 2};
  auto shard =
      spawn_expert_shard_actor(system, model, spec, ActorContext{"shard", nullptr, source});

  caf::scoped_actor self{system};
  const std::vector<std::int64_t> offsets{0, 2, 3};  // 2 rows for expert 0, 1 for expert 1
  for (std::int64_t m = 0; m < 2; ++m)
    self->send(shard, expert_forward{MicroBatchKey{1, m},
                                     true,
                                     TensorHandle(test::random_tensor({3, d}, 10 + m)),
                                     offsets,
                                     {}});
  sched.run();
  const auto missing = caf::after(std::chrono::seconds(0)) >> [] { FAIL("no expert_output"); };
  for (int i = 0; i < 2; ++i)
    self->receive([](const expert_output& out) { CHECK_FALSE(out.backward); }, missing);

  auto pending = std::make_shared<ManualEvent>("gradient of micro-batch 0");
  self->send(shard, expert_backward{
                        MicroBatchKey{1, 0},
                        TensorHandle(test::random_tensor({3, d}, 20), Readiness::after(pending)),
                        {}});
  self->send(shard, expert_backward{
                        MicroBatchKey{1, 1}, TensorHandle(test::random_tensor({3, d}, 21)), {}});
  sched.run();
  CHECK(source->watching() == 1);
  bool early = false;
  self->receive([&](const expert_output&) { early = true; },
                caf::after(std::chrono::seconds(0)) >> [] {});
  CHECK_FALSE(early);  // micro-batch 1 waited behind micro-batch 0

  CHECK(source->poll() == 0);  // not ready yet: nothing is delivered
  pending->set();
  CHECK(source->poll() == 1);
  sched.run();
  std::vector<std::int64_t> order;
  for (int i = 0; i < 2; ++i)
    self->receive(
        [&](const expert_output& out) {
          CHECK(out.backward);
          order.push_back(out.key.micro_batch);
        },
        missing);
  CHECK(order == std::vector<std::int64_t>{0, 1});
  caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
  sched.run();
}
