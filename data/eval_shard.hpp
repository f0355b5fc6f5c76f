// One rank's share of an evaluation split when the data-parallel ranks evaluate it together.
//
// The split's samples, in index order, are cut into `ranks` contiguous shards whose sizes differ
// by at most one, and every shard into the same number of batches, ⌈⌈n / ranks⌉ / batch_size⌉,
// whose sizes differ by at most one. Every rank therefore runs the same number of forward passes:
// the expert-parallel ranks exchange token rows in each of them, so one rank with an extra batch
// would wait forever for the others. Together the ranks' batches cover every sample exactly once.
// A split too small for that (fewer samples than ranks × batches), or one rank, is not sharded: the
// rank evaluates the whole split in batches of batch_size, the last one partial (`sharded()` is
// false; with several ranks the totals are then taken from one rank).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "data/dataset.hpp"

namespace troupe {

class EvalShard {
 public:
  // Throws std::invalid_argument for a null or empty dataset, batch_size < 1, or a rank outside
  // [0, ranks).
  EvalShard(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size, std::int64_t rank,
            std::int64_t ranks);

  bool sharded() const { return sharded_; }
  // This rank's batches as sample ranges [first, second), in order.
  const std::vector<std::pair<std::int64_t, std::int64_t>>& batches() const { return batches_; }

  // Whether the pass over this rank's batches is at its end; rewind() starts it again.
  bool finished() const { return next_ >= batches_.size(); }
  void rewind() { next_ = 0; }
  // The next batch (fresh tensors from Dataset::gather). Throws std::out_of_range when finished.
  void next(Tensor& inputs, Tensor& targets);

 private:
  std::shared_ptr<const Dataset> dataset_;
  bool sharded_ = false;
  std::vector<std::pair<std::int64_t, std::int64_t>> batches_;
  std::size_t next_ = 0;
};

}  // namespace troupe
