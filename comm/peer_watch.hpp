// PeerWatch: dead-peer detection for ranks that no launcher watches (Slurm, MPI, ranks started by
// hand). Every rank (rank 0 too) opens one, on a TCP connection of its own to rank 0's
// RendezvousServer, which also serves liveness (comm/liveness_board.hpp for the protocol).
//
// - Detection: the rank sends a heartbeat every `interval`. The server declares a rank lost when
// its
//   watch connection closes without a leave (the process died: the kernel closes its sockets even
//   on SIGKILL, so this takes milliseconds) or when it has sent nothing for `timeout` (a stopped or
//   wedged process), and tells every other watcher. A watcher whose connection to the server
//   breaks, or whose server stops answering heartbeats for `timeout`, reports rank 0 lost, since
//   the master lives in rank 0.
// - Report: `on_lost(rank, reason)` runs on the watch's own thread, once per lost rank; the reason
//   starts "rank R lost: " and says how it was detected. It is meant for
//   UcxTransport::peer_lost, which fails that peer's collectives instead of leaving them hanging.
//   It must not call leave() or destroy the PeerWatch (that waits for this very thread).
// - A rank stopped past the timeout is declared lost and cut off: if it resumes, it finds its
//   connection closed and reports rank 0 lost, which fails its own collectives all the same.
// - Clean shutdown: leave() (the destructor calls it) tells the server this rank is done, so it is
//   never reported. Rank 0 then waits with RendezvousServer::wait_for_leaves before destroying the
//   server, or slower ranks would see their master vanish.
// - A rank whose connection was refused (its rank already watched or already declared lost) or who
//   cannot reach the master within `connect_timeout` gets a std::runtime_error naming the address.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace troupe {

struct PeerWatchOptions {
  std::chrono::milliseconds interval{2'000};  // between heartbeats
  // Silence after which this rank is declared lost (by the server), or the master (by this rank).
  // It must exceed the interval; 10 s bounds the detection of a stopped peer.
  std::chrono::milliseconds timeout{10'000};
  // To reach the master and register (ranks may start before rank 0 listens).
  std::chrono::milliseconds connect_timeout{60'000};
};

class PeerWatch {
 public:
  using LostCallback = std::function<void(int rank, const std::string& reason)>;

  // Connects to the master at host:port, registers world rank `rank` and starts the watch's thread.
  // Throws std::invalid_argument for bad options, std::runtime_error when it cannot register.
  PeerWatch(std::string host, std::uint16_t port, int rank, LostCallback on_lost,
            PeerWatchOptions options = {});
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  // Tells the server this rank is done, waits for its acknowledgement (at most `timeout`) and stops
  // the thread; no callback runs after it returns. Idempotent. Not from on_lost (std::logic_error).
  void leave();

  // "host:port" of the master, for messages.
  std::string address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
