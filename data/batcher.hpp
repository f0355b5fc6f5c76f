// Reproducible batches for a data actor: a shuffled sample order per epoch, cut into batches, with
// a position (epoch, index) that a checkpoint saves so a resumed run draws exactly the same
// batches as an uninterrupted one.
//
// Epoch e's order is a Fisher–Yates shuffle of 0..n−1 driven by std::mt19937_64 seeded through
// std::seed_seq from (seed, e), with an unbiased bounded draw written here; the engine and seed_seq
// are specified exactly by the C++ standard (std::shuffle and the distributions are not), so the
// order is the same on every platform and library. The order depends on (seed, epoch, n) only, not
// on the batch size.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.hpp"

namespace troupe {

struct BatcherPosition {
  std::int64_t epoch = 0;
  std::int64_t index = 0;  // samples of this epoch's order already handed out
  friend bool operator==(const BatcherPosition&, const BatcherPosition&) = default;
};

struct BatcherOptions {
  std::int64_t batch_size = 0;  // >= 1
  std::uint64_t seed = 0;
  bool shuffle = true;             // false: every epoch in index order
  bool drop_last = true;           // drop the last partial batch of each epoch (fixed-size batches)
  std::int64_t limit_samples = 0;  // use only the first samples of the dataset; 0 = all
};

class Batcher {
 public:
  // Throws std::invalid_argument for a null dataset, batch_size < 1, limit_samples < 0, an empty
  // dataset, or drop_last with fewer samples than one batch.
  Batcher(std::shared_ptr<const Dataset> dataset, BatcherOptions options);

  std::int64_t samples() const { return samples_; }  // per epoch, after limit_samples
  std::int64_t batches_per_epoch() const;
  const BatcherOptions& options() const { return options_; }

  // The position of the next batch; always inside an epoch (after an epoch's last batch it is
  // (epoch + 1, 0)).
  BatcherPosition position() const { return position_; }
  // Continue from a saved position. Throws std::out_of_range unless epoch >= 0 and index is in
  // [0, samples handed out per epoch).
  void seek(BatcherPosition position);

  // The next batch (batch_size samples; fewer only for the last batch of an epoch without
  // drop_last): fresh tensors from Dataset::gather.
  void next(Tensor& inputs, Tensor& targets);
  // Moves past the next batch without reading it (another data-parallel rank's micro-batch).
  void skip();

  // Epoch `epoch`'s sample order: a permutation of 0..samples()−1.
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const;

 private:
  std::int64_t epoch_end() const;  // samples handed out per epoch
  void load_order(std::int64_t epoch);
  void advance(std::int64_t count);  // past `count` samples of the current epoch

  std::shared_ptr<const Dataset> dataset_;
  BatcherOptions options_;
  std::int64_t samples_ = 0;
  BatcherPosition position_;
  std::int64_t order_epoch_ = -1;  // the epoch `order_` belongs to
  std::vector<std::int64_t> order_;
};

}  // namespace troupe
