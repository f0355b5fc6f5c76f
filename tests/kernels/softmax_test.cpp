// Row softmax against a double-precision reference, its backward against central differences,
// top-k against a stable sort (which is exactly "largest first, ties keep the lower index"), and
// top-k's backward against central differences away from ties and by hand at them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/softmax.hpp"

using namespace troupe;
using test::check_close;

namespace {

std::vector<double> reference_softmax(const std::vector<double>& x, std::int64_t rows,
                                      std::int64_t cols) {
  std::vector<double> y(x.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    const double row_max = *std::max_element(x.begin() + r * cols, x.begin() + (r + 1) * cols);
    double total = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) total += std::exp(x[r * cols + c] - row_max);
    for (std::int64_t c = 0; c < cols; ++c)
      y[r * cols + c] = std::exp(x[r * cols + c] - row_max) / total;
  }
  return y;
}

}  // namespace

TEST_CASE("softmax_forward matches the reference, including shifted and constant rows") {
  const std::int64_t rows = 6, cols = 11;
  auto x = test::random_floats(rows * cols, -5.0f, 5.0f, 1);
  for (std::int64_t c = 0; c < cols; ++c) {
    x[1 * cols + c] += 1000.0f;  // exp(1000) overflows without the max subtraction
    x[2 * cols + c] -= 1000.0f;  // and exp(−1000) underflows to 0/0
    x[3 * cols + c] = 2.5f;      // constant row: exactly 1/cols each
  }
  std::vector<float> y(x.size());
  cpu::softmax_forward(x.data(), y.data(), rows, cols);
  // Relative to y: exp ~1 ulp, the fp32 row sum at worst (cols − 1)·2^-24, the division ½ ulp:
  // under (cols + 2)·6e-8 ≈ 8e-7. x − max is exact for the shifted rows too (Sterbenz), and the
  // reference starts from the same rounded x.
  check_close(y, reference_softmax(test::to_double(x), rows, cols), 1e-9, 1e-6);

  SECTION("a single column is exactly 1") {
    const float one_x[3] = {-50.0f, 0.0f, 80.0f};
    float one_y[3] = {};
    cpu::softmax_forward(one_x, one_y, 3, 1);
    CHECK(one_y[0] == 1.0f);
    CHECK(one_y[1] == 1.0f);
    CHECK(one_y[2] == 1.0f);
  }
}

TEST_CASE("softmax_backward matches central differences and may run in place") {
  const std::int64_t rows = 4, cols = 9;
  const auto x = test::random_floats(rows * cols, -3.0f, 3.0f, 2);
  const auto dy = test::random_floats(rows * cols, -1.0f, 1.0f, 3);
  std::vector<float> y(x.size());
  cpu::softmax_forward(x.data(), y.data(), rows, cols);

  const auto loss = [&](const std::vector<double>& xs) {
    const auto ys = reference_softmax(xs, rows, cols);
    double total = 0.0;
    for (std::size_t i = 0; i < ys.size(); ++i) total += dy[i] * ys[i];
    return total;
  };
  const auto expected = test::central_difference(loss, test::to_double(x));

  std::vector<float> dx(x.size(), NAN);
  cpu::softmax_backward(y.data(), dy.data(), dx.data(), rows, cols);
  // y·(dy − Σ dy·y) with |dy − Σ dy·y| ≤ 2: y's ≤ 8e-7 relative error from the forward, plus
  // the fp32 dot of 9 terms (≤ 9 ulps of 1) times y ≤ 1.
  check_close(dx, expected, 1e-6, 2e-6);

  std::vector<float> in_place = dy;
  cpu::softmax_backward(y.data(), in_place.data(), in_place.data(), rows, cols);
  CHECK(in_place == dx);
}

TEST_CASE("topk returns the largest entries first, ties in index order") {
  SECTION("hand-written row with ties") {
    const float x[6] = {1.0f, 3.0f, -2.0f, 3.0f, 2.0f, 3.0f};
    std::int64_t indices[4];
    float values[4];
    cpu::topk(x, 1, 6, 4, indices, values);
    CHECK(std::vector<std::int64_t>(indices, indices + 4) == std::vector<std::int64_t>{1, 3, 5, 4});
    CHECK(std::vector<float>(values, values + 4) == std::vector<float>{3, 3, 3, 2});
  }

  SECTION("random rows full of ties against a stable sort, for every k") {
    const std::int64_t rows = 7, cols = 13;
    const auto x = test::random_integers(rows * cols, -3, 3, 4);  // 7 values: many ties
    for (std::int64_t k = 0; k <= cols; ++k) {
      std::vector<std::int64_t> indices(rows * k, -1);
      std::vector<float> values(rows * k, NAN);
      cpu::topk(x.data(), rows, cols, k, indices.data(), values.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        std::vector<std::int64_t> order(cols);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
          return x[r * cols + a] > x[r * cols + b];
        });
        for (std::int64_t j = 0; j < k; ++j) {
          INFO("k = " << k << ", row " << r << ", rank " << j);
          REQUIRE(indices[r * k + j] == order[j]);
          REQUIRE(values[r * k + j] == x[r * cols + order[j]]);
        }
      }
    }
  }

  SECTION("k outside [0, cols] throws") {
    const float x[3] = {1.0f, 2.0f, 3.0f};
    std::int64_t indices[4];
    float values[4];
    CHECK_THROWS_AS(cpu::topk(x, 1, 3, 4, indices, values), std::invalid_argument);
    CHECK_THROWS_AS(cpu::topk(x, 1, 3, -1, indices, values), std::invalid_argument);
  }
}

TEST_CASE("topk_backward matches central differences where the selection is locally constant") {
  const std::int64_t rows = 5, cols = 11, k = 3;
  // A shuffled 0.25-step ramp per row: distinct values 0.25 apart, so the ±1e-4 steps of the
  // central difference never change which entries are selected.
  std::vector<float> x(rows * cols);
  const auto shuffle_keys = test::random_floats(rows * cols, 0.0f, 1.0f, 5);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<std::int64_t> order(cols);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return shuffle_keys[r * cols + a] < shuffle_keys[r * cols + b];
    });
    for (std::int64_t c = 0; c < cols; ++c) x[r * cols + order[c]] = 0.25f * c - 1.0f;
  }
  const auto dvalues = test::random_floats(rows * k, -1.0f, 1.0f, 6);

  // Σ dvalues · (the k largest of each row, largest first), selected in double.
  const auto loss = [&](const std::vector<double>& xs) {
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      std::vector<double> row(xs.begin() + r * cols, xs.begin() + (r + 1) * cols);
      std::sort(row.begin(), row.end(), std::greater<>());
      for (std::int64_t j = 0; j < k; ++j) total += dvalues[r * k + j] * row[j];
    }
    return total;
  };
  const auto expected = test::central_difference(loss, test::to_double(x));

  std::vector<std::int64_t> indices(rows * k);
  std::vector<float> values(rows * k);
  cpu::topk(x.data(), rows, cols, k, indices.data(), values.data());
  std::vector<float> dx(x.size(), NAN);  // every entry must be written
  cpu::topk_backward(indices.data(), dvalues.data(), rows, cols, k, dx.data());
  // dx is a copy of dvalues or 0; the central difference of this piecewise-linear loss is exact up
  // to double rounding, eps·|loss| / h ≈ 1e-11.
  check_close(dx, expected, 1e-9);
}

TEST_CASE("topk_backward sends gradient only to the tied entries topk kept") {
  SECTION("hand-written row with ties") {
    // topk keeps indices {1, 3} of the three tied 3s (the test above checks this order).
    const float x[6] = {1.0f, 3.0f, -2.0f, 3.0f, 2.0f, 3.0f};
    std::int64_t indices[2];
    float values[2];
    cpu::topk(x, 1, 6, 2, indices, values);
    const float dvalues[2] = {0.5f, -4.0f};
    std::vector<float> dx(6, NAN);
    cpu::topk_backward(indices, dvalues, 1, 6, 2, dx.data());
    CHECK(dx == std::vector<float>{0.0f, 0.5f, 0.0f, -4.0f, 0.0f, 0.0f});
  }

  SECTION("k = 0 zeroes dx") {
    std::vector<float> dx(6, NAN);
    cpu::topk_backward(nullptr, nullptr, 2, 3, 0, dx.data());
    CHECK(dx == std::vector<float>(6, 0.0f));
  }

  SECTION("bad k or index throws and leaves dx untouched") {
    const std::int64_t indices[2] = {0, 3};
    const float dvalues[2] = {1.0f, 1.0f};
    std::vector<float> dx(3, 7.0f);
    CHECK_THROWS_AS(cpu::topk_backward(indices, dvalues, 1, 3, 4, dx.data()),
                    std::invalid_argument);
    CHECK_THROWS_AS(cpu::topk_backward(indices, dvalues, 1, 3, -1, dx.data()),
                    std::invalid_argument);
    CHECK_THROWS_AS(cpu::topk_backward(indices, dvalues, 1, 3, 2, dx.data()), std::out_of_range);
    const std::int64_t negative[1] = {-1};
    CHECK_THROWS_AS(cpu::topk_backward(negative, dvalues, 1, 3, 1, dx.data()), std::out_of_range);
    CHECK(dx == std::vector<float>(3, 7.0f));
  }
}
