// LocalCommunicator: the group of one rank (one process, or a group of size 1 inside a larger
// world). Every collective is a copy at most and finishes before it returns, so a one-process run
// goes through the same Communicator code path as a multi-rank one. It has no peer, so send and
// recv are refused by the argument checks.
#pragma once

#include "comm/communicator.hpp"

namespace troupe {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator();
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
};

}  // namespace troupe
