// Interval arithmetic on time spans (microseconds): the union of a track's spans is its busy
// time, whatever their nesting. Shared by the trace summary and the timeline plot.
#pragma once

#include <utility>
#include <vector>

namespace troupe {

using Intervals = std::vector<std::pair<double, double>>;  // [begin, end)

// Sorted, disjoint intervals covering the same time as `v`; empty intervals vanish.
Intervals merged(Intervals v);

// Total length of disjoint intervals.
double length(const Intervals& disjoint);

// The intersection of two merged interval lists, itself merged (one sweep over both).
Intervals intersected(const Intervals& a, const Intervals& b);

// Length of the intersection of two merged interval lists.
double overlap(const Intervals& a, const Intervals& b);

}  // namespace troupe
