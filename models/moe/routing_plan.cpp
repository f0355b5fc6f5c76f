// RoutingPlan helpers.
#include "models/moe/routing_plan.hpp"

#include <stdexcept>
#include <string>

namespace troupe {

std::vector<std::int64_t> RoutingPlan::local_offsets(std::int64_t first, std::int64_t last) const {
  if (first < 0 || last < first || last > experts)
    throw std::out_of_range("RoutingPlan::local_offsets: experts [" + std::to_string(first) + ", " +
                            std::to_string(last) + ") out of range for " + std::to_string(experts) +
                            " experts");
  std::vector<std::int64_t> offsets(expert_offsets.begin() + first,
                                    expert_offsets.begin() + last + 1);
  for (auto& o : offsets) o -= expert_offsets[first];
  return offsets;
}

}  // namespace troupe
