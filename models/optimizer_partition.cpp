// Parameter partitions and their Adam state (see optimizer_partition.hpp).
#include "models/optimizer_partition.hpp"

#include <algorithm>
#include <stdexcept>

#include "kernels/ops/optimizer.hpp"
#include "kernels/ops/reduce.hpp"

namespace troupe {

Tensor ParameterSlice::value() const {
  return parameter->value.view({parameter->value.numel()}).slice_rows(begin, end);
}

Tensor ParameterSlice::grad() const {
  return parameter->grad.view({parameter->grad.numel()}).slice_rows(begin, end);
}

OptimizerPartition::OptimizerPartition(std::int64_t index, bool expert_group,
                                       std::vector<ParameterSlice> slices)
    : index_(index), expert_group_(expert_group), slices_(std::move(slices)) {
  for (const auto& s : slices_) numel_ += s.size();
  exp_avg_ = Tensor::zeros({numel_});
  exp_avg_sq_ = Tensor::zeros({numel_});
}

double OptimizerPartition::grad_squared_norm() const {
  double total = 0.0;
  for (const auto& s : slices_) total += ops::squared_l2_norm(ctx_, s.grad());
  return total;
}

void OptimizerPartition::apply(const AdamParams& hp, std::int64_t step, float grad_scale) {
  std::int64_t offset = 0;
  for (const auto& s : slices_) {
    Tensor grad = s.grad();
    ops::adam_step(ctx_, s.value(), grad, exp_avg_.slice_rows(offset, offset + s.size()),
                   exp_avg_sq_.slice_rows(offset, offset + s.size()), hp, step, grad_scale);
    grad.fill(0.0f);
    offset += s.size();
  }
}

namespace {

void split_group(const std::vector<Parameter*>& group, bool expert, std::int64_t partitions,
                 std::vector<OptimizerPartition>& out) {
  std::int64_t total = 0;
  for (auto* p : group) total += p->value.numel();
  if (total == 0) return;
  const std::int64_t pieces = std::min(partitions, total);
  std::size_t param = 0;
  std::int64_t within = 0;  // elements of group[param] already assigned
  for (std::int64_t piece = 0; piece < pieces; ++piece) {
    // Piece boundaries at floor(total·i / pieces): sizes differ by at most one element.
    std::int64_t remaining = total * (piece + 1) / pieces - total * piece / pieces;
    std::vector<ParameterSlice> slices;
    while (remaining > 0) {
      Parameter* p = group[param];
      const std::int64_t take = std::min(remaining, p->value.numel() - within);
      slices.push_back({p, within, within + take});
      within += take;
      remaining -= take;
      if (within == p->value.numel()) {
        ++param;
        within = 0;
      }
    }
    out.emplace_back(static_cast<std::int64_t>(out.size()), expert, std::move(slices));
  }
}

}  // namespace

std::vector<OptimizerPartition> partition_parameters(const std::vector<Parameter*>& parameters,
                                                     std::int64_t partitions) {
  if (partitions < 1)
    throw std::invalid_argument("partition_parameters: partitions must be >= 1, got " +
                                std::to_string(partitions));
  const ParamGroups groups = split_moe_param_groups(parameters);
  std::vector<OptimizerPartition> out;
  split_group(groups.non_expert, false, partitions, out);
  split_group(groups.expert, true, partitions, out);
  return out;
}

float clip_coefficient(double global_norm, float max_norm) {
  if (max_norm <= 0.0f) return 1.0f;
  const double coef = static_cast<double>(max_norm) / (global_norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

}  // namespace troupe
