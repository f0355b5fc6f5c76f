// The comm actor's gradient reduction protocol on the deterministic test coordinator:
// reduce_gradients issues an all_reduce on the group's communicator and answers only once the
// collective has finished (its completion arrives as a message, as from a progress thread), then
// with the sum scaled; a failed collective is an error reply naming it; a group of one replies at
// once and leaves the gradients as they are. Under ZeRO stage 1 over ranks, reduce_gradients with
// `scatter` reduce-scatters into this rank's range and clears the rest, and gather_parameters
// all-gathers every rank's range of the values.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <vector>

#include "actors/comm_actor.hpp"
#include "models/optimizer_partition.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;
using Catch::Matchers::Contains;

namespace {

// One rank of a two-rank group whose other rank the test plays: a collective stays pending until
// the test finishes it with the peer's contribution or fails it. (Two terms: own + peer is the
// rank-order sum on either rank.)
class ScriptedPeerCommunicator final : public Communicator {
 public:
  explicit ScriptedPeerCommunicator(int rank = 0) : Communicator(rank, 2, Device::cpu()) {}
  std::string describe() const override { return "scripted comm of 2"; }

  struct Pending {
    Tensor tensor;  // all_reduce's tensor, or the send buffer
    Tensor recv;
    CommRequestPtr request;
  };
  std::vector<Pending> pending;

  // all_reduce: tensor += peer.
  void finish_with_peer(std::size_t i, const std::vector<float>& peer) {
    float* x = pending.at(i).tensor.data<float>();
    for (std::size_t j = 0; j < peer.size(); ++j) x[j] = x[j] + peer[j];
    pending.at(i).request->complete();
  }
  // reduce_scatter: recv = this rank's chunk of own send + the peer's send.
  void finish_scatter_with_peer(std::size_t i, const std::vector<float>& peer_send) {
    const auto& p = pending.at(i);
    const std::int64_t n = p.recv.numel();
    for (std::int64_t j = 0; j < n; ++j)
      p.recv.data<float>()[j] = p.tensor.data<float>()[rank() * n + j] +
                                peer_send.at(static_cast<std::size_t>(rank() * n + j));
    p.request->complete();
  }
  // all_gather: recv = the ranks' chunks in rank order.
  void finish_gather_with_peer(std::size_t i, const std::vector<float>& peer_chunk) {
    const auto& p = pending.at(i);
    const std::int64_t n = p.tensor.numel();
    for (std::int64_t j = 0; j < n; ++j) {
      p.recv.data<float>()[rank() * n + j] = p.tensor.data<float>()[j];
      p.recv.data<float>()[(1 - rank()) * n + j] = peer_chunk.at(static_cast<std::size_t>(j));
    }
    p.request->complete();
  }

 protected:
  CommRequestPtr do_all_reduce(const Tensor& tensor, CommStream) override {
    pending.push_back({tensor, Tensor(), std::make_shared<CommRequest>("all_reduce")});
    return pending.back().request;
  }
  CommRequestPtr do_all_to_all_v(const Tensor&, const std::vector<std::int64_t>&, const Tensor&,
                                 const std::vector<std::int64_t>&, std::size_t,
                                 CommStream) override {
    throw std::logic_error("not used");
  }
  CommRequestPtr do_reduce_scatter(const Tensor& send, const Tensor& recv, CommStream) override {
    pending.push_back({send, recv, std::make_shared<CommRequest>("reduce_scatter")});
    return pending.back().request;
  }
  CommRequestPtr do_all_gather(const Tensor& send, const Tensor& recv, CommStream) override {
    pending.push_back({send, recv, std::make_shared<CommRequest>("all_gather")});
    return pending.back().request;
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

TEST_CASE(
    "reduce_gradients with scatter: this rank's range gets the scaled sum, the rest is cleared") {
  // Two norm chunks plus 3 over 2 ranks: rank 0 holds [0, 2 chunks), rank 1 the last 3 elements;
  // the send buffer is padded to 2 × 2 chunks with zeros.
  const std::int64_t chunk = kGradNormChunk;
  const std::int64_t numel = 2 * chunk + 3;
  test::DeterministicSystem actors;
  auto communicator = std::make_shared<ScriptedPeerCommunicator>(1);
  const comm_actor reducer = spawn_reducer(actors.system, communicator);
  Tensor grads = Tensor::empty({numel});
  grads.fill(3.0f);
  caf::scoped_actor self{actors.system};
  auto reply = self->request(reducer, caf::infinite,
                             reduce_gradients{4, {TensorHandle(grads)}, 0.5f, {}, true});
  actors.sched.run();
  REQUIRE(communicator->pending.size() == 1);
  const auto& sent = communicator->pending[0];
  REQUIRE(sent.tensor.numel() == 4 * chunk);
  REQUIRE(sent.recv.numel() == 2 * chunk);
  CHECK(sent.tensor.data<float>()[numel - 1] == 3.0f);
  CHECK(sent.tensor.data<float>()[numel] == 0.0f);  // padding
  CHECK(sent.tensor.data<float>()[4 * chunk - 1] == 0.0f);
  CHECK(self->mailbox().empty());
  std::vector<float> peer(static_cast<std::size_t>(4 * chunk), 1.0f);
  communicator->finish_scatter_with_peer(0, peer);
  actors.sched.run();
  REQUIRE_FALSE(self->mailbox().empty());
  std::move(reply).receive([](const gradients_reduced& r) { CHECK(r.step == 4); },
                           [](caf::error& e) { FAIL(caf::to_string(e)); });
  const auto out = grads.to_vector();
  // The range: (3 + 1) · 1/2; everything else is zero, ready for the next step's accumulation.
  for (std::int64_t j = 2 * chunk; j < numel; ++j) CHECK(out[static_cast<std::size_t>(j)] == 2.0f);
  std::size_t nonzero_outside = 0;
  for (std::int64_t j = 0; j < 2 * chunk; ++j)
    nonzero_outside += out[static_cast<std::size_t>(j)] != 0.0f;
  CHECK(nonzero_outside == 0);
}

TEST_CASE("gather_parameters all-gathers every rank's range of the values") {
  const std::int64_t chunk = kGradNormChunk;
  const std::int64_t numel = chunk + 3;  // rank 0: [0, chunk), rank 1: the last 3
  test::DeterministicSystem actors;
  auto communicator = std::make_shared<ScriptedPeerCommunicator>(1);
  const comm_actor reducer = spawn_reducer(actors.system, communicator);
  Tensor values = Tensor::empty({numel});
  values.fill(5.0f);  // rank 1's range is what it updated; the rest is stale
  values.data<float>()[0] = -1.0f;
  caf::scoped_actor self{actors.system};
  auto reply = self->request(reducer, caf::infinite, gather_parameters{2, {TensorHandle(values)}});
  actors.sched.run();
  REQUIRE(communicator->pending.size() == 1);
  const auto& sent = communicator->pending[0];
  REQUIRE(sent.tensor.numel() == chunk);  // its 3 elements, padded to a whole chunk
  CHECK(sent.tensor.data<float>()[2] == 5.0f);
  CHECK(sent.tensor.data<float>()[3] == 0.0f);
  CHECK(self->mailbox().empty());
  communicator->finish_gather_with_peer(0,
                                        std::vector<float>(static_cast<std::size_t>(chunk), 7.0f));
  actors.sched.run();
  REQUIRE_FALSE(self->mailbox().empty());
  std::move(reply).receive([](const parameters_gathered& r) { CHECK(r.step == 2); },
                           [](caf::error& e) { FAIL(caf::to_string(e)); });
  const auto out = values.to_vector();
  CHECK(out[0] == 7.0f);
  CHECK(out[static_cast<std::size_t>(chunk - 1)] == 7.0f);
  CHECK(out[static_cast<std::size_t>(chunk)] == 5.0f);
  CHECK(out[static_cast<std::size_t>(numel - 1)] == 5.0f);
}
