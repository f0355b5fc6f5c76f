// One rank's share of an evaluation split (see eval_shard.hpp).
#include "data/eval_shard.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace troupe {

EvalShard::EvalShard(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size,
                     std::int64_t rank, std::int64_t ranks)
    : dataset_(std::move(dataset)) {
  if (!dataset_ || dataset_->size() == 0)
    throw std::invalid_argument("EvalShard: the evaluation split is empty");
  if (batch_size < 1)
    throw std::invalid_argument("EvalShard: batch size " + std::to_string(batch_size) +
                                ", must be >= 1");
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw std::invalid_argument("EvalShard: rank " + std::to_string(rank) + " of " +
                                std::to_string(ranks) + " is not a rank");
  const std::int64_t n = dataset_->size();
  const std::int64_t largest_shard = (n + ranks - 1) / ranks;
  const std::int64_t per_rank = (largest_shard + batch_size - 1) / batch_size;
  // Every shard (at least n / ranks samples) must fill each of its batches with one sample.
  sharded_ = ranks > 1 && n / ranks >= per_rank;
  if (!sharded_) {
    // The whole split in batches of batch_size, the last one partial.
    for (std::int64_t first = 0; first < n; first += batch_size)
      batches_.emplace_back(first, std::min(n, first + batch_size));
    return;
  }
  const std::int64_t first = n * rank / ranks;
  const std::int64_t size = n * (rank + 1) / ranks - first;
  for (std::int64_t b = 0; b < per_rank; ++b)
    batches_.emplace_back(first + size * b / per_rank, first + size * (b + 1) / per_rank);
}

void EvalShard::next(Tensor& inputs, Tensor& targets) {
  if (finished()) throw std::out_of_range("EvalShard::next: the pass is finished (rewind first)");
  const auto [first, last] = batches_[next_++];
  std::vector<std::int64_t> indices(static_cast<std::size_t>(last - first));
  std::iota(indices.begin(), indices.end(), first);
  dataset_->gather(indices, inputs, targets);
}

}  // namespace troupe
