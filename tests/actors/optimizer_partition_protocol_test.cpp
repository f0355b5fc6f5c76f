// The optimizer partition's protocol on CAF's deterministic test coordinator: gradient_bucket is
// answered with the Σ g² of each norm chunk of the gradients it is handed, and optimizer_step with
// optimizer_done (those chunk norms, taken before the update) after updating the parameters
// exactly as OptimizerPartition::apply does; with ZeRO-Offload the offload manager runs the step
// and the answers are the same bits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>

#include "actors/offload_manager_actor.hpp"
#include "actors/optimizer_partition_actor.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;

namespace {

constexpr std::int64_t kNumel = kGradNormChunk + 904;  // two norm chunks, the second partial

// One parameter in one partition, values and gradients drawn from fixed seeds: two of these are
// identical, one for the actor and one to compute the expected results directly.
struct OnePartition {
  std::vector<Parameter> storage;
  std::shared_ptr<OptimizerPartition> partition;

  OnePartition() {
    storage.push_back(make_parameter("w", {kNumel}, false));
    std::mt19937 rng(3);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (std::int64_t i = 0; i < kNumel; ++i) {
      storage[0].value.data<float>()[i] = n(rng);
      storage[0].grad.data<float>()[i] = n(rng);
    }
    auto parts = partition_parameters({&storage[0]}, 1);
    REQUIRE(parts.size() == 1);
    partition = std::make_shared<OptimizerPartition>(std::move(parts.front()));
  }
  std::vector<TensorHandle> gradients() const { return {TensorHandle(partition->grads())}; }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

AdamParams adam() {
  AdamParams hp;
  hp.weight_decay = 0.01f;
  hp.adam_w_mode = true;
  return hp;
}

}  // namespace

TEST_CASE("optimizer partition: gradient_bucket is answered with each chunk's squared norm") {
  test::DeterministicSystem actors;
  OnePartition mine;
  const optimizer_partition_actor partition = spawn_optimizer_partition_actor(
      actors.system, mine.partition, adam(), {}, ActorContext{"optimizer", nullptr});

  const Tensor before = mine.partition->grads().clone();
  std::vector<double> norms;
  actors.ask(partition, gradient_bucket{1, mine.gradients(), {}}, [&](const grad_norm_reply& r) {
    CHECK(r.partition == 0);
    norms = r.chunk_squared_norms;
  });
  // Σ g² over [0, 4096) and [4096, kNumel), summed here in double as a check on the chunking.
  REQUIRE(norms.size() == 2);
  double first = 0.0, second = 0.0;
  for (std::int64_t i = 0; i < kNumel; ++i) {
    const double g = before.data<float>()[i];
    (i < kGradNormChunk ? first : second) += g * g;
  }
  CHECK(norms[0] == Approx(first).epsilon(1e-6));
  CHECK(norms[1] == Approx(second).epsilon(1e-6));
  CHECK(norms == mine.partition->chunk_squared_norms(before));
  CHECK(same_bits(mine.partition->grads(), before));  // asking for the norm changes nothing
}

TEST_CASE("optimizer partition: optimizer_step applies the partition's Adam step and reports") {
  const bool offload = GENERATE(false, true);
  INFO((offload ? "with ZeRO-Offload" : "without offload"));
  test::DeterministicSystem actors;
  OnePartition mine, reference;
  offload_manager_actor manager;
  if (offload)
    manager = spawn_offload_manager_actor(actors.system, {mine.partition}, adam(),
                                          ActorContext{"offload_manager", nullptr});
  const optimizer_partition_actor partition = spawn_optimizer_partition_actor(
      actors.system, mine.partition, adam(), manager, ActorContext{"optimizer", nullptr});

  constexpr float kLr = 0.01f, kScale = 0.5f;
  const Tensor initial = mine.partition->values().clone();
  const std::vector<double> expected_norms =
      reference.partition->chunk_squared_norms(reference.partition->grads());
  AdamParams hp = adam();
  hp.lr = kLr;
  reference.partition->apply(hp, 1, kScale, reference.partition->grads());

  bool answered = false;
  actors.ask(partition, optimizer_step{1, kLr, kScale, mine.gradients(), {}},
             [&](const optimizer_done& done) {
               answered = true;
               CHECK(done.partition == 0);
               CHECK(done.step == 1);
               CHECK(done.chunk_squared_norms == expected_norms);
             });
  CHECK(answered);
  CHECK(same_bits(mine.partition->values(), reference.partition->values()));
  CHECK(same_bits(mine.partition->exp_avg(), reference.partition->exp_avg()));
  CHECK_FALSE(same_bits(mine.partition->values(), initial));  // the step did move the values
  // The gradients it was handed are cleared for the next accumulation.
  const Tensor& grads = mine.partition->grads();
  CHECK(std::all_of(grads.data<float>(), grads.data<float>() + grads.numel(),
                    [](float g) { return g == 0.0f; }));
}
