// UcxCommunicator: the Communicator of one process group over UCX tagged messages (host memory).
//
// Every collective is built from point-to-point messages, each rank talking to each peer directly
// (the groups here are small; a ring or tree can replace a phase later without changing callers):
//   - all_to_all_v, all_gather, broadcast, barrier: one phase of sends and receives;
//   - reduce_scatter: every rank sends chunk c to rank c, which sums the contributions in rank
//   order;
//   - all_reduce: that reduce-scatter, then every rank sends its summed chunk to every other
//     (the same bytes on the wire as a ring, and the sum order fixed whatever the arrival order).
// A message's 64-bit tag is (communicator id: 12 bits, sender's group rank: 16, point-to-point
// flag: 1, phase: 3, sequence: 32): the sequence number counts this communicator's collectives,
// which every rank issues in the same order, so concurrent collectives never mix; point-to-point
// messages carry the caller's tag there instead.
//
// Creating one: every process connects a UcxTransport (collectively, through the rendezvous store)
// and then creates its communicators in the same order, one per group it belongs to, typically
// world, data-parallel, expert-parallel, expert-data-parallel (comm/process_groups.hpp).
#pragma once

#include <atomic>
#include <memory>

#include "comm/communicator.hpp"
#include "comm/process_groups.hpp"
#include "comm/ucx_transport.hpp"

namespace troupe {

class UcxCommunicator final : public Communicator {
 public:
  // `world_ranks` lists the group's members in group-rank order and must hold the transport's rank.
  UcxCommunicator(std::shared_ptr<UcxTransport> transport, RankList world_ranks);
  std::string describe() const override;

 protected:
  CommRequestPtr do_all_to_all_v(const Tensor& send, const std::vector<std::int64_t>& send_rows,
                                 const Tensor& recv, const std::vector<std::int64_t>& recv_rows,
                                 std::size_t row_bytes, CommStream stream) override;
  CommRequestPtr do_all_reduce(const Tensor& tensor, CommStream stream) override;
  CommRequestPtr do_reduce_scatter(const Tensor& send, const Tensor& recv,
                                   CommStream stream) override;
  CommRequestPtr do_all_gather(const Tensor& send, const Tensor& recv, CommStream stream) override;
  CommRequestPtr do_broadcast(const Tensor& tensor, int root, CommStream stream) override;
  CommRequestPtr do_barrier(CommStream stream) override;
  CommRequestPtr do_send(const Tensor& tensor, int peer, std::uint32_t tag,
                         CommStream stream) override;
  CommRequestPtr do_recv(const Tensor& tensor, int peer, std::uint32_t tag,
                         CommStream stream) override;

 private:
  // A new plan for a collective (it takes the next sequence number) or a point-to-point message.
  std::shared_ptr<UcxPlan> collective(const char* op, std::uint32_t& seq);
  std::uint64_t tag(int sender, bool p2p, int phase, std::uint32_t seq) const;
  // Adds to `phase` the sends of chunk p to each peer p and the receives of this rank's chunk
  // from each peer into scratch buffers; returns the rank-ordered operand list (this rank's
  // own chunk in place) for sum_in_order.
  std::vector<const void*> scatter_for_sum(UcxPlan& plan, UcxPhase& phase, const std::byte* data,
                                           const std::vector<std::size_t>& chunk_begin,
                                           std::uint32_t seq);
  CommRequestPtr submit(std::shared_ptr<UcxPlan> plan);

  std::shared_ptr<UcxTransport> transport_;
  RankList world_ranks_;
  std::uint16_t id_;
  std::atomic<std::uint32_t> next_seq_{0};
  std::shared_ptr<ScratchPool> scratch_;  // reduction staging, reused across operations
};

}  // namespace troupe
