// Helpers shared by the CPU kernel tests: seeded random inputs, central finite differences of a
// double-precision reference, and an element-wise closeness check that reports the worst element.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace troupe::test {

inline std::vector<float> random_floats(std::size_t n, float lo, float hi, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(n);
  for (float& v : values) v = dist(rng);
  return values;
}

// Integer-valued floats in [lo, hi]: products and sums of them stay exact in fp32 (CUTLASS's
// testbed trick), so a kernel can be compared with a reference bit for bit.
inline std::vector<float> random_integers(std::size_t n, int lo, int hi, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(dist(rng));
  return values;
}

inline std::vector<double> to_double(const std::vector<float>& values) {
  return {values.begin(), values.end()};
}

// ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h. The error is O(h²·f''') from truncation plus
// O(eps_double·|f| / h) from rounding; with h = 1e-4 and the smooth O(1)–O(10) functions of these
// tests both stay below ~1e-7, far under the fp32 kernel tolerances they are compared with.
inline std::vector<double> central_difference(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
    double h = 1e-4) {
  std::vector<double> grad(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f(x);
    x[i] = saved - h;
    const double down = f(x);
    x[i] = saved;
    grad[i] = (up - down) / (2.0 * h);
  }
  return grad;
}

// Checks |actual[i] − expected[i]| ≤ abs_tol + rel_tol·|expected[i]| for every i (NaN fails), as
// one assertion that names the worst element.
inline void check_close(const std::vector<float>& actual, const std::vector<double>& expected,
                        double abs_tol, double rel_tol = 0.0) {
  REQUIRE(actual.size() == expected.size());
  std::size_t worst = 0;
  double worst_ratio = 0.0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(actual[i] - expected[i]);
    const double bound = abs_tol + rel_tol * std::abs(expected[i]);
    double ratio = error == 0.0 ? 0.0 : error / bound;
    if (std::isnan(ratio)) ratio = INFINITY;
    if (ratio > worst_ratio) {
      worst = i;
      worst_ratio = ratio;
    }
  }
  INFO("worst element " << worst << " of " << actual.size() << ": actual " << actual[worst]
                        << ", expected " << expected[worst]
                        << ", error / allowed = " << worst_ratio);
  CHECK(worst_ratio <= 1.0);
}

}  // namespace troupe::test
