// The collective interface in one process: CommRequest's states and callbacks, the argument checks
// every backend shares, the rank-ordered sum, and LocalCommunicator (comm/communicator.hpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "comm/comm_request.hpp"
#include "comm/communicator.hpp"
#include "comm/local_communicator.hpp"

using namespace troupe;
using namespace std::chrono_literals;

TEST_CASE("a request finishes once and tells its callbacks, before or after they register") {
  auto request = std::make_shared<CommRequest>("all_reduce #3");
  CHECK_FALSE(request->query());
  CHECK_FALSE(request->wait(1ms));
  int early = 0;
  request->on_finish([&](const CommRequest& r) { early += r.failed() ? 10 : 1; });
  std::thread finisher([request] { request->fail("rank 2 died"); });
  CHECK(request->wait(10s));
  finisher.join();
  request->complete();  // ignored: the first finish wins
  CHECK(request->query());
  CHECK(request->failed());
  CHECK(request->error() == "all_reduce #3: rank 2 died");
  CHECK(early == 10);
  int late = 0;
  request->on_finish([&](const CommRequest&) { ++late; });  // runs at once
  CHECK(late == 1);

  // As a readiness event: tensors an operation writes are ready when it finishes.
  auto pending = std::make_shared<CommRequest>("broadcast #1");
  const Readiness readiness = Readiness::after(pending);
  CHECK_FALSE(readiness.ready());
  pending->complete();
  CHECK(readiness.ready());
  CHECK_FALSE(pending->failed());
  CHECK(pending->error().empty());
}

TEST_CASE("sums run in rank order, so rounding matches ((x0 + x1) + x2)") {
  // 1e8 + 1 - 1e8 is 0 in this order but 1 if the last two were summed first.
  const std::vector<float> a{1e8f, 2.f}, b{1.f, 3.f}, c{-1e8f, 4.f};
  std::vector<float> out(2);
  sum_in_order(out.data(), {a.data(), b.data(), c.data()}, 2, DType::f32);
  CHECK(out[0] == (1e8f + 1.f) + -1e8f);
  CHECK(out[1] == 9.f);
  const std::vector<std::int64_t> i{5, -7}, j{1, 1};
  std::vector<std::int64_t> sum(2);
  sum_in_order(sum.data(), {i.data(), j.data()}, 2, DType::i64);
  CHECK(sum == std::vector<std::int64_t>{6, -6});
  CHECK_THROWS_WITH(sum_in_order(sum.data(), {i.data()}, 1, DType::bf16),
                    Catch::Contains("bf16") && Catch::Contains("allowed are f32, i32, i64"));
}

TEST_CASE("the local communicator completes every collective at once") {
  LocalCommunicator comm;
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);

  const Tensor send = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  const Tensor recv = Tensor::zeros({3, 2});
  auto r = comm.all_to_all_v(send, {3}, recv, {3});
  CHECK(r->query());
  CHECK(recv.to_vector() == send.to_vector());

  const Tensor empty_send = Tensor::zeros({0, 2});
  const Tensor empty_recv = Tensor::zeros({0, 2});
  CHECK(comm.all_to_all_v(empty_send, {0}, empty_recv, {0})->query());

  const Tensor x = Tensor::from_vector({1.5f, -2.f}, {2});
  CHECK(comm.all_reduce(x)->query());
  CHECK(x.to_vector() == std::vector<float>{1.5f, -2.f});
  const Tensor gathered = Tensor::zeros({2});
  CHECK(comm.all_gather(x, gathered)->query());
  CHECK(gathered.to_vector() == x.to_vector());
  const Tensor scattered = Tensor::zeros({2});
  CHECK(comm.reduce_scatter(x, scattered)->query());
  CHECK(scattered.to_vector() == x.to_vector());
  CHECK(comm.broadcast(x, 0)->query());
  CHECK(comm.barrier()->query());

  const Tensor counts = Tensor::zeros({1}, DType::i64);
  counts.data<std::int64_t>()[0] = 7;
  const Tensor got = Tensor::zeros({1}, DType::i64);
  CHECK(comm.exchange_counts(counts, got)->query());
  CHECK(got.data<std::int64_t>()[0] == 7);
}

TEST_CASE("a caller's mistakes are refused at once, naming the value and what is allowed") {
  LocalCommunicator comm;
  const Tensor rows = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH(comm.all_to_all_v(rows, {2}, rows, {3}),
                    Catch::Contains("send_rows sum to 2") && Catch::Contains("send has 3 rows"));
  CHECK_THROWS_WITH(comm.all_to_all_v(rows, {3, 0}, rows, {3}),
                    Catch::Contains("2 counts given, the group has 1"));
  CHECK_THROWS_WITH(comm.all_to_all_v(rows, {-1}, rows, {3}), Catch::Contains("send_rows[0] = -1"));
  CHECK_THROWS_WITH(comm.all_to_all_v(rows, {3}, Tensor::zeros({3, 3}), {3}),
                    Catch::Contains("must share dtype and every axis but the first"));
  CHECK_THROWS_WITH(comm.all_reduce(Tensor::zeros({2}, DType::bf16)),
                    Catch::Contains("dtype bf16") && Catch::Contains("allowed are f32, i32, i64"));
  CHECK_THROWS_WITH(comm.all_gather(rows, Tensor::zeros({5})), Catch::Contains("1 x its elements"));
  CHECK_THROWS_WITH(comm.reduce_scatter(rows, Tensor::zeros({5})),
                    Catch::Contains("send has 6 elements"));
  CHECK_THROWS_WITH(comm.broadcast(rows, 1), Catch::Contains("root 1 is not allowed"));
  CHECK_THROWS_WITH(comm.send(rows, 0),
                    Catch::Contains("peer 0 is not allowed") && Catch::Contains("not this rank 0"));
  CHECK_THROWS_WITH(comm.recv(rows, 3), Catch::Contains("peer 3 is not allowed"));
  CHECK_THROWS_WITH(comm.all_reduce(Tensor()), Catch::Contains("undefined tensor"));
  CHECK_THROWS_WITH(comm.exchange_counts(Tensor::zeros({1}), Tensor::zeros({1})),
                    Catch::Contains("counts must be i64 of shape [1]"));
}
