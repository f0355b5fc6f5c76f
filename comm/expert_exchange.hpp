// The row layout of one MoE layer's token exchange over an expert-parallel group of P ranks, each
// holding L of the layer's E = P·L experts (rank p: global experts [p·L, (p + 1)·L)).
//
// A gate sends its rows in expert-major order over all E experts, so the rows for peer p are one
// contiguous run (send_rows[p] of them). What arrives is peer-major: from peer 0 its rows for each
// of this rank's L experts, then peer 1's, …; the experts want expert-major, every peer's rows for
// local expert 0 first (DeepSpeed's experts take the same order after their all-to-all). The two
// permutations of row blocks below convert between those orders; the combine runs them in reverse,
// so each row returns to the slot it left. The counts of one layer's exchange are learned once, in
// the forward dispatch, and serve its forward combine, backward dispatch and backward combine.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/tensor.hpp"

namespace troupe {

struct ExpertExchange {
  int peers = 1;                          // P
  std::int64_t local_experts = 1;         // L
  std::vector<std::int64_t> send_rows;    // (P) rows this rank routes to peer p's experts
  std::vector<std::int64_t> recv_counts;  // (P·L) rows peer p routes to local expert e, at p·L + e

  // (P) rows arriving from each peer: Σ_e recv_counts[p·L + e].
  std::vector<std::int64_t> recv_rows() const;
  // (L + 1) the local experts' offsets in the expert-major buffer, from 0 to Σ recv_counts.
  std::vector<std::int64_t> expert_offsets() const;
};

// (P) rows per peer from a gate's (E + 1) expert offsets; throws std::invalid_argument unless
// E is a positive multiple of `peers`.
std::vector<std::int64_t> rows_per_peer(const std::vector<std::int64_t>& expert_offsets, int peers);

// (E) rows per expert from (E + 1) offsets, as an i64 tensor of shape (E, 1): what a rank sends in
// the counts exchange (L rows to each peer).
Tensor counts_tensor(const std::vector<std::int64_t>& expert_offsets);

// Received rows (peer-major) → the experts' order (expert-major), and back. Host tensors of shape
// (Σ recv_counts, width); fresh outputs.
Tensor peer_major_to_expert_major(const Tensor& rows, const ExpertExchange& exchange);
Tensor expert_major_to_peer_major(const Tensor& rows, const ExpertExchange& exchange);

}  // namespace troupe
