// Reductions and element-wise helpers against exact references: inputs are integers or lie on a
// 2^-20 grid, so every double sum is exact and results can be compared bit for bit. The backwards
// are checked against central differences of double-precision references, and max's tie rule by
// hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/reduce.hpp"

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

TEST_CASE("sum_backward and squared_l2_norm_backward match central differences") {
  const std::int64_t n = 29;
  const auto x = test::random_floats(n, -2.0f, 2.0f, 7);
  const double dout = 0.7;

  SECTION("sum") {
    const auto loss = [&](const std::vector<double>& xs) {
      double total = 0.0;
      for (double v : xs) total += v;
      return dout * total;
    };
    std::vector<float> dx(n, NAN);
    cpu::sum_backward(dout, dx.data(), n);
    // dx is dout rounded to fp32 (2^-24 relative); the difference quotient of a linear loss is
    // exact up to double rounding, eps·|loss| / h ≈ 1e-11.
    test::check_close(dx, test::central_difference(loss, test::to_double(x)), 1e-9, 6e-8);
  }

  SECTION("squared_l2_norm") {
    const auto loss = [&](const std::vector<double>& xs) {
      double total = 0.0;
      for (double v : xs) total += v * v;
      return dout * total;
    };
    std::vector<float> dx(n, NAN);
    cpu::squared_l2_norm_backward(x.data(), dout, dx.data(), n);
    // 2·x·dout is formed in double and rounded to fp32 once (2^-24 relative); the difference
    // quotient of a quadratic has no truncation error, only double rounding ≈ 1e-11.
    test::check_close(dx, test::central_difference(loss, test::to_double(x)), 1e-9, 6e-8);
  }
}

TEST_CASE("max_backward sends the gradient to the first maximum") {
  SECTION("distinct values: central differences") {
    // A shuffled ramp 0.5 apart: the ±1e-4 steps never change which element is the maximum.
    const std::vector<float> x = {-1.0f, 2.0f, 0.5f, -0.5f, 1.5f, 0.0f, 1.0f};
    const auto n = static_cast<std::int64_t>(x.size());
    const float dout = -1.25f;
    const auto loss = [&](const std::vector<double>& xs) {
      return dout * *std::max_element(xs.begin(), xs.end());
    };
    std::vector<float> dx(n, NAN);
    cpu::max_backward(x.data(), dout, dx.data(), n);
    // dx is exactly dout or 0; the quotient of a locally linear loss only adds double rounding.
    test::check_close(dx, test::central_difference(loss, test::to_double(x)), 1e-9);
  }

  SECTION("ties: only the first of the equal maxima, the one max() returns") {
    const std::vector<float> x = {1.0f, 3.0f, -2.0f, 3.0f, 3.0f};
    std::vector<float> dx(5, NAN);
    cpu::max_backward(x.data(), 2.0f, dx.data(), 5);
    CHECK(dx == std::vector<float>{0.0f, 2.0f, 0.0f, 0.0f, 0.0f});
  }

  SECTION("maximum last, single element, and n < 1") {
    const std::vector<float> x = {-7.0f, -3.5f, -9.0f, -3.25f};
    std::vector<float> dx(4, NAN);
    cpu::max_backward(x.data(), 0.5f, dx.data(), 4);
    CHECK(dx == std::vector<float>{0.0f, 0.0f, 0.0f, 0.5f});
    cpu::max_backward(x.data(), 0.5f, dx.data(), 1);
    CHECK(dx[0] == 0.5f);
    CHECK_THROWS_AS(cpu::max_backward(x.data(), 0.5f, dx.data(), 0), std::invalid_argument);
  }
}

TEST_CASE("sum_rows_backward broadcasts dout to every row") {
  const std::int64_t rows = 5, cols = 7;
  const auto x = test::random_floats(rows * cols, -1.0f, 1.0f, 8);
  const auto dout = test::random_floats(cols, -1.0f, 1.0f, 9);
  const auto loss = [&](const std::vector<double>& xs) {
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) total += dout[c] * xs[r * cols + c];
    return total;
  };
  std::vector<float> dx(rows * cols, NAN);  // overwritten, not accumulated
  cpu::sum_rows_backward(dout.data(), dx.data(), rows, cols);
  // dx copies dout exactly; the difference quotient of a linear loss only adds double rounding.
  test::check_close(dx, test::central_difference(loss, test::to_double(x)), 1e-9);
}

TEST_CASE("scale, axpy, add, mul and mul_add") {
  const std::int64_t n = 37;
  const auto a = test::random_integers(n, -100, 100, 5);
  const auto b = test::random_integers(n, -100, 100, 6);

  std::vector<float> scaled = a;
  cpu::scale(scaled.data(), 0.5f, n);
  std::vector<float> sum(n, NAN);
  cpu::add(a.data(), b.data(), sum.data(), n);
  std::vector<float> y = b;
  cpu::axpy(3.0f, a.data(), y.data(), n);
  std::vector<float> product(n, NAN);
  cpu::mul(a.data(), b.data(), product.data(), n);
  std::vector<float> accumulated = b;
  cpu::mul_add(a.data(), b.data(), accumulated.data(), n);
  std::vector<float> in_place = a;  // out may alias an input
  cpu::mul(in_place.data(), b.data(), in_place.data(), n);
  // Integers below 2^24 in magnitude: every result is exact, so the checks are bit for bit.
  for (std::int64_t i = 0; i < n; ++i) {
    CHECK(scaled[i] == a[i] / 2);
    CHECK(sum[i] == a[i] + b[i]);
    CHECK(y[i] == b[i] + 3 * a[i]);
    CHECK(product[i] == a[i] * b[i]);
    CHECK(accumulated[i] == b[i] + a[i] * b[i]);
    CHECK(in_place[i] == a[i] * b[i]);
  }
}
