// Rendezvous: the TCP key-value store ranks meet through before any communicator exists.
//
// Rank 0 runs a RendezvousServer at MASTER_ADDR:MASTER_PORT; every rank (rank 0 too) opens a
// RendezvousClient to it and publishes what its peers need (UCX worker addresses now, NCCL unique
// ids later) with set(), then reads theirs with get(), which waits until the key exists. Values are
// opaque bytes. Keys are never deleted: a store lives for one job.
//
// Every blocking call gives up after the client's timeout (60 s unless told otherwise) with a
// std::runtime_error naming the master's address, the key and the timeout, so a rank whose master
// never came up, or whose peers died before publishing, fails instead of hanging.
//
// The same server serves liveness: each rank's PeerWatch (comm/peer_watch.hpp) holds a connection
// of its own to it, and the server tells every rank when another dies (comm/liveness_board.hpp).
//
// The master also serves its clock, so that every rank can put its trace on rank 0's time
// (trace/trace_recorder.hpp): steady clocks (CLOCK_MONOTONIC) of different machines count from
// different boots, so measure_clock_offset() measures the difference NTP-style. It is measured
// once; quartz drift (tens of ppm) moves the clocks apart by up to tens of ms per hour after it.
//
// Wire format (one TCP connection per client, requests answered in order): a request is a frame
// (comm/rendezvous_wire.hpp) whose op is 's' (set), 'g' (get) or 'c' (clock); the answer is a
// 4-byte big-endian length and that many bytes (empty for set). A clock request has an empty key
// and value; its answer is 8 bytes, the master's std::chrono::steady_clock in nanoseconds since
// its epoch as a big-endian signed integer, read when the request is served. A connection opening
// with 'w' is a PeerWatch's.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

class RendezvousServer {
 public:
  // Listens on host:port (port 0: a free port, see port()) and serves on its own thread until
  // destroyed. Throws std::runtime_error naming the address when it cannot listen.
  RendezvousServer(const std::string& host, std::uint16_t port);
  ~RendezvousServer();
  RendezvousServer(const RendezvousServer&) = delete;
  RendezvousServer& operator=(const RendezvousServer&) = delete;

  // The bound port (the one chosen when constructed with port 0).
  std::uint16_t port() const;

  // Waits until each of ranks 0..world-1 has registered a PeerWatch and then left (or was declared
  // lost), at most `timeout`; returns the ranks that had not, empty when all had. Rank 0 calls it
  // after its own PeerWatch::leave() and before destroying the server: a server that goes away
  // while a slower rank still watches makes that rank report rank 0 lost.
  std::vector<int> wait_for_leaves(int world, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// This process's steady clock against the master's (RendezvousClient::measure_clock_offset).
struct ClockOffset {
  double offset_us = 0;  // add to this process's steady clock (µs since its epoch) for the master's
  double rtt_us = 0;  // round trip of the measurement: the offset is right to within ±rtt_us / 2
};

class RendezvousClient {
 public:
  static constexpr std::chrono::milliseconds default_timeout{60'000};

  // Connects to the master, retrying until `timeout` passes (ranks may start before rank 0).
  RendezvousClient(std::string host, std::uint16_t port,
                   std::chrono::milliseconds timeout = default_timeout);
  ~RendezvousClient();
  RendezvousClient(const RendezvousClient&) = delete;
  RendezvousClient& operator=(const RendezvousClient&) = delete;

  void set(const std::string& key, const std::string& value);
  // Waits until some client has set `key`, up to the timeout.
  std::string get(const std::string& key);

  // Asks the master for its clock `samples` times and keeps the fastest round trip, whose
  // answer is the least delayed: offset = server_time - (t_send + t_receive) / 2. The server read
  // its clock somewhere between t_send and t_receive, so the error is at most half the round trip.
  // Throws std::invalid_argument for samples < 1, and what get() throws when the master fails.
  ClockOffset measure_clock_offset(int samples = 8);

  std::chrono::milliseconds timeout() const { return timeout_; }
  // "host:port", for messages.
  std::string address() const;

 private:
  std::string request(char op, const std::string& key, const std::string& value);

  struct Impl;
  std::string host_;
  std::uint16_t port_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
