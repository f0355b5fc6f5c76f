// The collective issue order of a round (see collective_schedule.hpp).
#include "comm/collective_schedule.hpp"

#include <algorithm>
#include <stdexcept>

namespace troupe {

const char* collective_phase_name(CollectivePhase phase) {
  switch (phase) {
    case CollectivePhase::dispatch_forward:
      return "dispatch_forward";
    case CollectivePhase::combine_forward:
      return "combine_forward";
    case CollectivePhase::dispatch_backward:
      return "dispatch_backward";
    case CollectivePhase::combine_backward:
      return "combine_backward";
  }
  return "unknown";
}

std::string to_string(const CollectiveSlot& slot) {
  return "micro-batch " + std::to_string(slot.micro_batch) + " layer " +
         std::to_string(slot.layer) + " " + collective_phase_name(slot.phase);
}

namespace {

// The phases one micro-batch walks through, in causal order.
std::vector<CollectiveSlot> micro_batch_phases(const RoundShape& shape) {
  std::vector<CollectiveSlot> phases;
  for (std::int64_t l = 0; l < shape.moe_layers; ++l) {
    phases.push_back({0, l, CollectivePhase::dispatch_forward});
    phases.push_back({0, l, CollectivePhase::combine_forward});
  }
  if (shape.training) {
    for (std::int64_t l = shape.moe_layers - 1; l >= 0; --l) {
      phases.push_back({0, l, CollectivePhase::dispatch_backward});
      phases.push_back({0, l, CollectivePhase::combine_backward});
    }
  }
  return phases;
}

}  // namespace

std::vector<CollectiveSlot> collective_schedule(const RoundShape& shape) {
  if (shape.micro_batches < 1 || shape.depth < 1 || shape.moe_layers < 0)
    throw std::invalid_argument(
        "collective_schedule: micro_batches = " + std::to_string(shape.micro_batches) +
        ", depth = " + std::to_string(shape.depth) + ", moe_layers = " +
        std::to_string(shape.moe_layers) + "; need micro_batches >= 1, depth >= 1, layers >= 0");
  const auto phases = micro_batch_phases(shape);
  const auto length = static_cast<std::int64_t>(phases.size());
  if (length == 0) return {};

  // Entry tick of every micro-batch under the pipeline's back-pressure.
  std::vector<std::int64_t> start(static_cast<std::size_t>(shape.micro_batches));
  for (std::int64_t m = 0; m < shape.micro_batches; ++m) {
    start[static_cast<std::size_t>(m)] =
        m < shape.depth ? m : start[static_cast<std::size_t>(m - shape.depth)] + length;
  }
  struct Timed {
    std::int64_t tick;
    CollectiveSlot slot;
  };
  std::vector<Timed> timed;
  timed.reserve(static_cast<std::size_t>(shape.micro_batches * length));
  for (std::int64_t m = 0; m < shape.micro_batches; ++m)
    for (std::int64_t p = 0; p < length; ++p) {
      CollectiveSlot slot = phases[static_cast<std::size_t>(p)];
      slot.micro_batch = m;
      timed.push_back({start[static_cast<std::size_t>(m)] + p, slot});
    }
  std::stable_sort(timed.begin(), timed.end(), [](const Timed& a, const Timed& b) {
    if (a.tick != b.tick) return a.tick < b.tick;
    return a.slot.micro_batch > b.slot.micro_batch;  // newest first within a tick
  });
  std::vector<CollectiveSlot> order;
  order.reserve(timed.size());
  for (const auto& t : timed) order.push_back(t.slot);
  return order;
}

}  // namespace troupe
