// Interval union and intersection lengths (see intervals.hpp).
#include "trace/intervals.hpp"

#include <algorithm>

namespace troupe {

Intervals merged(Intervals v) {
  std::sort(v.begin(), v.end());
  Intervals out;
  for (const auto& [begin, end] : v) {
    if (end <= begin) continue;
    if (!out.empty() && begin <= out.back().second)
      out.back().second = std::max(out.back().second, end);
    else
      out.emplace_back(begin, end);
  }
  return out;
}

double length(const Intervals& disjoint) {
  double total = 0;
  for (const auto& [begin, end] : disjoint) total += end - begin;
  return total;
}

Intervals intersected(const Intervals& a, const Intervals& b) {
  Intervals out;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const double lo = std::max(a[i].first, b[j].first);
    const double hi = std::min(a[i].second, b[j].second);
    if (hi > lo) out.emplace_back(lo, hi);
    if (a[i].second < b[j].second)
      ++i;
    else
      ++j;
  }
  return out;
}

double overlap(const Intervals& a, const Intervals& b) {
  return length(intersected(a, b));
}

}  // namespace troupe
