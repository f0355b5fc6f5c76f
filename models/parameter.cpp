// Parameters and the expert / non-expert group split (see parameter.hpp).
#include "models/parameter.hpp"

#include <stdexcept>
#include <utility>

namespace troupe {
namespace {

void check_not_null(const char* function, const std::vector<Parameter*>& params) {
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i] == nullptr)
      throw std::invalid_argument(std::string(function) + ": params[" + std::to_string(i) +
                                  "] is null");
}

}  // namespace

Parameter make_parameter(std::string name, const Shape& shape, bool is_expert) {
  return Parameter{std::move(name), Tensor::zeros(shape), Tensor::zeros(shape), is_expert};
}

ParamGroups split_moe_param_groups(const std::vector<Parameter*>& params) {
  check_not_null("split_moe_param_groups", params);
  ParamGroups groups;
  for (Parameter* p : params) (p->is_expert ? groups.expert : groups.non_expert).push_back(p);
  return groups;
}

void zero_grads(const std::vector<Parameter*>& params) {
  check_not_null("zero_grads", params);
  for (Parameter* p : params) p->grad.fill(0.0f);
}

}  // namespace troupe
