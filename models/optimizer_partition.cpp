// Parameter partitions and their Adam state (see optimizer_partition.hpp).
#include "models/optimizer_partition.hpp"

#include <algorithm>
#include <stdexcept>

#include "kernels/ops/optimizer.hpp"
#include "kernels/ops/reduce.hpp"

namespace troupe {

OptimizerPartition::OptimizerPartition(std::int64_t index, bool expert_group,
                                       const ParameterGroupBuffers& group, std::int64_t begin,
                                       std::int64_t end)
    : index_(index),
      expert_group_(expert_group),
      begin_(begin),
      values_(group.values.slice_rows(begin, end)),
      grads_(group.grads.slice_rows(begin, end)),
      exp_avg_(Tensor::zeros({end - begin})),
      exp_avg_sq_(Tensor::zeros({end - begin})) {
  if (begin % kGradNormChunk != 0)
    throw std::invalid_argument("OptimizerPartition: range begins at " + std::to_string(begin) +
                                ", not a multiple of the norm chunk " +
                                std::to_string(kGradNormChunk));
}

void OptimizerPartition::check_grads(const char* function, const Tensor& grads) const {
  if (!grads.defined() || grads.shape() != values_.shape() || grads.dtype() != DType::f32)
    throw std::invalid_argument(
        std::string(function) + ": partition " + std::to_string(index_) + " was handed gradients " +
        (grads.defined() ? shape_string(grads.shape()) : std::string("(none)")) + ", expected " +
        shape_string(values_.shape()) + " f32");
}

std::vector<double> OptimizerPartition::chunk_squared_norms(const Tensor& grads) const {
  check_grads("OptimizerPartition::chunk_squared_norms", grads);
  std::vector<double> sums;
  for (std::int64_t at = 0; at < grads.numel(); at += kGradNormChunk)
    sums.push_back(ops::squared_l2_norm(
        ctx_, grads.slice_rows(at, std::min(grads.numel(), at + kGradNormChunk))));
  return sums;
}

void OptimizerPartition::apply(const AdamParams& hp, std::int64_t step, float grad_scale,
                               const Tensor& grads) {
  check_grads("OptimizerPartition::apply", grads);
  ops::adam_step(ctx_, values_, grads, exp_avg_, exp_avg_sq_, hp, step, grad_scale);
  Tensor cleared = grads;
  cleared.fill(0.0f);
}

std::int64_t chunks_per_rank(std::int64_t numel, std::int64_t size) {
  if (size < 1)
    throw std::invalid_argument("chunks_per_rank: a group of " + std::to_string(size) + " ranks");
  const std::int64_t chunks = (numel + kGradNormChunk - 1) / kGradNormChunk;
  return (chunks + size - 1) / size;
}

std::int64_t rank_span(std::int64_t numel, std::int64_t size) {
  return chunks_per_rank(numel, size) * kGradNormChunk;
}

std::pair<std::int64_t, std::int64_t> rank_range(std::int64_t numel, RankShard shard) {
  if (shard.rank < 0 || shard.rank >= shard.size)
    throw std::invalid_argument("rank_range: rank " + std::to_string(shard.rank) +
                                " of a group of " + std::to_string(shard.size));
  const std::int64_t span = rank_span(numel, shard.size);
  return {std::min(numel, shard.rank * span), std::min(numel, (shard.rank + 1) * span)};
}

namespace {

void split_group(const ParameterGroupBuffers& group, bool expert, std::int64_t partitions,
                 RankShard shard, std::vector<OptimizerPartition>& out) {
  const auto [first, last] = rank_range(group.numel(), shard);
  if (first == last) return;
  const std::int64_t chunks = (last - first + kGradNormChunk - 1) / kGradNormChunk;
  const std::int64_t pieces = std::min(partitions, chunks);
  for (std::int64_t piece = 0; piece < pieces; ++piece) {
    // Boundaries at chunk floor(chunks·i / pieces): sizes differ by at most one chunk.
    const std::int64_t begin = first + chunks * piece / pieces * kGradNormChunk;
    const std::int64_t end = std::min(last, first + chunks * (piece + 1) / pieces * kGradNormChunk);
    out.emplace_back(static_cast<std::int64_t>(out.size()), expert, group, begin, end);
  }
}

}  // namespace

std::vector<OptimizerPartition> partition_parameters(const std::vector<Parameter*>& parameters,
                                                     std::int64_t partitions, RankShard non_expert,
                                                     RankShard expert) {
  if (partitions < 1)
    throw std::invalid_argument("partition_parameters: partitions must be >= 1, got " +
                                std::to_string(partitions));
  const FlatParameterGroups groups = flatten_parameter_groups(parameters);
  std::vector<OptimizerPartition> out;
  split_group(groups.non_expert, false, partitions, non_expert, out);
  split_group(groups.expert, true, partitions, expert, out);
  return out;
}

double sum_in_order(const std::vector<std::vector<double>>& chunk_sums) {
  double total = 0.0;
  for (const auto& partition : chunk_sums)
    for (double s : partition) total += s;
  return total;
}

float clip_coefficient(double global_norm, float max_norm) {
  if (max_norm <= 0.0f) return 1.0f;
  const double coef = static_cast<double>(max_norm) / (global_norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

}  // namespace troupe
