// Every collective of UcxCommunicator (comm/ucx_communicator.hpp) on real processes, against an
// exact reference, for world sizes 2, 3 and 4 with uneven and empty sizes, over shared memory and
// over TCP; sub-group communicators; and a peer killed mid-collective, whose survivors must see
// failed requests within seconds (noticed by UCX over TCP, reported through peer_lost over shared
// memory).
//
// Every rank can compute every other rank's inputs, so each checks its result exactly (floats
// bit for bit: the reference sums in rank order, and the inputs are chosen so that any other
// order rounds differently).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>

#include "comm/process_groups.hpp"
#include "comm/ucx_communicator.hpp"
#include "comm_ucx/rank_processes.hpp"

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

// The two ways ranks on one machine talk: shared memory, where UCX cannot detect a dead peer
// (someone must call peer_lost), and TCP with UCX's peer error handling.
enum class Link { shared_memory, tcp };

std::shared_ptr<UcxTransport> connect(Link link, int rank, int world, RendezvousClient& store) {
  setenv("UCX_TLS", link == Link::shared_memory ? "sm" : "tcp", 1);
  UcxOptions options;
  options.peer_error_handling = link == Link::tcp;
  return UcxTransport::connect(rank, world, store, options);
}

void finish(const CommRequestPtr& request) {
  expect(request->wait(10s), "timed out: " + request->describe());
  expect(!request->failed(), request->error());
}

// Rank r's input element i: huge values of both signs on ranks 1 and 2, so that the rounding of
// the sum depends on the order: (1.25 + 1e8) - 1e8 is 0 in rank order, while summing from the last
// rank gives 1.25 on three ranks. (Two operands commute exactly, so two ranks cannot tell.)
float input(int r, std::int64_t i) {
  const float base[4] = {1.25f, 1e8f, -1e8f, 0.375f};
  return base[r % 4] + static_cast<float>(i) * 0.001f;
}

float rank_order_sum(int world, std::int64_t i, std::int64_t offset = 0) {
  float sum = input(0, i + offset);
  for (int r = 1; r < world; ++r) sum += input(r, i + offset);
  return sum;
}

std::vector<float> floats(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

Tensor input_tensor(int rank, std::int64_t n, std::int64_t offset = 0) {
  Tensor t = Tensor::empty({n});
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = input(rank, i + offset);
  return t;
}

// Rows rank `from` sends rank `to` in the all-to-all: 0, 1 or 2, zero for some pairs at every size.
std::int64_t rows_between(int from, int to) {
  return (from + 2 * to) % 3;
}

void check_all_to_all_v(Communicator& comm) {
  const int r = comm.rank(), w = comm.size();
  constexpr std::int64_t width = 3;
  std::vector<std::int64_t> send_rows(w), recv_rows(w);
  for (int p = 0; p < w; ++p) {
    send_rows[p] = rows_between(r, p);
    recv_rows[p] = rows_between(p, r);
  }
  // Learn the receive counts through exchange_counts, as dispatch does.
  const Tensor send_counts = Tensor::empty({w}, DType::i64);
  const Tensor recv_counts = Tensor::empty({w}, DType::i64);
  for (int p = 0; p < w; ++p) send_counts.data<std::int64_t>()[p] = send_rows[p];
  finish(comm.exchange_counts(send_counts, recv_counts));
  for (int p = 0; p < w; ++p) {
    expect(recv_counts.data<std::int64_t>()[p] == recv_rows[p],
           "exchange_counts from " + std::to_string(p));
  }
  std::int64_t total_send = 0, total_recv = 0;
  for (int p = 0; p < w; ++p) total_send += send_rows[p], total_recv += recv_rows[p];
  // Element (row j to peer p, column c) = 1000 r + 100 p + 10 j + c, as i32: a pure byte move.
  const Tensor send = Tensor::empty({total_send, width}, DType::i32);
  const Tensor recv = Tensor::empty({total_recv, width}, DType::i32);
  std::int32_t* s = send.data<std::int32_t>();
  for (int p = 0; p < w; ++p) {
    for (std::int64_t j = 0; j < send_rows[p]; ++j) {
      for (std::int64_t c = 0; c < width; ++c)
        *s++ = static_cast<std::int32_t>(1000 * r + 100 * p + 10 * j + c);
    }
  }
  finish(comm.all_to_all_v(send, send_rows, recv, recv_rows));
  const std::int32_t* got = recv.data<std::int32_t>();
  for (int p = 0; p < w; ++p) {
    for (std::int64_t j = 0; j < recv_rows[p]; ++j) {
      for (std::int64_t c = 0; c < width; ++c) {
        expect(*got++ == 1000 * p + 100 * r + 10 * j + c,
               "all_to_all_v: wrong element from rank " + std::to_string(p));
      }
    }
  }
}

void check_all_reduce(Communicator& comm, std::int64_t n) {
  const Tensor x = input_tensor(comm.rank(), n);
  finish(comm.all_reduce(x));
  const auto got = floats(x);
  for (std::int64_t i = 0; i < n; ++i) {
    expect(got[i] == rank_order_sum(comm.size(), i), "all_reduce of " + std::to_string(n) +
                                                         ": element " + std::to_string(i) + " is " +
                                                         std::to_string(got[i]));
  }
  // Integers too.
  const Tensor k = Tensor::empty({n}, DType::i64);
  for (std::int64_t i = 0; i < n; ++i) k.data<std::int64_t>()[i] = (comm.rank() + 1) * (i - 2);
  finish(comm.all_reduce(k));
  const std::int64_t ranks_sum = comm.size() * (comm.size() + 1) / 2;
  for (std::int64_t i = 0; i < n; ++i) {
    expect(k.data<std::int64_t>()[i] == ranks_sum * (i - 2), "i64 all_reduce");
  }
}

void check_reduce_scatter(Communicator& comm, std::int64_t chunk) {
  const int w = comm.size();
  const Tensor send = input_tensor(comm.rank(), chunk * w);
  const Tensor recv = Tensor::empty({chunk});
  finish(comm.reduce_scatter(send, recv));
  const auto got = floats(recv);
  for (std::int64_t i = 0; i < chunk; ++i) {
    expect(got[i] == rank_order_sum(w, i, comm.rank() * chunk),
           "reduce_scatter element " + std::to_string(i));
  }
}

void check_all_gather(Communicator& comm, std::int64_t n) {
  const int w = comm.size();
  const Tensor send = input_tensor(comm.rank(), n, 5);
  const Tensor recv = Tensor::empty({n * w});
  finish(comm.all_gather(send, recv));
  const auto got = floats(recv);
  for (int p = 0; p < w; ++p) {
    for (std::int64_t i = 0; i < n; ++i) expect(got[p * n + i] == input(p, i + 5), "all_gather");
  }
}

void check_broadcast(Communicator& comm, int root) {
  const Tensor t = input_tensor(comm.rank(), 6);
  finish(comm.broadcast(t, root));
  const auto got = floats(t);
  for (std::int64_t i = 0; i < 6; ++i) expect(got[i] == input(root, i), "broadcast");
}

// A ring of point-to-point messages (both directions are the same peer when the world is 2).
void check_send_recv(Communicator& comm) {
  const int w = comm.size(), r = comm.rank();
  const Tensor out = input_tensor(r, 4);
  const Tensor in = Tensor::empty({4});
  const Tensor empty_out = Tensor::empty({0});
  const Tensor empty_in = Tensor::empty({0});
  auto received = comm.recv(in, (r + w - 1) % w, 7);
  auto received_empty = comm.recv(empty_in, (r + w - 1) % w, 8);
  finish(comm.send(out, (r + 1) % w, 7));
  finish(comm.send(empty_out, (r + 1) % w, 8));
  finish(received);
  finish(received_empty);
  const auto got = floats(in);
  for (std::int64_t i = 0; i < 4; ++i) expect(got[i] == input((r + w - 1) % w, i), "recv");
}

void every_collective(Link link, int rank, int world, RendezvousClient& store) {
  auto transport = connect(link, rank, world, store);
  UcxCommunicator comm(transport, group_of({world, 1}, GroupKind::world, rank));
  expect(comm.rank() == rank && comm.size() == world, "rank and size");
  check_all_to_all_v(comm);
  for (std::int64_t n : {0, 1, 7, 100'003})
    check_all_reduce(comm, n);  // empty chunks; rendezvous-size
  for (std::int64_t chunk : {0, 3}) check_reduce_scatter(comm, chunk);
  for (std::int64_t n : {0, 5}) check_all_gather(comm, n);
  check_broadcast(comm, world - 1);
  check_send_recv(comm);
  // Several collectives in flight at once stay apart (their sequence numbers differ).
  const Tensor a = input_tensor(rank, 9), b = input_tensor(rank, 9), g = Tensor::empty({9 * world});
  auto ra = comm.all_reduce(a);
  auto rg = comm.all_gather(b, g);
  auto rb = comm.barrier();
  finish(ra), finish(rg), finish(rb);
  for (std::int64_t i = 0; i < 9; ++i)
    expect(a.data<float>()[i] == rank_order_sum(world, i), "concurrent");
  finish(comm.barrier());
}

// A survivor's view of a kill: the all-reduce rank 2 never joins must fail, naming rank 2, within
// seconds of the death being known; later collectives that need rank 2 fail too, and the survivors
// still talk among themselves.
void survive_dead_rank_2(const std::shared_ptr<UcxTransport>& transport, UcxCommunicator& comm,
                         const std::function<void()>& learn_of_death) {
  const Tensor x = input_tensor(comm.rank(), 1000);
  auto request = comm.all_reduce(x);
  learn_of_death();
  const auto start = std::chrono::steady_clock::now();
  expect(request->wait(10s), "the all-reduce with a dead peer hung");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expect(request->failed(), "the all-reduce with a dead peer did not fail");
  expect(request->error().find("world rank 2") != std::string::npos,
         "the error does not name the dead rank: " + request->error());
  expect(seconds < 5.0, "failing took " + std::to_string(seconds) + " s");
  auto later = comm.barrier();
  expect(later->wait(5s) && later->failed(), "a barrier with a dead peer did not fail");
  UcxCommunicator pair(transport, {0, 1});
  finish(pair.barrier());
}

// The barrier before the kill: a rank's barrier finishes once every rank has *entered* it, and a
// send finishes once its buffer may be reused, not once it has arrived. So rank 2 dies only after
// the survivors say (through the store) that their barrier finished too.
void barrier_then_rank_2_waits(UcxCommunicator& comm, RendezvousClient& store) {
  finish(comm.barrier());
  if (comm.rank() == 2) {
    store.get("passed/0");
    store.get("passed/1");
  } else {
    store.set("passed/" + std::to_string(comm.rank()), "");
  }
}

void expect_rank_2_killed(const std::vector<RankExit>& exits) {
  CHECK(exits[0].code == 0);
  CHECK(exits[1].code == 0);
  CHECK(exits[2].signal == SIGKILL);
}

}  // namespace

TEST_CASE("every collective matches its reference on 2 ranks") {
  run_ranks_ok(2, [](int rank, RendezvousClient& store) {
    every_collective(Link::shared_memory, rank, 2, store);
  });
}

TEST_CASE("every collective matches its reference on 3 ranks") {
  run_ranks_ok(3, [](int rank, RendezvousClient& store) {
    every_collective(Link::shared_memory, rank, 3, store);
  });
}

TEST_CASE("every collective matches its reference on 4 ranks") {
  run_ranks_ok(4, [](int rank, RendezvousClient& store) {
    every_collective(Link::shared_memory, rank, 4, store);
  });
}

TEST_CASE("every collective matches its reference on 3 ranks over TCP with peer error handling") {
  run_ranks_ok(
      3, [](int rank, RendezvousClient& store) { every_collective(Link::tcp, rank, 3, store); });
}

TEST_CASE("expert-parallel and expert-data-parallel communicators work side by side") {
  run_ranks_ok(4, [](int rank, RendezvousClient& store) {
    const ParallelDims dims{4, 2};  // world 4, ep 2
    auto transport = connect(Link::shared_memory, rank, 4, store);
    const RankGroups groups = groups_of(dims, rank);
    // Every process creates its communicators in the same order.
    UcxCommunicator world(transport, groups.world);
    UcxCommunicator ep(transport, groups.expert_parallel);
    UcxCommunicator edp(transport, groups.expert_data_parallel);
    const Tensor in_ep = Tensor::empty({1}, DType::i64);
    const Tensor in_edp = Tensor::empty({1}, DType::i64);
    in_ep.data<std::int64_t>()[0] = std::int64_t{1} << rank;
    in_edp.data<std::int64_t>()[0] = std::int64_t{1} << rank;
    auto r1 = ep.all_reduce(in_ep);
    auto r2 = edp.all_reduce(in_edp);
    finish(r1), finish(r2);
    std::int64_t want_ep = 0, want_edp = 0;
    for (int r : groups.expert_parallel) want_ep |= std::int64_t{1} << r;
    for (int r : groups.expert_data_parallel) want_edp |= std::int64_t{1} << r;
    expect(in_ep.data<std::int64_t>()[0] == want_ep, "expert-parallel sum");
    expect(in_edp.data<std::int64_t>()[0] == want_edp, "expert-data-parallel sum");
    finish(world.barrier());
  });
}

TEST_CASE("a peer killed mid-collective fails the survivors' requests within seconds (TCP)") {
  // UCX's peer error handling notices the death itself.
  expect_rank_2_killed(run_ranks(3, [](int rank, RendezvousClient& store) {
    auto transport = connect(Link::tcp, rank, 3, store);
    UcxCommunicator comm(transport, {0, 1, 2});
    barrier_then_rank_2_waits(comm, store);
    if (rank == 2) raise(SIGKILL);  // dies without joining the all-reduce the others start
    survive_dead_rank_2(transport, comm, [] {});
  }));
}

TEST_CASE("a peer reported lost fails the survivors' pending requests (shared memory)") {
  // Shared memory cannot notice a death: the detector (a heartbeat, CAF's node-down message in
  // the runtime) calls peer_lost. Here rank 2 announces its death in the store first.
  expect_rank_2_killed(run_ranks(3, [](int rank, RendezvousClient& store) {
    auto transport = connect(Link::shared_memory, rank, 3, store);
    UcxCommunicator comm(transport, {0, 1, 2});
    barrier_then_rank_2_waits(comm, store);
    if (rank == 2) {
      store.set("rank 2 dies", "");
      raise(SIGKILL);
    }
    survive_dead_rank_2(transport, comm, [&] {
      store.get("rank 2 dies");
      transport->peer_lost(2, "heartbeat missed");
    });
  }));
}
