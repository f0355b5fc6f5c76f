// Shared checks of the Dataset interface.
#include "data/dataset.hpp"

#include <stdexcept>
#include <string>

namespace troupe {

void check_indices(const char* who, std::span<const std::int64_t> indices, std::int64_t size) {
  for (auto index : indices)
    if (index < 0 || index >= size)
      throw std::out_of_range(std::string(who) + ": sample index " + std::to_string(index) +
                              " is outside [0, " + std::to_string(size) + ")");
}

}  // namespace troupe
