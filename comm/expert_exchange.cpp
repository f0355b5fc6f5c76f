// Token-exchange layout (see expert_exchange.hpp).
#include "comm/expert_exchange.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace troupe {

std::vector<std::int64_t> ExpertExchange::recv_rows() const {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(peers), 0);
  for (int p = 0; p < peers; ++p)
    for (std::int64_t e = 0; e < local_experts; ++e)
      rows[static_cast<std::size_t>(p)] +=
          recv_counts.at(static_cast<std::size_t>(p * local_experts + e));
  return rows;
}

std::vector<std::int64_t> ExpertExchange::expert_offsets() const {
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(local_experts) + 1, 0);
  for (std::int64_t e = 0; e < local_experts; ++e) {
    std::int64_t rows = 0;
    for (int p = 0; p < peers; ++p)
      rows += recv_counts.at(static_cast<std::size_t>(p * local_experts + e));
    offsets[static_cast<std::size_t>(e) + 1] = offsets[static_cast<std::size_t>(e)] + rows;
  }
  return offsets;
}

std::vector<std::int64_t> rows_per_peer(const std::vector<std::int64_t>& expert_offsets,
                                        int peers) {
  const auto experts = static_cast<std::int64_t>(expert_offsets.size()) - 1;
  if (peers < 1 || experts < 1 || experts % peers != 0)
    throw std::invalid_argument("token exchange: " + std::to_string(experts) +
                                " experts cannot be split over " + std::to_string(peers) +
                                " expert-parallel ranks");
  const std::int64_t local = experts / peers;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(peers));
  for (int p = 0; p < peers; ++p)
    rows[static_cast<std::size_t>(p)] = expert_offsets[static_cast<std::size_t>((p + 1) * local)] -
                                        expert_offsets[static_cast<std::size_t>(p * local)];
  return rows;
}

Tensor counts_tensor(const std::vector<std::int64_t>& expert_offsets) {
  const auto experts = static_cast<std::int64_t>(expert_offsets.size()) - 1;
  Tensor counts = Tensor::empty({experts, 1}, DType::i64);
  auto* out = counts.data<std::int64_t>();
  for (std::int64_t e = 0; e < experts; ++e)
    out[e] = expert_offsets[static_cast<std::size_t>(e) + 1] -
             expert_offsets[static_cast<std::size_t>(e)];
  return counts;
}

namespace {

// Copies the (p, e) blocks of `rows` between the two orders.
Tensor permute_blocks(const Tensor& rows, const ExpertExchange& x, bool to_expert_major) {
  const std::int64_t total = rows.size(0);
  const std::size_t row_bytes = total == 0 ? 0 : rows.nbytes() / static_cast<std::size_t>(total);
  Tensor out = Tensor::empty(rows.shape(), rows.dtype());
  const std::vector<std::int64_t> expert_begin = x.expert_offsets();
  if (expert_begin.back() != total)
    throw std::invalid_argument("token exchange: " + std::to_string(total) +
                                " rows, but the counts add up to " +
                                std::to_string(expert_begin.back()));
  const auto* src = static_cast<const char*>(rows.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  std::vector<std::int64_t> within(static_cast<std::size_t>(x.local_experts), 0);
  std::int64_t peer_major = 0;  // where block (p, e) sits in the peer-major order
  for (int p = 0; p < x.peers; ++p) {
    for (std::int64_t e = 0; e < x.local_experts; ++e) {
      const std::int64_t n = x.recv_counts[static_cast<std::size_t>(p * x.local_experts + e)];
      const std::int64_t expert_major =
          expert_begin[static_cast<std::size_t>(e)] + within[static_cast<std::size_t>(e)];
      const std::int64_t from = to_expert_major ? peer_major : expert_major;
      const std::int64_t to = to_expert_major ? expert_major : peer_major;
      if (n > 0)
        std::memcpy(dst + static_cast<std::size_t>(to) * row_bytes,
                    src + static_cast<std::size_t>(from) * row_bytes,
                    static_cast<std::size_t>(n) * row_bytes);
      within[static_cast<std::size_t>(e)] += n;
      peer_major += n;
    }
  }
  return out;
}

}  // namespace

Tensor peer_major_to_expert_major(const Tensor& rows, const ExpertExchange& exchange) {
  return permute_blocks(rows, exchange, true);
}

Tensor expert_major_to_peer_major(const Tensor& rows, const ExpertExchange& exchange) {
  return permute_blocks(rows, exchange, false);
}

}  // namespace troupe
