// The random stream of one MoE layer for one micro-batch of one step.
//
// Routing noise (RTS priorities, Gumbel, Jitter) is drawn from a counter-based generator keyed by
// (run seed, stream id), so a micro-batch gets the same noise whichever thread routes it and in
// whatever order micro-batches are processed: the actor runtime and the sequential executor see
// identical noise. Evaluation passes use a disjoint range of stream ids.
#pragma once

#include <cstdint>

namespace troupe {

constexpr std::uint64_t noise_stream_id(std::int64_t step, std::int64_t micro_batch,
                                        std::int64_t layer, bool training) {
  // 2^20 micro-batches per step and 2^10 layers are far beyond any real configuration.
  return ((static_cast<std::uint64_t>(step) << 30) |
          (static_cast<std::uint64_t>(micro_batch) << 10) | static_cast<std::uint64_t>(layer)) ^
         (training ? 0ull : 0x8000000000000000ull);
}

}  // namespace troupe
