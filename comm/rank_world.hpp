// RankWorld: what one rank of a multi-process run connects at start-up, and holds until the end:
// rank 0 serves the rendezvous store at MASTER_ADDR:MASTER_PORT, every rank opens a client to it,
// connects the UCX transport (worker addresses exchanged through the store) and creates one
// communicator per process group it belongs to (comm/process_groups.hpp), in the same order on
// every rank: world, data-parallel, expert-parallel, expert-data-parallel. A group of one rank
// gets a LocalCommunicator and moves no bytes. Every rank also keeps a PeerWatch
// (comm/peer_watch.hpp) on the master: when any rank dies or stops answering, every other rank's
// pending and later collectives with it fail, so nobody hangs even without a launcher.
//
// The NCCL communicators of GPU ranks will be created here too, from ids published in the same
// store.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "comm/communicator.hpp"
#include "comm/process_groups.hpp"

namespace troupe {

class PeerWatch;
class RendezvousServer;
class RendezvousClient;
class UcxTransport;

struct RankWorldOptions {
  int rank = 0;
  ParallelDims dims;        // world size, ep_size, tp_size, layout
  std::string master_addr;  // MASTER_ADDR
  std::uint16_t master_port = 0;
  // How long to wait for the master and for every peer's address (the master timeout).
  std::chrono::milliseconds timeout{60'000};
  // UCX's own dead-peer detection, which needs TCP even between processes of one host (see
  // ucx_transport.hpp). Off: UCX may use shared memory, and the peer watch detects dead peers
  // (2 ranks of the main job: 9.0–9.6 s per 1000 steps over shared memory, 10.8–11.3 s over TCP).
  bool ucx_peer_error_handling = false;
  // The peer watch's heartbeat and the silence after which a rank counts as lost.
  std::chrono::milliseconds heartbeat_interval{2'000};
  std::chrono::milliseconds heartbeat_timeout{10'000};
};

class RankWorld {
 public:
  // Collective: every rank calls it. Throws std::invalid_argument for bad dims or ranks, and
  // std::runtime_error naming MASTER_ADDR:MASTER_PORT when the master cannot be reached in time,
  // or when this build has no UCX.
  static std::unique_ptr<RankWorld> connect(const RankWorldOptions& options);
  ~RankWorld();
  RankWorld(const RankWorld&) = delete;
  RankWorld& operator=(const RankWorld&) = delete;

  RendezvousClient& store() { return *client_; }

  // Each communicator's rank() is this process's position in that group.
  std::shared_ptr<Communicator> world;
  std::shared_ptr<Communicator> data_parallel;
  std::shared_ptr<Communicator> expert_parallel;
  std::shared_ptr<Communicator> expert_data_parallel;

  // The last collective: returns once every rank reached it (so no peer still waits on this one
  // when it disconnects), then leaves the peer watch; rank 0 waits for every rank's leave before
  // its store goes. Throws std::runtime_error after the options' timeout.
  void finish();

 private:
  RankWorld() = default;
  std::chrono::milliseconds timeout_{0};
  std::unique_ptr<RendezvousServer> server_;  // rank 0 only
  std::unique_ptr<RendezvousClient> client_;
  std::shared_ptr<UcxTransport> transport_;
  std::unique_ptr<PeerWatch> watch_;
};

}  // namespace troupe
