// What the benchmarks share: the median wall time of repeated calls and flag checks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median wall time of `iters` calls of fn after `warmup` untimed calls, in milliseconds.
template <class Fn>
double median_ms(int warmup, int iters, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  return median(ms);
}

// Throws std::invalid_argument naming the flag when value < min.
inline void require_at_least(const char* flag, std::int64_t value, std::int64_t min) {
  if (value < min)
    throw std::invalid_argument(std::string(flag) + " = " + std::to_string(value) + ", must be ≥ " +
                                std::to_string(min));
}

}  // namespace troupe::bench
