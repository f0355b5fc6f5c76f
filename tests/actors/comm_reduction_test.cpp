// The comm actor's gradient reduction protocol on the deterministic test coordinator:
// reduce_gradients issues an all_reduce on the group's communicator and answers only once the
// collective has finished (its completion arrives as a message, as from a progress thread), then
// with the sum scaled; a failed collective is an error reply naming it; a group of one replies at
// once and leaves the gradients as they are.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <vector>

#include "actors/comm_actor.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;
using Catch::Matchers::Contains;

namespace {

// Rank 0 of a two-rank group whose other rank the test plays: an all_reduce stays pending until
// the test finishes it with the peer's contribution (rank order: own + peer) or fails it.
class ScriptedPeerCommunicator final : public Communicator {
 public:
  ScriptedPeerCommunicator() : Communicator(0, 2, Device::cpu()) {}
  std::string describe() const override { return "scripted comm, rank 0 of 2"; }

  struct Pending {
    Tensor tensor;
    CommRequestPtr request;
  };
  std::vector<Pending> pending;

  void finish_with_peer(std::size_t i, const std::vector<float>& peer) {
    float* x = pending.at(i).tensor.data<float>();
    for (std::size_t j = 0; j < peer.size(); ++j) x[j] = x[j] + peer[j];
    pending.at(i).request->complete();
  }

 protected:
  CommRequestPtr do_all_reduce(const Tensor& tensor, CommStream) override {
    pending.push_back({tensor, std::make_shared<CommRequest>("all_reduce")});
    return pending.back().request;
  }
  CommRequestPtr do_all_to_all_v(const Tensor&, const std::vector<std::int64_t>&, const Tensor&,
                                 const std::vector<std::int64_t>&, std::size_t,
                                 CommStream) override {
    throw std::logic_error("not used");
  }
  CommRequestPtr do_reduce_scatter(const Tensor&, const Tensor&, CommStream) override {
    throw std::logic_error("not used");
  }
  CommRequestPtr do_all_gather(const Tensor&, const Tensor&, CommStream) override {
    throw std::logic_error("not used");
  }
  CommRequestPtr do_broadcast(const Tensor&, int, CommStream) override {
    throw std::logic_error("not used");
  }
  CommRequestPtr do_barrier(CommStream) override { throw std::logic_error("not used"); }
  CommRequestPtr do_send(const Tensor&, int, std::uint32_t, CommStream) override {
    throw std::logic_error("not used");
  }
  CommRequestPtr do_recv(const Tensor&, int, std::uint32_t, CommStream) override {
    throw std::logic_error("not used");
  }
};

comm_actor spawn_reducer(caf::actor_system& system, std::shared_ptr<Communicator> communicator) {
  CommActorSpec spec;
  spec.communicator = std::move(communicator);
  return spawn_comm_actor(system, std::move(spec), ActorContext{"comm.dp", nullptr});
}

}  // namespace

TEST_CASE("reduce_gradients answers after the all_reduce finishes, with the scaled sum") {
  test::DeterministicSystem actors;
  auto communicator = std::make_shared<ScriptedPeerCommunicator>();
  const comm_actor reducer = spawn_reducer(actors.system, communicator);
  const Tensor dense = Tensor::from_vector({1.0f, -2.0f, 3.5f}, {3});
  const Tensor expert = Tensor::from_vector({0.25f, 8.0f}, {2});

  caf::scoped_actor self{actors.system};
  auto reply =
      self->request(reducer, caf::infinite,
                    reduce_gradients{7, {TensorHandle(dense), TensorHandle(expert)}, 0.5f});
  actors.sched.run();
  REQUIRE(communicator->pending.size() == 2);  // one collective per buffer, both issued at once
  CHECK(self->mailbox().empty());              // no answer while they are in flight

  communicator->finish_with_peer(1, {0.75f, -4.0f});
  actors.sched.run();
  CHECK(self->mailbox().empty());  // one of two finished
  communicator->finish_with_peer(0, {3.0f, 6.0f, -0.5f});
  actors.sched.run();
  REQUIRE_FALSE(self->mailbox().empty());
  std::move(reply).receive([](const gradients_reduced& r) { CHECK(r.step == 7); },
                           [](caf::error& e) { FAIL(caf::to_string(e)); });
  // (own + peer) · 1/2, exact in binary.
  CHECK(dense.to_vector() == std::vector<float>{2.0f, 2.0f, 1.5f});
  CHECK(expert.to_vector() == std::vector<float>{0.5f, 2.0f});
}

TEST_CASE("a failed gradient all_reduce is an error reply naming it") {
  test::DeterministicSystem actors;
  auto communicator = std::make_shared<ScriptedPeerCommunicator>();
  const comm_actor reducer = spawn_reducer(actors.system, communicator);
  const Tensor grads = Tensor::from_vector({1.0f}, {1});
  caf::scoped_actor self{actors.system};
  auto reply =
      self->request(reducer, caf::infinite, reduce_gradients{3, {TensorHandle(grads)}, 1.0f});
  actors.sched.run();
  REQUIRE(communicator->pending.size() == 1);
  communicator->pending[0].request->fail("all_reduce: peer rank 1 is gone");
  actors.sched.run();
  REQUIRE_FALSE(self->mailbox().empty());
  std::move(reply).receive([](const gradients_reduced&) { FAIL("a failed reduction succeeded"); },
                           [](caf::error& e) {
                             const auto text = caf::to_string(e);
                             CHECK_THAT(text, Contains("gradient reduction of step 3 failed"));
                             CHECK_THAT(text, Contains("peer rank 1 is gone"));
                           });
}

TEST_CASE("a group of one process reduces nothing: gradients keep every bit") {
  test::DeterministicSystem actors;
  const comm_actor reducer = spawn_reducer(actors.system, nullptr);  // LocalCommunicator
  const std::vector<float> values{0.1f, -3.0e-8f, 12345.678f};
  const Tensor grads = Tensor::from_vector(values, {3});
  actors.ask(reducer, reduce_gradients{1, {TensorHandle(grads)}, 1.0f},
             [](const gradients_reduced& r) { CHECK(r.step == 1); });
  CHECK(grads.to_vector() == values);
}
