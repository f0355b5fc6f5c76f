// The size-1 communicator: collectives reduce to copies between the caller's buffers.
#include "comm/local_communicator.hpp"

#include <cstring>
#include <stdexcept>

namespace troupe {

namespace {

// Same-size copy that tolerates send and recv being the same buffer.
CommRequestPtr copy_done(const Tensor& from, const Tensor& to, const char* op) {
  if (from.nbytes() > 0 && from.raw_data() != to.raw_data()) {
    std::memmove(to.raw_data(), from.raw_data(), from.nbytes());
  }
  return CommRequest::finished(std::string(op) + " on the local communicator");
}

}  // namespace

LocalCommunicator::LocalCommunicator() : Communicator(0, 1, Device::cpu()) {}

std::string LocalCommunicator::describe() const {
  return "local communicator (rank 0 of 1)";
}

CommRequestPtr LocalCommunicator::do_all_to_all_v(const Tensor& send,
                                                  const std::vector<std::int64_t>&,
                                                  const Tensor& recv,
                                                  const std::vector<std::int64_t>&, std::size_t,
                                                  CommStream) {
  return copy_done(send, recv, "all_to_all_v");  // the checks made the row counts equal
}

CommRequestPtr LocalCommunicator::do_all_reduce(const Tensor&, CommStream) {
  return CommRequest::finished("all_reduce on the local communicator");
}

CommRequestPtr LocalCommunicator::do_reduce_scatter(const Tensor& send, const Tensor& recv,
                                                    CommStream) {
  return copy_done(send, recv, "reduce_scatter");
}

CommRequestPtr LocalCommunicator::do_all_gather(const Tensor& send, const Tensor& recv,
                                                CommStream) {
  return copy_done(send, recv, "all_gather");
}

CommRequestPtr LocalCommunicator::do_broadcast(const Tensor&, int, CommStream) {
  return CommRequest::finished("broadcast on the local communicator");
}

CommRequestPtr LocalCommunicator::do_barrier(CommStream) {
  return CommRequest::finished("barrier on the local communicator");
}

// Unreachable: Communicator::send/recv refuse every peer of a one-rank group.
CommRequestPtr LocalCommunicator::do_send(const Tensor&, int, std::uint32_t, CommStream) {
  throw std::logic_error("LocalCommunicator has no peer to send to");
}

CommRequestPtr LocalCommunicator::do_recv(const Tensor&, int, std::uint32_t, CommStream) {
  throw std::logic_error("LocalCommunicator has no peer to receive from");
}

}  // namespace troupe
