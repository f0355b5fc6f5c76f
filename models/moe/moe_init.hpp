// Initial values of the MoE layer's parameters: PyTorch's nn.Linear default U(±1/√fan_in), drawn
// from one counter-based stream per (parameter family, global id, part). Keying expert weights by
// their global expert id makes the model the same whichever rank holds an expert, which the
// "same loss for every ep_size" invariance needs.
#pragma once

#include <cstdint>

namespace troupe {

enum class InitFamily : std::uint64_t { gate = 1, experts = 2, residual_mlp = 3, coefficient = 4 };

// out[0, n) = U(−1/√fan_in, 1/√fan_in) from SeededNoise(seed, stream of (family, id, part)).
void init_linear_uniform(float* out, std::int64_t n, std::int64_t fan_in, std::uint64_t seed,
                         InitFamily family, std::int64_t id, int part);

}  // namespace troupe
