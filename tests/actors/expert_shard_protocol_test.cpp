// The expert shard's protocol on CAF's deterministic test coordinator: expert_forward is answered
// with an expert_output holding exactly the rows the model's experts compute when run directly on
// the shard's range, and expert_backward with the exact input gradient, the shard's experts'
// parameter gradients accumulated as a direct backward accumulates them.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "actors/expert_shard_actor.hpp"
#include "models/lenet_moe.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/moe_test_util.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;

namespace {

std::shared_ptr<LeNetMoE> small_model() {
  LeNetMoEConfig c;
  c.height = c.width = 16;
  c.moe.num_experts = 3;
  c.init_seed = 5;
  return std::make_shared<LeNetMoE>(c);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("expert shard: forward and backward answer with the experts' exact results") {
  test::DeterministicSystem actors;
  auto model = small_model();
  auto reference = small_model();  // same seed: the same expert weights
  Experts& direct = reference->moe_layer(0).experts();
  const std::int64_t d = model->moe_layer(0).config().hidden_size;

  // The second shard of a layer: local experts [1, 3), offsets relative to the shard.
  const ExpertShardSpec spec{0, 1, 1, 3};
  const expert_shard_actor shard =
      spawn_expert_shard_actor(actors.system, model, spec, ActorContext{"shard", nullptr});
  caf::scoped_actor self{actors.system};
  const auto none = caf::after(std::chrono::seconds(0)) >> [] { FAIL("no expert_output"); };

  const std::vector<std::int64_t> offsets{0, 3, 5};  // 3 rows for expert 1, 2 for expert 2
  const Tensor rows = test::random_tensor({5, d}, 7);
  const MicroBatchKey key{2, 0};
  self->send(shard, expert_forward{key, true, TensorHandle(rows), offsets, {}});
  actors.sched.run();
  ExpertActivations saved;
  const Tensor expected_out = direct.forward(1, 3, rows, offsets, saved);
  self->receive(
      [&](const expert_output& out) {
        CHECK(out.key == key);
        CHECK(out.layer == 0);
        CHECK(out.shard == 1);
        CHECK_FALSE(out.backward);
        CHECK(same_bits(out.rows.tensor(), expected_out));
      },
      none);

  const Tensor grad_out = test::random_tensor({5, d}, 8);
  self->send(shard, expert_backward{key, TensorHandle(grad_out), {}});
  actors.sched.run();
  const Tensor expected_grad = direct.backward(1, 3, grad_out, saved);
  self->receive(
      [&](const expert_output& out) {
        CHECK(out.key == key);
        CHECK(out.shard == 1);
        CHECK(out.backward);
        CHECK(same_bits(out.rows.tensor(), expected_grad));
      },
      none);
  const auto got = model->moe_layer(0).experts().parameters();
  const auto want = direct.parameters();
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(got[i]->name);
    CHECK(same_bits(got[i]->grad, want[i]->grad));
  }
  // The shard really computed something: its experts' gradients are not all zero.
  const Tensor& w1_grad = got[0]->grad;
  bool nonzero = false;
  for (std::int64_t i = 0; i < w1_grad.numel() && !nonzero; ++i)
    nonzero = w1_grad.data<float>()[i] != 0.0f;
  CHECK(nonzero);
}
