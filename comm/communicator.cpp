// The argument checks every backend shares, and the rank-ordered sum.
#include "comm/communicator.hpp"

#include <numeric>
#include <stdexcept>

namespace troupe {

namespace {

[[noreturn]] void bad(const std::string& message) {
  throw std::invalid_argument(message);
}

std::int64_t checked_sum(const std::vector<std::int64_t>& counts, const char* name) {
  std::int64_t total = 0;
  for (std::size_t p = 0; p < counts.size(); ++p) {
    if (counts[p] < 0) {
      bad(std::string("all_to_all_v: ") + name + "[" + std::to_string(p) +
          "] = " + std::to_string(counts[p]) + " is not allowed: counts must be >= 0");
    }
    total += counts[p];
  }
  return total;
}

Shape trailing_shape(const Tensor& t) {
  return t.dim() == 0 ? Shape{} : Shape(t.shape().begin() + 1, t.shape().end());
}

template <class T>
void sum_typed(void* dst, const std::vector<const void*>& srcs, std::size_t count) {
  T* out = static_cast<T*>(dst);
  const T* first = static_cast<const T*>(srcs[0]);
  for (std::size_t i = 0; i < count; ++i) out[i] = first[i];
  for (std::size_t s = 1; s < srcs.size(); ++s) {
    const T* in = static_cast<const T*>(srcs[s]);
    for (std::size_t i = 0; i < count; ++i) out[i] += in[i];
  }
}

}  // namespace

Communicator::Communicator(int rank, int size, Device buffer_device)
    : rank_(rank), size_(size), buffer_device_(buffer_device) {
  if (size < 1 || rank < 0 || rank >= size) {
    bad("communicator rank " + std::to_string(rank) + " of size " + std::to_string(size) +
        " is not allowed: size must be >= 1 and rank in [0, size)");
  }
}

bool is_summable(DType dtype) {
  return dtype == DType::f32 || dtype == DType::i32 || dtype == DType::i64;
}

void sum_in_order(void* dst, const std::vector<const void*>& srcs, std::size_t count, DType dtype) {
  if (srcs.empty()) bad("sum_in_order: no operand");
  switch (dtype) {
    case DType::f32:
      return sum_typed<float>(dst, srcs, count);
    case DType::i32:
      return sum_typed<std::int32_t>(dst, srcs, count);
    case DType::i64:
      return sum_typed<std::int64_t>(dst, srcs, count);
    default:
      bad(std::string("sum of dtype ") + std::string(dtype_name(dtype)) +
          " is not supported: allowed are f32, i32, i64");
  }
}

void Communicator::check_buffer(const Tensor& tensor, const char* op, const char* name) const {
  if (!tensor.defined()) bad(std::string(op) + ": " + name + " is an undefined tensor");
  if (!tensor.desc().is_contiguous()) {
    bad(std::string(op) + ": " + name + " " + shape_string(tensor.shape()) +
        " is not contiguous: communicators move contiguous buffers");
  }
  const bool ok =
      buffer_device_.is_host() ? tensor.device().is_host() : tensor.device() == buffer_device_;
  if (!ok) {
    bad(std::string(op) + ": " + name + " lives on " + to_string(tensor.device()) + ", but " +
        describe() + " moves buffers on " + to_string(buffer_device_));
  }
}

void Communicator::check_rank(int rank, const char* op, const char* what, bool allow_self) const {
  if (rank < 0 || rank >= size_ || (!allow_self && rank == rank_)) {
    bad(std::string(op) + ": " + what + " " + std::to_string(rank) +
        " is not allowed: it must be in [0, " + std::to_string(size_) + ")" +
        (allow_self ? "" : " and not this rank " + std::to_string(rank_)));
  }
}

CommRequestPtr Communicator::all_to_all_v(const Tensor& send,
                                          const std::vector<std::int64_t>& send_rows,
                                          const Tensor& recv,
                                          const std::vector<std::int64_t>& recv_rows,
                                          CommStream stream) {
  check_buffer(send, "all_to_all_v", "send");
  check_buffer(recv, "all_to_all_v", "recv");
  if (send.dim() < 1 || recv.dim() < 1) bad("all_to_all_v: send and recv need a first (row) axis");
  if (send.dtype() != recv.dtype() || trailing_shape(send) != trailing_shape(recv)) {
    bad("all_to_all_v: send " + shape_string(send.shape()) + " " +
        std::string(dtype_name(send.dtype())) + " and recv " + shape_string(recv.shape()) + " " +
        std::string(dtype_name(recv.dtype())) + " must share dtype and every axis but the first");
  }
  for (const auto* counts : {&send_rows, &recv_rows}) {
    if (static_cast<int>(counts->size()) != size_) {
      bad("all_to_all_v: " + std::to_string(counts->size()) + " counts given, the group has " +
          std::to_string(size_) + " ranks");
    }
  }
  const std::int64_t sent = checked_sum(send_rows, "send_rows");
  const std::int64_t received = checked_sum(recv_rows, "recv_rows");
  if (sent != send.size(0) || received != recv.size(0)) {
    bad("all_to_all_v: send_rows sum to " + std::to_string(sent) + " and recv_rows to " +
        std::to_string(received) + ", but send has " + std::to_string(send.size(0)) +
        " rows and recv " + std::to_string(recv.size(0)));
  }
  if (send_rows[rank_] != recv_rows[rank_]) {
    bad("all_to_all_v: this rank " + std::to_string(rank_) + " sends itself " +
        std::to_string(send_rows[rank_]) + " rows but expects " + std::to_string(recv_rows[rank_]));
  }
  const std::size_t row_bytes =
      static_cast<std::size_t>(shape_numel(trailing_shape(send))) * dtype_size(send.dtype());
  return do_all_to_all_v(send, send_rows, recv, recv_rows, row_bytes, stream);
}

CommRequestPtr Communicator::exchange_counts(const Tensor& send_counts, const Tensor& recv_counts,
                                             CommStream stream) {
  for (const Tensor* t : {&send_counts, &recv_counts}) {
    if (t->defined() && (t->dtype() != DType::i64 || t->shape() != Shape{size_})) {
      bad("exchange_counts: counts must be i64 of shape [" + std::to_string(size_) + "], got " +
          shape_string(t->shape()) + " " + std::string(dtype_name(t->dtype())));
    }
  }
  const std::vector<std::int64_t> ones(size_, 1);
  return all_to_all_v(send_counts, ones, recv_counts, ones, stream);
}

CommRequestPtr Communicator::all_reduce(const Tensor& tensor, CommStream stream) {
  check_buffer(tensor, "all_reduce", "tensor");
  if (!is_summable(tensor.dtype())) {
    bad("all_reduce: dtype " + std::string(dtype_name(tensor.dtype())) +
        " is not supported: allowed are f32, i32, i64");
  }
  return do_all_reduce(tensor, stream);
}

CommRequestPtr Communicator::reduce_scatter(const Tensor& send, const Tensor& recv,
                                            CommStream stream) {
  check_buffer(send, "reduce_scatter", "send");
  check_buffer(recv, "reduce_scatter", "recv");
  if (send.dtype() != recv.dtype() || !is_summable(send.dtype())) {
    bad("reduce_scatter: send is " + std::string(dtype_name(send.dtype())) + " and recv " +
        std::string(dtype_name(recv.dtype())) + ": both must be one of f32, i32, i64");
  }
  if (send.numel() != recv.numel() * size_) {
    bad("reduce_scatter: send has " + std::to_string(send.numel()) + " elements, it must have " +
        std::to_string(size_) + " x recv's " + std::to_string(recv.numel()));
  }
  return do_reduce_scatter(send, recv, stream);
}

CommRequestPtr Communicator::all_gather(const Tensor& send, const Tensor& recv, CommStream stream) {
  check_buffer(send, "all_gather", "send");
  check_buffer(recv, "all_gather", "recv");
  if (send.dtype() != recv.dtype() || recv.numel() != send.numel() * size_) {
    bad("all_gather: recv " + shape_string(recv.shape()) + " " +
        std::string(dtype_name(recv.dtype())) + " must have the dtype of send " +
        shape_string(send.shape()) + " " + std::string(dtype_name(send.dtype())) + " and " +
        std::to_string(size_) + " x its elements");
  }
  return do_all_gather(send, recv, stream);
}

CommRequestPtr Communicator::broadcast(const Tensor& tensor, int root, CommStream stream) {
  check_buffer(tensor, "broadcast", "tensor");
  check_rank(root, "broadcast", "root", true);
  return do_broadcast(tensor, root, stream);
}

CommRequestPtr Communicator::barrier(CommStream stream) {
  return do_barrier(stream);
}

CommRequestPtr Communicator::send(const Tensor& tensor, int peer, std::uint32_t tag,
                                  CommStream stream) {
  check_buffer(tensor, "send", "tensor");
  check_rank(peer, "send", "peer", false);
  return do_send(tensor, peer, tag, stream);
}

CommRequestPtr Communicator::recv(const Tensor& tensor, int peer, std::uint32_t tag,
                                  CommStream stream) {
  check_buffer(tensor, "recv", "tensor");
  check_rank(peer, "recv", "peer", false);
  return do_recv(tensor, peer, tag, stream);
}

}  // namespace troupe
