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

namespace {

// The whole storage of `t` as a flat [elements] tensor.
Tensor whole_storage(const Tensor& t) {
  const auto elements = static_cast<std::int64_t>(t.storage()->bytes() / dtype_size(t.dtype()));
  return Tensor(TensorDesc{{elements}, {1}, t.dtype(), t.device(), 0}, t.storage());
}

// True when the parameters' `member` tensors already sit back to back, in order, from the start of
// one storage that they fill exactly.
bool already_flat(const std::vector<Parameter*>& group, Tensor Parameter::*member) {
  if (group.empty()) return false;
  const auto& storage = (group.front()->*member).storage();
  std::int64_t offset = 0;
  for (const Parameter* p : group) {
    const Tensor& t = p->*member;
    if (t.storage() != storage || t.desc().offset != offset || !t.desc().is_contiguous())
      return false;
    offset += t.numel();
  }
  return storage->bytes() == static_cast<std::size_t>(offset) * sizeof(float);
}

// Copies the parameters' `member` tensors into one new flat buffer and rebinds them to views.
Tensor flatten_member(const std::vector<Parameter*>& group, Tensor Parameter::*member) {
  if (already_flat(group, member)) return whole_storage(group.front()->*member);
  std::int64_t total = 0;
  for (const Parameter* p : group) total += (p->*member).numel();
  Tensor flat = Tensor::empty({total});
  std::int64_t offset = 0;
  for (Parameter* p : group) {
    Tensor& t = p->*member;
    if (t.dtype() != DType::f32 || !t.device().is_host())
      throw std::invalid_argument("flatten_parameter_groups: " + p->name + " is " +
                                  std::string(dtype_name(t.dtype())) + " on " +
                                  to_string(t.device()) + ", expected f32 host memory");
    Tensor view = flat.slice_rows(offset, offset + t.numel()).view(t.shape());
    view.copy_from(t);
    t = view;
    offset += t.numel();
  }
  return flat;
}

ParameterGroupBuffers flatten_group(std::vector<Parameter*> group) {
  ParameterGroupBuffers out;
  out.parameters = std::move(group);
  if (out.parameters.empty()) return out;
  out.values = flatten_member(out.parameters, &Parameter::value);
  out.grads = flatten_member(out.parameters, &Parameter::grad);
  return out;
}

}  // namespace

FlatParameterGroups flatten_parameter_groups(const std::vector<Parameter*>& params) {
  ParamGroups groups = split_moe_param_groups(params);
  return FlatParameterGroups{flatten_group(std::move(groups.non_expert)),
                             flatten_group(std::move(groups.expert))};
}

}  // namespace troupe
