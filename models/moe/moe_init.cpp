// MoE parameter initialisation (see moe_init.hpp).
#include "models/moe/moe_init.hpp"

#include <cmath>

#include "models/noise.hpp"

namespace troupe {

void init_linear_uniform(float* out, std::int64_t n, std::int64_t fan_in, std::uint64_t seed,
                         InitFamily family, std::int64_t id, int part) {
  const std::uint64_t stream = (static_cast<std::uint64_t>(family) << 56) ^
                               (static_cast<std::uint64_t>(id) << 8) ^
                               static_cast<std::uint64_t>(part);
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  SeededNoise(seed, stream).uniform(out, n, -bound, bound);
}

}  // namespace troupe
