// A partition of the model's parameters and the Adam / AdamW state that belongs to it.
//
// ZeRO stage 1 splits the optimizer state into partitions; DeepSpeed's MoE keeps expert and
// non-expert parameters in separate groups because they are reduced over different process
// groups. `partition_parameters` builds that split: it flattens each group (non-expert first,
// then expert) into one element range and cuts it into `partitions` contiguous pieces of nearly
// equal size. The optimizer partition actors and the sequential executor both use this class, so
// the arithmetic (and the order of every floating-point sum) is the same on both paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/exec_context.hpp"
#include "kernels/op_params.hpp"
#include "memory/tensor.hpp"
#include "models/parameter.hpp"

namespace troupe {

// Elements [begin, end) of one parameter (flat, row-major).
struct ParameterSlice {
  Parameter* parameter = nullptr;
  std::int64_t begin = 0;
  std::int64_t end = 0;

  std::int64_t size() const { return end - begin; }
  Tensor value() const;  // a view into the parameter's storage
  Tensor grad() const;   // a view into the gradient's storage
};

class OptimizerPartition {
 public:
  OptimizerPartition(std::int64_t index, bool expert_group, std::vector<ParameterSlice> slices);

  std::int64_t index() const { return index_; }
  bool expert_group() const { return expert_group_; }
  std::int64_t numel() const { return numel_; }
  const std::vector<ParameterSlice>& slices() const { return slices_; }

  // Σ g² over this partition's gradients, in double, slices in order.
  double grad_squared_norm() const;
  // One Adam / AdamW step (1-based `step`) on this partition's elements with gradients multiplied
  // by grad_scale first, then clears the gradients for the next accumulation.
  void apply(const AdamParams& hp, std::int64_t step, float grad_scale);

  // Optimizer state, [numel] each, in slice order (checkpoints save and restore these).
  Tensor& exp_avg() { return exp_avg_; }
  Tensor& exp_avg_sq() { return exp_avg_sq_; }

 private:
  ExecContext ctx_ = cpu_context();
  std::int64_t index_;
  bool expert_group_;
  std::vector<ParameterSlice> slices_;
  std::int64_t numel_ = 0;
  Tensor exp_avg_;
  Tensor exp_avg_sq_;
};

// Splits the parameters into partitions: `partitions` pieces of the non-expert group and
// `partitions` pieces of the expert group (an empty group yields no partitions).
std::vector<OptimizerPartition> partition_parameters(const std::vector<Parameter*>& parameters,
                                                     std::int64_t partitions);

// The clipping multiplier DeepSpeed applies: min(1, max_norm / (norm + 1e-6)); 1 when max_norm ≤ 0.
float clip_coefficient(double global_norm, float max_norm);

}  // namespace troupe
