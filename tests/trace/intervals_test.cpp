// Interval arithmetic (trace/intervals.hpp): unions, intersections and their lengths on small
// hand-checked lists; every bound is an integer, so results are exact.
#include <catch2/catch.hpp>

#include "trace/intervals.hpp"

using namespace troupe;

TEST_CASE("merged joins overlapping and touching intervals and drops empty ones") {
  CHECK(merged({{5, 7}, {0, 2}, {1, 3}, {3, 4}, {6, 6}, {9, 8}}) == Intervals{{0, 4}, {5, 7}});
  CHECK(length(merged({{0, 10}, {2, 5}, {8, 12}})) == 12);
}

TEST_CASE("intersected keeps the time both lists cover, and overlap is its length") {
  const Intervals a{{0, 10}, {20, 30}};
  const Intervals b{{5, 22}, {25, 26}, {29, 40}};
  const Intervals both{{5, 10}, {20, 22}, {25, 26}, {29, 30}};
  CHECK(intersected(a, b) == both);
  CHECK(intersected(b, a) == both);
  CHECK(overlap(a, b) == 9);
  CHECK(intersected(a, {}).empty());
  CHECK(intersected({{0, 5}}, {{5, 10}}).empty());  // [0,5) and [5,10) share no time
}
