// PeerWatch (comm/peer_watch.hpp): dead-peer detection for ranks no launcher watches. Ranks are
// real processes (tests/comm_ucx/rank_processes.hpp forks them from a thread-free parent), rank 0
// serving the watch as in training, and the tests kill or stop one: the others must report exactly
// that rank, in time, and a clean leave must report nothing. In-process tests cover the refusals,
// the bounded wait for leaves and a rank that registers after a loss.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <boost/asio.hpp>
#include <condition_variable>
#include <mutex>

#include "comm/peer_watch.hpp"
#include "comm/rendezvous.hpp"
#include "comm/rendezvous_wire.hpp"
#include "comm_ucx/rank_processes.hpp"

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Loss {
  int rank;
  std::string reason;
};

// What one rank's on_lost callback saw (the callback runs on the watch's thread).
class LossLog {
 public:
  PeerWatch::LostCallback callback() {
    return [this](int rank, const std::string& reason) {
      const std::lock_guard lock(mutex_);
      losses_.push_back({rank, reason});
      changed_.notify_all();
    };
  }
  // Waits until `count` losses were reported, at most `timeout`; returns all reported so far.
  std::vector<Loss> wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return losses_.size() >= count; });
    return losses_;
  }
  std::vector<Loss> all() { return wait_for(0, 0ms); }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Loss> losses_;
};

// One rank of a multi-process test. Rank 0 serves the watch, as rank 0's RendezvousServer does in
// training; the test's own store (another process) only carries the port, pids and barriers.
// Members go in reverse: the watch first (its callback writes to the log), the server last.
struct WatchedRank {
  std::unique_ptr<RendezvousServer> server;  // rank 0's
  LossLog log;
  std::unique_ptr<PeerWatch> watch;
};

// Opens this rank's watch and returns once every rank's watch is registered.
void start_watch(WatchedRank& me, int rank, int world, RendezvousClient& store,
                 PeerWatchOptions options) {
  if (rank == 0) {
    me.server = std::make_unique<RendezvousServer>("127.0.0.1", 0);
    store.set("watch/port", std::to_string(me.server->port()));
  }
  const auto port = static_cast<std::uint16_t>(std::stoi(store.get("watch/port")));
  me.watch = std::make_unique<PeerWatch>("127.0.0.1", port, rank, me.log.callback(), options);
  store.set("watching/" + std::to_string(rank), "");
  for (int peer = 0; peer < world; ++peer) store.get("watching/" + std::to_string(peer));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string describe(const std::vector<Loss>& losses) {
  std::string text = std::to_string(losses.size()) + " report(s)";
  for (const auto& loss : losses)
    text += "; rank " + std::to_string(loss.rank) + ": " + loss.reason;
  return text;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Requires one report, of `rank`, whose reason has `how`, within `bound` seconds of `start`.
void expect_one_loss(LossLog& log, int rank, const std::string& how, Clock::time_point start,
                     double bound) {
  const auto losses = log.wait_for(1, 10s);
  const double elapsed = seconds_since(start);
  expect(losses.size() == 1,
         "expected one report, of rank " + std::to_string(rank) + "; got " + describe(losses));
  expect(losses[0].rank == rank, "reported the wrong rank: " + describe(losses));
  expect(contains(losses[0].reason, "rank " + std::to_string(rank) + " lost: "),
         "the reason does not name the rank: " + losses[0].reason);
  expect(contains(losses[0].reason, how), "the reason lacks '" + how + "': " + losses[0].reason);
  expect(elapsed < bound,
         "reported after " + std::to_string(elapsed) + " s, bound " + std::to_string(bound) + " s");
}

// Rank 0 (whose server must outlive the others' watches) leaves and waits for the others.
void leave_all(WatchedRank& me, int rank, int world) {
  me.watch->leave();
  if (rank == 0) {
    const auto pending = me.server->wait_for_leaves(world, 5s);
    expect(pending.empty(), std::to_string(pending.size()) + " rank(s) never left");
  }
}

void check_exits(const std::vector<RankExit>& exits, int killed) {
  for (int rank = 0; rank < static_cast<int>(exits.size()); ++rank) {
    INFO("rank " << rank << " (its message is on stderr)");
    if (rank == killed) {
      CHECK(exits[rank].signal == SIGKILL);
    } else {
      CHECK(exits[rank].exited);
      CHECK(exits[rank].code == 0);
    }
  }
}

// Registers `rank` by hand and closes the connection without a leave, as a dying process does.
void register_and_vanish(std::uint16_t port, int rank) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::asio::write(socket, boost::asio::buffer(wire::encode('w', std::to_string(rank), "5000")));
  std::array<char, wire::header_bytes> answer{};
  boost::asio::read(socket, boost::asio::buffer(answer));
  REQUIRE(answer[0] == 'a');
}

// A port nobody listens on: bind one, read it back, and close it again.
std::uint16_t closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace

TEST_CASE("a killed rank is reported to every other rank, as that rank, within 3 s") {
  // The timeout is longer than the bound, so only the closed connection can report in time.
  const PeerWatchOptions options{200ms, 5s};
  const auto exits = run_ranks(3, [&](int rank, RendezvousClient& store) {
    WatchedRank me;
    start_watch(me, rank, 3, store, options);
    const auto start = Clock::now();
    if (rank == 2) raise(SIGKILL);
    expect_one_loss(me.log, 2, "closed without a leave", start, 3.0);
    leave_all(me, rank, 3);
    expect(me.log.all().size() == 1, "reported again: " + describe(me.log.all()));
  });
  check_exits(exits, 2);
}

TEST_CASE("a stopped rank is reported after the heartbeat timeout") {
  const PeerWatchOptions options{200ms, 1s};
  const auto exits = run_ranks(3, [&](int rank, RendezvousClient& store) {
    store.set("pid/" + std::to_string(rank), std::to_string(getpid()));
    WatchedRank me;
    start_watch(me, rank, 3, store, options);
    const auto start = Clock::now();
    if (rank == 2) raise(SIGSTOP);
    me.log.wait_for(1, 10s);
    if (rank == 0)
      kill(std::stoi(store.get("pid/2")), SIGKILL);  // first: a stopped rank never ends
    // The 1 s timeout, plus the server's wake-up and one hop to each rank.
    expect_one_loss(me.log, 2, "no heartbeat for 1 s", start, 2.5);
    leave_all(me, rank, 3);
    expect(me.log.all().size() == 1, "reported again: " + describe(me.log.all()));
  });
  check_exits(exits, 2);
}

TEST_CASE("ranks that leave are never reported, and the master waits for their leaves") {
  const PeerWatchOptions options{100ms, 2s};
  const auto exits = run_ranks(3, [&](int rank, RendezvousClient& store) {
    WatchedRank me;
    start_watch(me, rank, 3, store, options);
    if (rank == 2) {
      // Still watching while ranks 0 and 1 leave: a leave reported as a loss would reach it
      // within a few of its heartbeats.
      store.get("left/0");
      store.get("left/1");
      const auto losses = me.log.wait_for(1, 500ms);
      expect(losses.empty(), "a rank that left was reported: " + describe(losses));
    }
    me.watch->leave();
    store.set("left/" + std::to_string(rank), "");
    if (rank == 0) {
      const auto start = Clock::now();
      const auto pending = me.server->wait_for_leaves(3, 5s);
      expect(pending.empty(), std::to_string(pending.size()) + " rank(s) never left");
      expect(seconds_since(start) < 4.0, "wait_for_leaves waited for its timeout");
    }
    expect(me.log.all().empty(), "reported: " + describe(me.log.all()));
  });
  check_exits(exits, -1);
}

TEST_CASE("when the master's process dies every rank reports rank 0 lost, naming its address") {
  const PeerWatchOptions options{200ms, 5s};
  const auto exits = run_ranks(3, [&](int rank, RendezvousClient& store) {
    WatchedRank me;
    start_watch(me, rank, 3, store, options);
    const auto start = Clock::now();
    if (rank == 0) raise(SIGKILL);
    expect_one_loss(me.log, 0,
                    "the rendezvous master at 127.0.0.1:" + store.get("watch/port") + " is gone",
                    start, 3.0);
    me.watch->leave();
  });
  check_exits(exits, 0);
}

TEST_CASE("a stopped master is reported as rank 0 after the heartbeat timeout") {
  const PeerWatchOptions options{200ms, 1s};
  const auto exits = run_ranks(3, [&](int rank, RendezvousClient& store) {
    store.set("pid/" + std::to_string(rank), std::to_string(getpid()));
    WatchedRank me;
    start_watch(me, rank, 3, store, options);
    const auto start = Clock::now();
    if (rank == 0) raise(SIGSTOP);
    me.log.wait_for(1, 10s);
    store.set("reported/" + std::to_string(rank), "");
    if (rank == 1) {
      // Kill it (even when the wait below fails: a stopped rank never ends), but only once rank 2
      // has reported too, or rank 2 would see the connection close before the silence.
      struct KillOnExit {
        pid_t pid;
        ~KillOnExit() { kill(pid, SIGKILL); }
      } stopped_master{std::stoi(store.get("pid/0"))};
      store.get("reported/2");
    }
    expect_one_loss(me.log, 0, "no answer to heartbeats for 1 s", start, 2.5);
    me.watch->leave();
  });
  check_exits(exits, 0);
}

TEST_CASE("a rank that registers after a loss hears of it") {
  RendezvousServer server("127.0.0.1", 0);
  register_and_vanish(server.port(), 0);
  REQUIRE(server.wait_for_leaves(1, 5s).empty());  // rank 0 was declared lost
  LossLog log;
  PeerWatch watch("127.0.0.1", server.port(), 1, log.callback(), {100ms, 2s});
  const auto losses = log.wait_for(1, 5s);
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].rank == 0);
  CHECK_THAT(losses[0].reason,
             Catch::StartsWith("rank 0 lost: ") && Catch::Contains("closed without a leave"));
  // A lost rank cannot come back: its collectives were already failed everywhere.
  CHECK_THROWS_WITH(
      PeerWatch("127.0.0.1", server.port(), 0, log.callback(), {100ms, 2s}),
      Catch::Contains("refused rank 0") && Catch::Contains("rank 0 was already declared lost"));
}

TEST_CASE("a rank already watched is refused, and may register again once it left") {
  RendezvousServer server("127.0.0.1", 0);
  LossLog log;
  auto first = std::make_unique<PeerWatch>("127.0.0.1", server.port(), 1, log.callback(),
                                           PeerWatchOptions{100ms, 2s});
  CHECK_THROWS_WITH(
      PeerWatch("127.0.0.1", server.port(), 1, log.callback(), {100ms, 2s}),
      Catch::Contains("master at 127.0.0.1:" + std::to_string(server.port()) + " refused rank 1") &&
          Catch::Contains("already watched from another connection"));
  first.reset();  // leaves
  PeerWatch again("127.0.0.1", server.port(), 1, log.callback(), {100ms, 2s});
  again.leave();
  CHECK(server.wait_for_leaves(2, 0ms) == std::vector<int>{0});  // rank 0 never registered
  CHECK(log.all().empty());
}

TEST_CASE("wait_for_leaves gives up after its timeout, naming the ranks still out") {
  RendezvousServer server("127.0.0.1", 0);
  LossLog log;
  PeerWatch zero("127.0.0.1", server.port(), 0, log.callback(), {100ms, 2s});
  PeerWatch one("127.0.0.1", server.port(), 1, log.callback(), {100ms, 2s});
  zero.leave();
  const auto start = Clock::now();
  CHECK(server.wait_for_leaves(3, 300ms) == std::vector<int>{1, 2});  // watching; never came
  CHECK(seconds_since(start) >= 0.29);
  one.leave();
  CHECK(server.wait_for_leaves(2, 5s).empty());
  CHECK_THROWS_WITH(server.wait_for_leaves(0, 1s), Catch::Contains("world size >= 1, got 0"));
  CHECK(log.all().empty());
}

TEST_CASE("bad options and an unreachable master are clear errors") {
  LossLog log;
  CHECK_THROWS_WITH(PeerWatch("127.0.0.1", 1, 0, log.callback(), {2s, 1s}),
                    Catch::Contains("interval (2 s)") && Catch::Contains("timeout (1 s)"));
  CHECK_THROWS_WITH(PeerWatch("127.0.0.1", 1, -1, log.callback()),
                    Catch::Contains("rank must be >= 0, got -1"));
  CHECK_THROWS_WITH(PeerWatch("127.0.0.1", 1, 0, nullptr), Catch::Contains("on_lost"));
  const std::uint16_t port = closed_port();
  const auto start = Clock::now();
  CHECK_THROWS_WITH(PeerWatch("127.0.0.1", port, 3, log.callback(), {100ms, 1s, 500ms}),
                    Catch::Contains("rank 3 cannot register with the rendezvous master at "
                                    "127.0.0.1:" +
                                    std::to_string(port) + " within 0.5 s"));
  CHECK(seconds_since(start) < 2.0);
}

TEST_CASE("leave from the on_lost callback is refused instead of deadlocking") {
  RendezvousServer server("127.0.0.1", 0);
  std::mutex mutex;
  std::condition_variable answered;
  std::string error;
  std::unique_ptr<PeerWatch> watch;
  auto on_lost = [&](int, const std::string&) {
    std::string message;
    try {
      watch->leave();
    } catch (const std::logic_error& e) {
      message = e.what();
    }
    const std::lock_guard lock(mutex);
    error = message.empty() ? "leave() returned" : message;
    answered.notify_all();
  };
  watch = std::make_unique<PeerWatch>("127.0.0.1", server.port(), 1, on_lost,
                                      PeerWatchOptions{100ms, 2s});
  register_and_vanish(server.port(), 0);  // so that rank 1's callback runs
  std::unique_lock lock(mutex);
  REQUIRE(answered.wait_for(lock, 5s, [&] { return !error.empty(); }));
  CHECK_THAT(error, Catch::Contains("called from the on_lost callback"));
}
