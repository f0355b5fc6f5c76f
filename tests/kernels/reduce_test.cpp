// Reductions and element-wise helpers against exact references: inputs are integers or lie on a
// 2^-20 grid, so every double sum is exact and results can be compared bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/reduce.hpp"

using namespace troupe;

TEST_CASE("sum is exact where fp32 accumulation is not, and independent of chunking") {
  // Multiples of 2^-20 below 4 in magnitude: every partial sum of 1001 of them is an integer
  // below 2^32 grid steps, exact in double's 53-bit significand but not in fp32's 24 bits, which is
  // why sum accumulates in double.
  const std::int64_t n = 1001;
  const auto ints = test::random_integers(n, -(1 << 22), 1 << 22, 1);
  std::vector<float> x(n);
  std::int64_t exact = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::ldexp(ints[i], -20);
    exact += static_cast<std::int64_t>(ints[i]);
  }
  const double total = cpu::sum(x.data(), n);
  CHECK(total == std::ldexp(double(exact), -20));
  CHECK(cpu::sum(x.data(), 437) + cpu::sum(x.data() + 437, n - 437) == total);
  CHECK(cpu::sum(x.data(), 0) == 0.0);
}

TEST_CASE("squared_l2_norm is the exact sum of squares") {
  const auto x = test::random_integers(333, -1000, 1000, 2);
  double expected = 0.0;  // integers below 2^53: exact
  for (float v : x) expected += double(v) * v;
  CHECK(cpu::squared_l2_norm(x.data(), 333) == expected);
  CHECK(cpu::squared_l2_norm(x.data(), 0) == 0.0);
}

TEST_CASE("max finds the largest element wherever it is and rejects n < 1") {
  std::vector<float> x = {-7.0f, -3.5f, -9.0f, -3.25f};
  CHECK(cpu::max(x.data(), 4) == -3.25f);  // all negative, maximum last
  CHECK(cpu::max(x.data(), 1) == -7.0f);
  x[0] = 2.0f;
  CHECK(cpu::max(x.data(), 4) == 2.0f);  // maximum first
  CHECK_THROWS_AS(cpu::max(x.data(), 0), std::invalid_argument);
}

TEST_CASE("sum_rows adds column sums into out") {
  const std::int64_t rows = 9, cols = 7;
  const auto x = test::random_integers(rows * cols, -50, 50, 3);
  std::vector<float> out = test::random_integers(cols, -50, 50, 4);
  std::vector<float> expected = out;
  for (std::int64_t c = 0; c < cols; ++c)
    for (std::int64_t r = 0; r < rows; ++r) expected[c] += x[r * cols + c];
  cpu::sum_rows(x.data(), out.data(), rows, cols);
  CHECK(out == expected);
}

TEST_CASE("scale, axpy and add") {
  const std::int64_t n = 37;
  const auto a = test::random_integers(n, -100, 100, 5);
  const auto b = test::random_integers(n, -100, 100, 6);

  std::vector<float> scaled = a;
  cpu::scale(scaled.data(), 0.5f, n);
  std::vector<float> sum(n, NAN);
  cpu::add(a.data(), b.data(), sum.data(), n);
  std::vector<float> y = b;
  cpu::axpy(3.0f, a.data(), y.data(), n);
  for (std::int64_t i = 0; i < n; ++i) {
    CHECK(scaled[i] == a[i] / 2);
    CHECK(sum[i] == a[i] + b[i]);
    CHECK(y[i] == b[i] + 3 * a[i]);
  }
}
