// A partition of the model's parameters and the Adam / AdamW state that belongs to it.
//
// ZeRO stage 1 splits the optimizer state into partitions; DeepSpeed's MoE keeps expert and
// non-expert parameters in separate groups because they are reduced over different process
// groups. `partition_parameters` puts each group (non-expert first, then expert) into flat
// contiguous buffers (models/parameter.hpp) and cuts each into `partitions` contiguous ranges, at
// multiples of the gradient-norm chunk. A partition owns its range of the values and its Adam
// state; the gradients it updates with are the ones it is handed (a handle into the group's flat
// gradient buffer, where a reduce-scatter will land them across ranks).
//
// ZeRO stage 1 over ranks: each group's flat buffer is first cut into `size` equal rank ranges of
// whole norm chunks (rank_range; the last ones may be short or empty), one per rank of the group's
// data-parallel group, and a rank's partitions split only its own range. A reduce-scatter then
// lands each rank's range of the summed gradients, and an all-gather shares the updated values.
//
// Gradient clipping needs Σ g² over everything. It is taken over fixed chunks of each group's flat
// buffer (kGradNormChunk elements; a partition reports its chunks' sums in order) and the chunk
// sums are added in chunk order, group after group, so the global norm is the same bits whatever
// the number of partitions. The optimizer partition actors and the sequential executor both use
// this class, so the arithmetic is the same on both paths.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/exec_context.hpp"
#include "kernels/op_params.hpp"
#include "memory/tensor.hpp"
#include "models/parameter.hpp"

namespace troupe {

// Elements per gradient-norm chunk.
inline constexpr std::int64_t kGradNormChunk = 4096;

class OptimizerPartition {
 public:
  // Elements [begin, end) of the group's flat buffers; `begin` is a multiple of kGradNormChunk.
  OptimizerPartition(std::int64_t index, bool expert_group, const ParameterGroupBuffers& group,
                     std::int64_t begin, std::int64_t end);

  std::int64_t index() const { return index_; }
  bool expert_group() const { return expert_group_; }
  std::int64_t numel() const { return values_.numel(); }
  std::int64_t group_begin() const { return begin_; }
  // Views of this partition's range of the group's flat value and gradient buffers.
  const Tensor& values() const { return values_; }
  const Tensor& grads() const { return grads_; }

  // Σ g² of `grads` (this partition's range, as handed to it) over each norm chunk, in order.
  std::vector<double> chunk_squared_norms(const Tensor& grads) const;
  // One Adam / AdamW step (1-based `step`) on this partition's values with `grads` (its range)
  // multiplied by grad_scale first, then clears those gradients for the next accumulation.
  void apply(const AdamParams& hp, std::int64_t step, float grad_scale, const Tensor& grads);

  // Optimizer state, [numel] each, in range order (checkpoints save and restore these).
  Tensor& exp_avg() { return exp_avg_; }
  Tensor& exp_avg_sq() { return exp_avg_sq_; }

 private:
  void check_grads(const char* function, const Tensor& grads) const;

  std::int64_t index_;
  bool expert_group_;
  std::int64_t begin_;
  Tensor values_;
  Tensor grads_;
  Tensor exp_avg_;
  Tensor exp_avg_sq_;
  ExecContext ctx_ = cpu_context();
};

// This process's place in the group a parameter group's optimizer state is partitioned over
// (size 1: it holds the whole group).
struct RankShard {
  std::int64_t rank = 0;
  std::int64_t size = 1;
};

// Norm chunks in each rank's range when `numel` elements are shared by `size` ranks: ⌈chunks /
// size⌉, so every rank's range is the same whole number of chunks (the last ranks' may run past
// `numel`: a collective pads them).
std::int64_t chunks_per_rank(std::int64_t numel, std::int64_t size);

// Elements in each rank's range, chunks_per_rank(numel, size) × kGradNormChunk: a collective's
// equal chunk, the last ranks' padded past `numel`.
std::int64_t rank_span(std::int64_t numel, std::int64_t size);

// Rank `shard.rank`'s range [first, second) of a group of `numel` elements: rank_span(numel, size)
// elements from rank × that, cut at `numel` (possibly empty).
std::pair<std::int64_t, std::int64_t> rank_range(std::int64_t numel, RankShard shard);

// Flattens the parameter groups and splits each group's rank range (rank_range; the whole group by
// default) into at most `partitions` ranges (fewer when the range has fewer norm chunks); an empty
// range yields no partitions.
std::vector<OptimizerPartition> partition_parameters(const std::vector<Parameter*>& parameters,
                                                     std::int64_t partitions,
                                                     RankShard non_expert = {},
                                                     RankShard expert = {});

// Σ of the chunk sums in order: the global squared gradient norm from every partition's
// chunk_squared_norms, partitions in order.
double sum_in_order(const std::vector<std::vector<double>>& chunk_sums);

// The clipping multiplier DeepSpeed applies: min(1, max_norm / (norm + 1e-6)); 1 when max_norm ≤ 0.
float clip_coefficient(double global_norm, float max_norm);

}  // namespace troupe
