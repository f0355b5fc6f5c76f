// Communicator: the one collective interface of a process group, whatever the transport.
//
// One Communicator serves one group (comm/process_groups.hpp) in one process; rank() is this
// process's position in the group. Every operation is asynchronous: it checks its arguments
// (std::invalid_argument at once for a caller's mistake: a wrong size, dtype, peer or device),
// starts the transfer and returns a CommRequest that finishes later, done or failed (a dead peer
// fails the requests that need it instead of hanging them). The tensors passed in must stay
// untouched until the request finishes; the backend holds a reference to their storage so they
// stay alive.
//
// Ordering contract (as with NCCL and MPI): every rank of the group issues the group's collectives
// in the same order (comm/collective_schedule.hpp gives that order). Several may be in flight at
// once. send/recv pairs are matched by (peer, tag), in issue order.
//
// Determinism: all_reduce and reduce_scatter sum in rank order, ((x_0 + x_1) + x_2) + …, whatever
// order the contributions arrive in, so every rank gets the same bits and two runs agree bit for
// bit.
//
// Backends: LocalCommunicator (size 1, comm/local_communicator.hpp) and UcxCommunicator (host
// memory between processes, comm/ucx_communicator.hpp). An NCCL backend plugs in beside them: a
// communicator created from an id exchanged through the rendezvous store, whose tensors live on
// its CUDA device (buffer_device()) and whose operations are ordered on the caller's CUDA stream
// (the `stream` argument, a cudaStream_t; host backends ignore it). Its requests would wrap a CUDA
// event recorded after the operation, which is why the request is a ReadinessEvent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/comm_request.hpp"
#include "memory/device.hpp"
#include "memory/tensor.hpp"

namespace troupe {

// The stream device work is ordered on (a cudaStream_t for NCCL); null for host backends.
struct CommStream {
  void* handle = nullptr;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Where the tensors this communicator moves must live (the CPU for host backends).
  Device buffer_device() const { return buffer_device_; }
  // "ucx comm 2 (world ranks 0,2) rank 1 of 2", for logs and error messages.
  virtual std::string describe() const = 0;

  // Variable all-to-all along the first axis: rows [sum(send_rows[0..p)), + send_rows[p]) of `send`
  // go to peer p, and peer p's rows land at rows [sum(recv_rows[0..p)), + recv_rows[p]) of `recv`.
  // Counts have size() entries, may be zero, and sum to each tensor's first dimension; both
  // tensors share dtype and trailing shape (any dtype: rows are moved as bytes). The caller knows
  // recv_rows, or learns them first with exchange_counts().
  CommRequestPtr all_to_all_v(const Tensor& send, const std::vector<std::int64_t>& send_rows,
                              const Tensor& recv, const std::vector<std::int64_t>& recv_rows,
                              CommStream stream = {});
  // The counts step of all_to_all_v: i64 tensors of shape [size()]; recv_counts[p] becomes peer
  // p's send_counts[rank()].
  CommRequestPtr exchange_counts(const Tensor& send_counts, const Tensor& recv_counts,
                                 CommStream stream = {});
  // In-place sum over the group (f32, i32 or i64), in rank order.
  CommRequestPtr all_reduce(const Tensor& tensor, CommStream stream = {});
  // `send` holds size() equal chunks (numel = size() × recv.numel()); rank r receives the sum, in
  // rank order, of every rank's chunk r. f32, i32 or i64.
  CommRequestPtr reduce_scatter(const Tensor& send, const Tensor& recv, CommStream stream = {});
  // recv = the concatenation of every rank's `send`, in rank order (any dtype).
  CommRequestPtr all_gather(const Tensor& send, const Tensor& recv, CommStream stream = {});
  // Every rank's `tensor` becomes root's (any dtype).
  CommRequestPtr broadcast(const Tensor& tensor, int root, CommStream stream = {});
  // Finishes on every rank once every rank has issued it.
  CommRequestPtr barrier(CommStream stream = {});
  // Point-to-point, matched by (peer, tag) in issue order; the receiver's tensor must have exactly
  // the sender's byte size. The peer must be another rank of the group.
  CommRequestPtr send(const Tensor& tensor, int peer, std::uint32_t tag = 0,
                      CommStream stream = {});
  CommRequestPtr recv(const Tensor& tensor, int peer, std::uint32_t tag = 0,
                      CommStream stream = {});

 protected:
  Communicator(int rank, int size, Device buffer_device);

  // Called after the arguments were checked. Row counts are in rows, `row_bytes` is one row's size.
  virtual CommRequestPtr do_all_to_all_v(const Tensor& send,
                                         const std::vector<std::int64_t>& send_rows,
                                         const Tensor& recv,
                                         const std::vector<std::int64_t>& recv_rows,
                                         std::size_t row_bytes, CommStream stream) = 0;
  virtual CommRequestPtr do_all_reduce(const Tensor& tensor, CommStream stream) = 0;
  virtual CommRequestPtr do_reduce_scatter(const Tensor& send, const Tensor& recv,
                                           CommStream stream) = 0;
  virtual CommRequestPtr do_all_gather(const Tensor& send, const Tensor& recv,
                                       CommStream stream) = 0;
  virtual CommRequestPtr do_broadcast(const Tensor& tensor, int root, CommStream stream) = 0;
  virtual CommRequestPtr do_barrier(CommStream stream) = 0;
  virtual CommRequestPtr do_send(const Tensor& tensor, int peer, std::uint32_t tag,
                                 CommStream stream) = 0;
  virtual CommRequestPtr do_recv(const Tensor& tensor, int peer, std::uint32_t tag,
                                 CommStream stream) = 0;

 private:
  void check_buffer(const Tensor& tensor, const char* op, const char* name) const;
  void check_rank(int rank, const char* op, const char* what, bool allow_self) const;

  int rank_;
  int size_;
  Device buffer_device_;
};

// dst = src_0 + src_1 + … (in that order), for the sum dtypes (f32, i32, i64): the rank-ordered
// reduction every host backend uses. `dst` may alias srcs[0]; `count` is in elements.
void sum_in_order(void* dst, const std::vector<const void*>& srcs, std::size_t count, DType dtype);

// Whether collectives can sum this dtype (f32, i32, i64).
bool is_summable(DType dtype);

}  // namespace troupe
