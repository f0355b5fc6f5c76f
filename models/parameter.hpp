// Trainable parameters: a named value with its gradient, and the expert / non-expert split that
// decides over which group a gradient is reduced and its optimizer state partitioned
// (DeepSpeed's create_moe_param_groups).
#pragma once

#include <string>
#include <vector>

#include "memory/tensor.hpp"

namespace troupe {

struct Parameter {
  std::string name;
  Tensor value;
  Tensor grad;  // same shape as value, f32; backward passes accumulate into it (+=)
  bool is_expert = false;
};

// A parameter of the given shape with zero value and zero gradient.
Parameter make_parameter(std::string name, const Shape& shape, bool is_expert);

struct ParamGroups {
  std::vector<Parameter*> non_expert;
  std::vector<Parameter*> expert;
};

// Splits one optimizer parameter group into its non-expert and expert ("moe") parts, keeping the
// order of `params`; both parts keep the group's hyperparameters (the caller's business here).
// Throws std::invalid_argument on a null entry.
ParamGroups split_moe_param_groups(const std::vector<Parameter*>& params);

// Sets every gradient to zero (null entries are an error, as above).
void zero_grads(const std::vector<Parameter*>& params);

// One parameter group's values and gradients, each in one flat contiguous f32 buffer that every
// Parameter of the group views (DeepSpeed's contiguous gradients): a collective can reduce or
// gather a whole group in place, and an optimizer partition is one contiguous range of it.
struct ParameterGroupBuffers {
  std::vector<Parameter*> parameters;  // in group order: parameters[i] views the next range
  Tensor values;                       // [numel]
  Tensor grads;                        // [numel]
  std::int64_t numel() const { return values.defined() ? values.numel() : 0; }
};

struct FlatParameterGroups {
  ParameterGroupBuffers non_expert;
  ParameterGroupBuffers expert;
};

// Moves each group of `params` (split_moe_param_groups) into flat buffers, keeping every value
// and gradient, and makes each Parameter's value and grad views of them. A group that already
// lives in such buffers, in this order, is used as it is (a second executor on the same model).
// Parameters must be f32 host tensors.
FlatParameterGroups flatten_parameter_groups(const std::vector<Parameter*>& params);

}  // namespace troupe
