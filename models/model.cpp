// Model defaults and parameter sharing between replicas (see model.hpp).
#include "models/model.hpp"

#include <stdexcept>

namespace troupe {

std::shared_ptr<Model> Model::make_replica() {
  throw std::logic_error(name() + " cannot be replicated (runtime.stage_replicas must be 1)");
}

Tensor Model::forward_carry(std::int64_t, const SegmentCache&) const {
  return Tensor();
}
void Model::accept_forward_carry(std::int64_t, SegmentCache&, const Tensor&) {}
Tensor Model::backward_carry(std::int64_t, const SegmentCache&) const {
  return Tensor();
}
void Model::accept_backward_carry(std::int64_t, SegmentCache&, const Tensor&) {}

void share_parameter_values(Model& replica, Model& source) {
  const auto to = replica.parameters();
  const auto from = source.parameters();
  if (to.size() != from.size())
    throw std::invalid_argument("share_parameter_values: " + std::to_string(to.size()) + " vs " +
                                std::to_string(from.size()) + " parameters");
  for (std::size_t i = 0; i < to.size(); ++i) {
    if (to[i]->value.shape() != from[i]->value.shape() || to[i]->name != from[i]->name)
      throw std::invalid_argument("share_parameter_values: parameter " + std::to_string(i) +
                                  " is " + to[i]->name + " " + shape_string(to[i]->value.shape()) +
                                  " in the replica but " + from[i]->name + " " +
                                  shape_string(from[i]->value.shape()) + " in the source");
    to[i]->value = from[i]->value;
  }
}

}  // namespace troupe
