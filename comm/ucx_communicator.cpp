// The collectives as UcxPlans of point-to-point phases (see ucx_communicator.hpp).
#include "comm/ucx_communicator.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace troupe {

namespace {

constexpr int max_group_size = 1 << 16;
constexpr int max_communicators = 1 << 12;

int position_of(const RankList& world_ranks, const std::shared_ptr<UcxTransport>& transport) {
  if (!transport) throw std::invalid_argument("UcxCommunicator: no transport");
  const auto it = std::find(world_ranks.begin(), world_ranks.end(), transport->rank());
  if (it == world_ranks.end()) {
    throw std::invalid_argument("UcxCommunicator: this process (world rank " +
                                std::to_string(transport->rank()) +
                                ") is not in the group it was asked to join");
  }
  if (static_cast<int>(world_ranks.size()) > max_group_size) {
    throw std::invalid_argument("UcxCommunicator: a group of " +
                                std::to_string(world_ranks.size()) +
                                " ranks is not allowed: at most " + std::to_string(max_group_size));
  }
  return static_cast<int>(it - world_ranks.begin());
}

std::byte* bytes_of(const Tensor& t) {
  return static_cast<std::byte*>(t.raw_data());
}

// Chunk c of n elements over `parts` ranks is [begin[c], begin[c+1]): sizes differ by at most one.
std::vector<std::size_t> chunk_bounds(std::size_t n, int parts) {
  std::vector<std::size_t> begin(parts + 1);
  for (int c = 0; c <= parts; ++c) begin[c] = n * static_cast<std::size_t>(c) / parts;
  return begin;
}

}  // namespace

UcxCommunicator::UcxCommunicator(std::shared_ptr<UcxTransport> transport, RankList world_ranks)
    : Communicator(position_of(world_ranks, transport), static_cast<int>(world_ranks.size()),
                   Device::cpu()),
      transport_(std::move(transport)),
      world_ranks_(std::move(world_ranks)),
      id_(transport_->next_communicator_id()),
      scratch_(ScratchPool::create()) {
  if (id_ >= max_communicators) {
    throw std::invalid_argument("UcxCommunicator: communicator " + std::to_string(id_) +
                                " is not allowed: a process holds at most " +
                                std::to_string(max_communicators));
  }
}

std::string UcxCommunicator::describe() const {
  std::string ranks;
  for (int r : world_ranks_) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
  return "ucx communicator " + std::to_string(id_) + " (world ranks " + ranks + ") rank " +
         std::to_string(rank()) + " of " + std::to_string(size());
}

std::uint64_t UcxCommunicator::tag(int sender, bool p2p, int phase, std::uint32_t seq) const {
  return (std::uint64_t{id_} << 52) | (static_cast<std::uint64_t>(sender) << 36) |
         (std::uint64_t{p2p} << 35) | (static_cast<std::uint64_t>(phase) << 32) | seq;
}

std::shared_ptr<UcxPlan> UcxCommunicator::collective(const char* op, std::uint32_t& seq) {
  seq = next_seq_.fetch_add(1);
  auto plan = std::make_shared<UcxPlan>();
  plan->request = std::make_shared<CommRequest>(std::string(op) + " #" + std::to_string(seq) +
                                                " on " + describe());
  return plan;
}

CommRequestPtr UcxCommunicator::submit(std::shared_ptr<UcxPlan> plan) {
  CommRequestPtr request = plan->request;
  transport_->submit(std::move(plan));
  return request;
}

CommRequestPtr UcxCommunicator::do_all_to_all_v(const Tensor& send,
                                                const std::vector<std::int64_t>& send_rows,
                                                const Tensor& recv,
                                                const std::vector<std::int64_t>& recv_rows,
                                                std::size_t row_bytes, CommStream) {
  std::uint32_t seq = 0;
  auto plan = collective("all_to_all_v", seq);
  plan->keep_alive = {send, recv};
  UcxPhase phase;
  std::size_t send_at = 0, recv_at = 0;
  std::byte* own_from = nullptr;
  std::byte* own_to = nullptr;
  for (int p = 0; p < size(); ++p) {
    const std::size_t out = static_cast<std::size_t>(send_rows[p]) * row_bytes;
    const std::size_t in = static_cast<std::size_t>(recv_rows[p]) * row_bytes;
    if (p == rank()) {
      own_from = bytes_of(send) + send_at;
      own_to = bytes_of(recv) + recv_at;
    } else {
      phase.sends.push_back(
          {world_ranks_[p], tag(rank(), false, 0, seq), bytes_of(send) + send_at, out});
      phase.recvs.push_back({world_ranks_[p], tag(p, false, 0, seq), bytes_of(recv) + recv_at, in});
    }
    send_at += out;
    recv_at += in;
  }
  const std::size_t own_bytes = static_cast<std::size_t>(send_rows[rank()]) * row_bytes;
  phase.then = [own_from, own_to, own_bytes] {
    if (own_bytes > 0) std::memmove(own_to, own_from, own_bytes);
  };
  plan->phases.push_back(std::move(phase));
  return submit(std::move(plan));
}

std::vector<const void*> UcxCommunicator::scatter_for_sum(
    UcxPlan& plan, UcxPhase& phase, const std::byte* data,
    const std::vector<std::size_t>& chunk_begin, std::uint32_t seq) {
  const std::size_t my_bytes = chunk_begin[rank() + 1] - chunk_begin[rank()];
  std::vector<const void*> operands(size());
  for (int p = 0; p < size(); ++p) {
    if (p == rank()) {
      operands[p] = data + chunk_begin[p];
      continue;
    }
    phase.sends.push_back({world_ranks_[p], tag(rank(), false, 0, seq),
                           const_cast<std::byte*>(data) + chunk_begin[p],
                           chunk_begin[p + 1] - chunk_begin[p]});
    plan.scratch.push_back(scratch_->acquire(my_bytes));
    phase.recvs.push_back(
        {world_ranks_[p], tag(p, false, 0, seq), plan.scratch.back().data(), my_bytes});
    operands[p] = plan.scratch.back().data();
  }
  return operands;
}

CommRequestPtr UcxCommunicator::do_all_reduce(const Tensor& tensor, CommStream) {
  std::uint32_t seq = 0;
  auto plan = collective("all_reduce", seq);
  plan->keep_alive = {tensor};
  const std::size_t element = dtype_size(tensor.dtype());
  auto bounds = chunk_bounds(static_cast<std::size_t>(tensor.numel()), size());
  for (auto& b : bounds) b *= element;  // in bytes from here on
  std::byte* data = bytes_of(tensor);
  const std::size_t my_begin = bounds[rank()];
  const std::size_t my_bytes = bounds[rank() + 1] - my_begin;

  UcxPhase reduce;
  const auto operands = scatter_for_sum(*plan, reduce, data, bounds, seq);
  plan->scratch.push_back(scratch_->acquire(my_bytes));
  std::byte* sum = plan->scratch.back().data();
  const DType dtype = tensor.dtype();
  // Summed aside and copied back: this rank's own chunk is one of the operands.
  reduce.then = [operands, sum, data, my_begin, my_bytes, element, dtype] {
    sum_in_order(sum, operands, my_bytes / element, dtype);
    if (my_bytes > 0) std::memcpy(data + my_begin, sum, my_bytes);
  };
  plan->phases.push_back(std::move(reduce));

  UcxPhase gather;
  for (int p = 0; p < size(); ++p) {
    if (p == rank()) continue;
    gather.sends.push_back(
        {world_ranks_[p], tag(rank(), false, 1, seq), data + my_begin, my_bytes});
    gather.recvs.push_back(
        {world_ranks_[p], tag(p, false, 1, seq), data + bounds[p], bounds[p + 1] - bounds[p]});
  }
  plan->phases.push_back(std::move(gather));
  return submit(std::move(plan));
}

CommRequestPtr UcxCommunicator::do_reduce_scatter(const Tensor& send, const Tensor& recv,
                                                  CommStream) {
  std::uint32_t seq = 0;
  auto plan = collective("reduce_scatter", seq);
  plan->keep_alive = {send, recv};
  std::vector<std::size_t> bounds(size() + 1);
  for (int c = 0; c <= size(); ++c) bounds[c] = static_cast<std::size_t>(c) * recv.nbytes();
  UcxPhase reduce;
  const auto operands = scatter_for_sum(*plan, reduce, bytes_of(send), bounds, seq);
  plan->scratch.push_back(scratch_->acquire(recv.nbytes()));
  std::byte* sum = plan->scratch.back().data();
  std::byte* out = bytes_of(recv);
  const std::size_t count = static_cast<std::size_t>(recv.numel());
  const std::size_t bytes = recv.nbytes();
  const DType dtype = recv.dtype();
  reduce.then = [operands, sum, out, count, bytes, dtype] {
    sum_in_order(sum, operands, count, dtype);
    if (bytes > 0) std::memcpy(out, sum, bytes);
  };
  plan->phases.push_back(std::move(reduce));
  return submit(std::move(plan));
}

CommRequestPtr UcxCommunicator::do_all_gather(const Tensor& send, const Tensor& recv, CommStream) {
  std::uint32_t seq = 0;
  auto plan = collective("all_gather", seq);
  plan->keep_alive = {send, recv};
  const std::size_t bytes = send.nbytes();
  UcxPhase phase;
  for (int p = 0; p < size(); ++p) {
    if (p == rank()) continue;
    phase.sends.push_back({world_ranks_[p], tag(rank(), false, 0, seq), bytes_of(send), bytes});
    phase.recvs.push_back(
        {world_ranks_[p], tag(p, false, 0, seq), bytes_of(recv) + p * bytes, bytes});
  }
  std::byte* from = bytes_of(send);
  std::byte* to = bytes_of(recv) + rank() * bytes;
  phase.then = [from, to, bytes] {
    if (bytes > 0 && from != to) std::memmove(to, from, bytes);
  };
  plan->phases.push_back(std::move(phase));
  return submit(std::move(plan));
}

CommRequestPtr UcxCommunicator::do_broadcast(const Tensor& tensor, int root, CommStream) {
  std::uint32_t seq = 0;
  auto plan = collective("broadcast", seq);
  plan->keep_alive = {tensor};
  UcxPhase phase;
  if (rank() == root) {
    for (int p = 0; p < size(); ++p) {
      if (p != root) {
        phase.sends.push_back(
            {world_ranks_[p], tag(rank(), false, 0, seq), bytes_of(tensor), tensor.nbytes()});
      }
    }
  } else {
    phase.recvs.push_back(
        {world_ranks_[root], tag(root, false, 0, seq), bytes_of(tensor), tensor.nbytes()});
  }
  plan->phases.push_back(std::move(phase));
  return submit(std::move(plan));
}

CommRequestPtr UcxCommunicator::do_barrier(CommStream) {
  std::uint32_t seq = 0;
  auto plan = collective("barrier", seq);
  UcxPhase phase;
  for (int p = 0; p < size(); ++p) {
    if (p == rank()) continue;
    phase.sends.push_back({world_ranks_[p], tag(rank(), false, 0, seq), nullptr, 0});
    phase.recvs.push_back({world_ranks_[p], tag(p, false, 0, seq), nullptr, 0});
  }
  plan->phases.push_back(std::move(phase));
  return submit(std::move(plan));
}

CommRequestPtr UcxCommunicator::do_send(const Tensor& tensor, int peer, std::uint32_t user_tag,
                                        CommStream) {
  auto plan = std::make_shared<UcxPlan>();
  plan->request = std::make_shared<CommRequest>("send to rank " + std::to_string(peer) + " (tag " +
                                                std::to_string(user_tag) + ") on " + describe());
  plan->keep_alive = {tensor};
  UcxPhase phase;
  phase.sends.push_back(
      {world_ranks_[peer], tag(rank(), true, 0, user_tag), bytes_of(tensor), tensor.nbytes()});
  plan->phases.push_back(std::move(phase));
  return submit(std::move(plan));
}

CommRequestPtr UcxCommunicator::do_recv(const Tensor& tensor, int peer, std::uint32_t user_tag,
                                        CommStream) {
  auto plan = std::make_shared<UcxPlan>();
  plan->request =
      std::make_shared<CommRequest>("recv from rank " + std::to_string(peer) + " (tag " +
                                    std::to_string(user_tag) + ") on " + describe());
  plan->keep_alive = {tensor};
  UcxPhase phase;
  phase.recvs.push_back(
      {world_ranks_[peer], tag(peer, true, 0, user_tag), bytes_of(tensor), tensor.nbytes()});
  plan->phases.push_back(std::move(phase));
  return submit(std::move(plan));
}

}  // namespace troupe
