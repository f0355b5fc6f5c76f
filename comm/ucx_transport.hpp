// UcxTransport: one process's UCX worker, its endpoints to every rank of the world, and the
// progress thread that drives them. Communicators (comm/ucx_communicator.hpp) express each
// operation as a UcxPlan of tagged point-to-point phases and submit it here.
//
// - Setup: every world rank publishes its worker address in the rendezvous store under
//   "<prefix>/<rank>", reads every peer's, and creates an endpoint to each.
// - Dead peers: with UcxOptions::peer_error_handling (the default) the endpoints use UCX's peer
//   error handling, so a dead peer's endpoint reports an error instead of leaving receives hanging.
//   UCX 1.13's shared-memory transports (posix, sysv) cannot detect a dead peer, so with it UCX
//   picks TCP even between processes of one machine. Without it shared memory is used, and a dead
//   peer must be reported by whoever detects it (a heartbeat, CAF's node-down message) through
//   peer_lost(), which fails that peer's pending requests the same way.
// - Threads: only the progress thread touches the worker after setup. submit() may be called from
//   any thread: it queues the plan and wakes the progress thread through an eventfd. When idle, the
//   progress thread sleeps in poll() on that eventfd and on the worker's event fd (ucp_worker_arm),
//   so an idle rank costs no CPU.
// - Failure: a peer's endpoint error, a failed or truncated transfer, or a size different from the
//   one expected fails the plan's request with a message naming the peer; every in-flight plan that
//   involves a dead peer fails at once, and later ones fail when submitted.
// - Shutdown: the destructor fails plans still in flight ("transport shut down") and closes the
//   endpoints. Ranks should pass a barrier first, so that no peer still waits on this one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/comm_request.hpp"
#include "comm/rendezvous.hpp"
#include "comm/scratch_pool.hpp"
#include "memory/tensor.hpp"

namespace troupe {

// One tagged message to or from world rank `peer`. A receive must get exactly `bytes` bytes.
struct UcxTransfer {
  int peer = 0;
  std::uint64_t tag = 0;
  void* data = nullptr;
  std::size_t bytes = 0;
};

// Transfers that run concurrently; `then` runs on the progress thread once all of them completed
// (the reduction of an all-reduce, a local copy), before the next phase is posted.
struct UcxPhase {
  std::vector<UcxTransfer> sends;
  std::vector<UcxTransfer> recvs;
  std::function<void()> then;
};

struct UcxPlan {
  CommRequestPtr request;
  std::vector<UcxPhase> phases;
  std::vector<Tensor> keep_alive;            // the caller's tensors, alive until the end
  std::vector<ScratchPool::Buffer> scratch;  // staging buffers the transfers point into
};

struct UcxOptions {
  std::string prefix = "ucx";       // rendezvous keys: "<prefix>/<rank>"
  bool peer_error_handling = true;  // UCX detects dead peers (excludes shared memory, see above)
};

class UcxTransport {
 public:
  // Collective over the whole world: every rank calls it with the same options. Throws
  // std::runtime_error naming the UCX call and status when UCX cannot start (for example when
  // UCX_TLS leaves no transport that supports the error handling asked for), and the rendezvous
  // store's errors when a peer does not publish its address within the store's timeout.
  static std::shared_ptr<UcxTransport> connect(int rank, int world_size, RendezvousClient& store,
                                               const UcxOptions& options = {});
  ~UcxTransport();
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  int rank() const;
  int size() const;
  // A new id for a communicator's tags; every rank creates its communicators in the same order,
  // so the k-th communicator of each process gets the same id.
  std::uint16_t next_communicator_id();
  // Starts the plan on the progress thread (from any thread); the plan's request reports the end.
  void submit(std::shared_ptr<UcxPlan> plan);
  // Declares world rank `peer` dead (from any thread): its pending and later requests fail with
  // `reason`.
  void peer_lost(int peer, const std::string& reason);

 private:
  UcxTransport();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
