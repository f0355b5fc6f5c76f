// Start-up of one rank's communicators (see rank_world.hpp).
#include "comm/rank_world.hpp"

#include <stdexcept>

#include <spdlog/spdlog.h>

#include "comm/local_communicator.hpp"
#include "comm/peer_watch.hpp"
#include "comm/rendezvous.hpp"
#ifdef TROUPE_HAS_UCX
#include "comm/ucx_communicator.hpp"
#include "comm/ucx_transport.hpp"
#endif

namespace troupe {

std::unique_ptr<RankWorld> RankWorld::connect(const RankWorldOptions& options) {
  validate_parallel_dims(options.dims);
  if (options.rank < 0 || options.rank >= options.dims.world_size)
    throw std::invalid_argument("rank " + std::to_string(options.rank) + " is outside a world of " +
                                std::to_string(options.dims.world_size));
#ifndef TROUPE_HAS_UCX
  throw std::runtime_error(
      "this build has no UCX (TROUPE_UCX=OFF, or libucx-dev was not found when it was "
      "configured): multi-process training on CPU ranks needs it");
#else
  std::unique_ptr<RankWorld> w(new RankWorld());
  w->timeout_ = options.timeout;
  const RankGroups groups = groups_of(options.dims, options.rank);
  // Rank 0 listens on every interface: MASTER_ADDR is how the others reach it, which need not be
  // an address it can bind.
  if (options.rank == 0)
    w->server_ = std::make_unique<RendezvousServer>("0.0.0.0", options.master_port);
  w->client_ =
      std::make_unique<RendezvousClient>(options.master_addr, options.master_port, options.timeout);
  UcxOptions ucx;
  ucx.peer_error_handling = options.ucx_peer_error_handling;
  w->transport_ = UcxTransport::connect(options.rank, options.dims.world_size, *w->client_, ucx);
  const auto make = [&](const RankList& ranks) -> std::shared_ptr<Communicator> {
    if (ranks.size() == 1) return std::make_shared<LocalCommunicator>();
    return std::make_shared<UcxCommunicator>(w->transport_, ranks);
  };
  w->world = make(groups.world);
  w->data_parallel = make(groups.data_parallel);
  w->expert_parallel = make(groups.expert_parallel);
  w->expert_data_parallel = make(groups.expert_data_parallel);
  PeerWatchOptions watch;
  watch.interval = options.heartbeat_interval;
  watch.timeout = options.heartbeat_timeout;
  watch.connect_timeout = options.timeout;
  w->watch_ = std::make_unique<PeerWatch>(
      options.master_addr, options.master_port, options.rank,
      [transport = std::weak_ptr<UcxTransport>(w->transport_)](int peer,
                                                               const std::string& reason) {
        spdlog::error("{}", reason);
        if (auto t = transport.lock()) t->peer_lost(peer, reason);
      },
      watch);
  return w;
#endif
}

void RankWorld::finish() {
  const std::chrono::milliseconds timeout = timeout_;
  const CommRequestPtr barrier = world->barrier();
  if (!barrier->wait(timeout))
    throw std::runtime_error("the final barrier of " + world->describe() + " did not finish in " +
                             std::to_string(timeout.count()) + " ms");
  if (barrier->failed()) throw std::runtime_error(barrier->error());
  watch_->leave();
  if (server_) {
    const std::vector<int> missing = server_->wait_for_leaves(world->size(), timeout);
    if (!missing.empty())
      spdlog::warn("{} rank(s) did not leave the peer watch in {} ms", missing.size(),
                   timeout.count());
  }
}

RankWorld::~RankWorld() {
  watch_.reset();
  world.reset();
  data_parallel.reset();
  expert_parallel.reset();
  expert_data_parallel.reset();
  transport_.reset();
  client_.reset();
  server_.reset();
}

}  // namespace troupe
