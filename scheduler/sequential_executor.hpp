// The plain sequential executor: the same model, the same kernels, the same order of every
// floating-point operation as the actor runtime, with no actors and no concurrency. It is the
// reference the actor runtime is tested against (bit-identical on the CPU for every pipeline
// depth, shard count and partition count).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "actors/messages.hpp"
#include "kernels/op_params.hpp"
#include "models/model.hpp"
#include "models/optimizer_partition.hpp"

namespace troupe {

class SequentialExecutor {
 public:
  SequentialExecutor(std::shared_ptr<Model> model, std::int64_t optimizer_partitions,
                     AdamParams adam, std::uint64_t seed);

  // Forward (and, when training, backward) of every micro-batch in order, micro-batch m fully
  // before m+1, accumulating gradients. Reports what the pipeline actor reports.
  step_result run_step(std::int64_t step, bool training, const std::vector<Batch>& micro_batches);

  // Global gradient norm over all partitions (summed in partition order), clipping, and one Adam
  // step on every partition; returns the norm. `step` is 1-based.
  double apply_optimizer(std::int64_t step, float lr, float gradient_clipping);

  std::vector<OptimizerPartition>& partitions() { return partitions_; }

 private:
  std::shared_ptr<Model> model_;
  std::vector<OptimizerPartition> partitions_;
  AdamParams adam_;
  std::uint64_t seed_;
};

}  // namespace troupe
