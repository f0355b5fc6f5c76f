// The collective issue order every rank computes for a round (comm/collective_schedule.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <tuple>

#include "comm/collective_schedule.hpp"

using namespace troupe;

namespace {

std::int64_t position(const std::vector<CollectiveSlot>& order, const CollectiveSlot& slot) {
  const auto it = std::find(order.begin(), order.end(), slot);
  REQUIRE(it != order.end());
  return it - order.begin();
}

}  // namespace

TEST_CASE("one micro-batch walks forward phases in layer order and backward phases in reverse") {
  const auto order = collective_schedule({1, 1, 2, true});
  using P = CollectivePhase;
  const std::vector<CollectiveSlot> expected{
      {0, 0, P::dispatch_forward},  {0, 0, P::combine_forward},   {0, 1, P::dispatch_forward},
      {0, 1, P::combine_forward},   {0, 1, P::dispatch_backward}, {0, 1, P::combine_backward},
      {0, 0, P::dispatch_backward}, {0, 0, P::combine_backward}};
  CHECK(order == expected);
  CHECK(collective_schedule({1, 1, 2, false}).size() == 4);  // evaluation: forward phases only
}

TEST_CASE("two MoE layers at depth 2: micro-batch 1's dispatch overlaps micro-batch 0") {
  using P = CollectivePhase;
  const auto order = collective_schedule({2, 2, 2, true});
  REQUIRE(order.size() == 16);
  // The property a sorted (micro-batch, layer, phase) order lacks: m1 enters the experts before
  // m0 turns back, and is dispatched while m0's layer-0 experts still compute.
  CHECK(position(order, {1, 0, P::dispatch_forward}) <
        position(order, {0, 1, P::dispatch_backward}));
  CHECK(position(order, {1, 0, P::dispatch_forward}) < position(order, {0, 0, P::combine_forward}));
}

TEST_CASE("every slot appears once and causal order holds within each micro-batch") {
  for (std::int64_t micro : {1, 2, 3, 5})
    for (std::int64_t depth : {1, 2, 4})
      for (std::int64_t layers : {1, 2, 3})
        for (bool training : {true, false}) {
          const auto order = collective_schedule({micro, depth, layers, training});
          const std::int64_t per = layers * (training ? 4 : 2);
          REQUIRE(static_cast<std::int64_t>(order.size()) == micro * per);
          std::set<std::tuple<std::int64_t, std::int64_t, int>> seen;
          for (const auto& s : order)
            CHECK(seen.insert({s.micro_batch, s.layer, static_cast<int>(s.phase)}).second);
          // Back-pressure: micro-batch m + depth starts only after m's last collective.
          for (std::int64_t m = 0; m + depth < micro; ++m) {
            std::int64_t last_of_m = -1, first_of_next = -1;
            for (std::size_t i = 0; i < order.size(); ++i) {
              if (order[i].micro_batch == m) last_of_m = static_cast<std::int64_t>(i);
              if (order[i].micro_batch == m + depth && first_of_next < 0)
                first_of_next = static_cast<std::int64_t>(i);
            }
            CHECK(last_of_m < first_of_next);
          }
          // Backward passes of one layer keep micro-batch order (gradient accumulation order).
          for (std::int64_t m = 0; m + 1 < micro && training; ++m)
            for (std::int64_t l = 0; l < layers; ++l)
              CHECK(position(order, {m, l, CollectivePhase::dispatch_backward}) <
                    position(order, {m + 1, l, CollectivePhase::dispatch_backward}));
        }
}

TEST_CASE("a round shape that cannot run is refused") {
  CHECK_THROWS_AS(collective_schedule({0, 1, 1, true}), std::invalid_argument);
  CHECK_THROWS_AS(collective_schedule({2, 0, 1, true}), std::invalid_argument);
  CHECK(collective_schedule({2, 1, 0, true}).empty());
}
