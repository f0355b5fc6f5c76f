// Rank 0's side of the peer watch (comm/peer_watch.hpp), run by RendezvousServer on its thread
// (internal to comm/): which ranks are watched, which left, which were lost, and the messages
// that tell every other watcher about a loss.
//
// A watch connection opens with 'w' (key: the rank, value: its silence timeout in ms); the board
// answers 'a' (registered, followed by a 'd' for every rank already lost) or 'e' (refused: the
// value says why) and closes. Then the rank sends 'h' every interval, which the board echoes so
// that the rank can tell a silent master; 'l' is a leave, acknowledged with 'l'. The board sends
// 'd' (key: the lost rank, value: the reason) when a rank's connection closes without a leave or
// stays silent past its timeout. A rank that left is never reported; a lost one cannot return.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/rendezvous_wire.hpp"

namespace troupe {

class LivenessBoard {
 public:
  // Takes over a connection whose first frame was a watch request (on the server's thread).
  void watch(wire::tcp::socket socket, const wire::Frame& request);

  // From any thread: waits until each of ranks 0..world-1 has registered and then left or been
  // lost, at most `timeout`; returns the ranks that had not (empty when all had).
  std::vector<int> wait_for_leaves(int world, std::chrono::milliseconds timeout);

 private:
  class Watcher;  // one registered rank's connection
  enum class State { watching, left, lost };
  struct Entry {
    State state = State::watching;
    std::string reason;                // why it was lost
    std::shared_ptr<Watcher> watcher;  // while watching
  };

  // Called by a rank's Watcher, on the server's thread.
  void left(int rank);
  void lost(int rank, const std::string& reason);

  std::mutex mutex_;  // guards ranks_: the server's thread writes, wait_for_leaves reads
  std::condition_variable changed_;
  std::map<int, Entry> ranks_;
};

}  // namespace troupe
