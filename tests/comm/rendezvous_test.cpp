// The rendezvous key-value store (comm/rendezvous.hpp): a server on port 0 with clients in threads,
// gets that wait for a later set, the errors for an unreachable master and a missing key, and the
// clock offset measured against the master.
#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <cmath>
#include <thread>

#include "comm/rendezvous.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// A port nobody listens on: bind one, read it back, and close it again.
std::uint16_t closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("ranks in threads exchange their addresses through the store") {
  RendezvousServer server("127.0.0.1", 0);
  REQUIRE(server.port() != 0);
  constexpr int world = 4;
  std::vector<std::vector<std::string>> seen(world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back([&, r] {
      RendezvousClient client("127.0.0.1", server.port(), 10s);
      // Binary values, with a NUL inside and an empty one, travel unchanged.
      client.set("addr/" + std::to_string(r), std::string("w\0rker-", 7) + std::to_string(r));
      client.set("empty/" + std::to_string(r), "");
      for (int peer = 0; peer < world; ++peer) {
        seen[r].push_back(client.get("addr/" + std::to_string(peer)));  // waits for later sets
        CHECK(client.get("empty/" + std::to_string(peer)).empty());
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (int r = 0; r < world; ++r) {
    for (int peer = 0; peer < world; ++peer) {
      CHECK(seen[r][peer] == std::string("w\0rker-", 7) + std::to_string(peer));
    }
  }
}

TEST_CASE("a later set replaces a value and large values arrive whole") {
  RendezvousServer server("127.0.0.1", 0);
  RendezvousClient client("127.0.0.1", server.port(), 10s);
  client.set("k", "one");
  client.set("k", "two");
  CHECK(client.get("k") == "two");
  const std::string big(1 << 20, 'x');
  client.set("big", big);
  RendezvousClient other("127.0.0.1", server.port(), 10s);
  CHECK(other.get("big") == big);
}

TEST_CASE("a client that starts before the master keeps trying until it is up") {
  const std::uint16_t port = closed_port();
  std::unique_ptr<RendezvousServer> server;
  // The master comes up a little later, as rank 0 may; the test passes in either order, the delay
  // only makes the retry path the likely one.
  std::thread master([&] {
    std::this_thread::sleep_for(300ms);
    server = std::make_unique<RendezvousServer>("127.0.0.1", port);
  });
  RendezvousClient client("127.0.0.1", port, 10s);
  master.join();
  client.set("late", "fine");
  CHECK(client.get("late") == "fine");
}

TEST_CASE("an unreachable master is reported within the timeout, naming the address") {
  const std::uint16_t port = closed_port();
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(
      RendezvousClient("127.0.0.1", port, 2s),
      Catch::Contains("cannot reach the master at 127.0.0.1:" + std::to_string(port)) &&
          Catch::Contains("within 2 s"));
  const double elapsed = seconds_since(start);
  CHECK(elapsed >= 1.9);  // it kept retrying for the whole timeout (rank 0 may start late)
  CHECK(elapsed < 3.5);
}

TEST_CASE("a get for a key nobody sets fails after the timeout, naming the key") {
  RendezvousServer server("127.0.0.1", 0);
  RendezvousClient client("127.0.0.1", server.port(), 300ms);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(client.get("ucx/7"),
                    Catch::Contains("get 'ucx/7'") && Catch::Contains("timed out after 0.3 s"));
  CHECK(seconds_since(start) < 2.0);
  CHECK_THROWS_WITH(client.get("ucx/7"), Catch::Contains("connection to 127.0.0.1:"));
}

TEST_CASE("the clock offset to a master in the same process is 0 within half the round trip") {
  RendezvousServer server("127.0.0.1", 0);
  RendezvousClient client("127.0.0.1", server.port(), 10s);
  client.set("before", "clock");
  const ClockOffset clock = client.measure_clock_offset(5);
  // Both ends read the same steady clock, so the true offset is 0. The server read it between the
  // client's send and receive, so |offset| <= rtt / 2 holds exactly, but for the 0.5 ns the
  // integer halving of the round trip may drop.
  CHECK(clock.rtt_us > 0);
  CHECK(clock.rtt_us < 1e6);  // a loopback round trip, even on a loaded machine
  CHECK(std::abs(clock.offset_us) <= clock.rtt_us / 2 + 0.001);
  // Clock requests leave the connection in step for the store's own requests.
  CHECK(client.get("before") == "clock");
  CHECK_THROWS_WITH(client.measure_clock_offset(0), Catch::Contains("samples >= 1, got 0"));
}
