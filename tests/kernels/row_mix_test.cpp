// The residual MoE mix kernels against exact references: a and b are integers and the
// coefficients lie on a 2^-8 grid, so every product and sum below is exact in fp32 and the
// checks are bit for bit; and the pool's row split must not change a bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/row_mix.hpp"

using namespace troupe;

namespace {

constexpr std::int64_t kRows = 67, kCols = 29;

std::vector<float> grid_coefficients(std::uint32_t seed) {
  auto c = test::random_integers(kRows * 2, 0, 256, seed);
  for (float& v : c) v = std::ldexp(v, -8);
  return c;
}

}  // namespace

TEST_CASE("row mix forward, its coefficient gradient and row scaling are exact") {
  const auto a = test::random_integers(kRows * kCols, -64, 64, 1);
  const auto b = test::random_integers(kRows * kCols, -64, 64, 2);
  const auto g = test::random_integers(kRows * kCols, -8, 8, 3);
  const auto coef = grid_coefficients(4);
  const int threads = GENERATE(1, 3);
  INFO("threads " << threads);

  std::vector<float> out(kRows * kCols, NAN), scaled(kRows * kCols, NAN), grad_coef(kRows * 2, NAN);
  cpu::row_mix_forward(a.data(), b.data(), coef.data(), out.data(), kRows, kCols, threads);
  cpu::scale_rows_by_coefficient(g.data(), coef.data(), 1, scaled.data(), kRows, kCols, threads);
  cpu::row_mix_coefficient_backward(g.data(), a.data(), b.data(), grad_coef.data(), kRows, kCols,
                                    threads);
  for (std::int64_t r = 0; r < kRows; ++r) {
    double dot_a = 0.0, dot_b = 0.0;
    for (std::int64_t i = 0; i < kCols; ++i) {
      const std::int64_t at = r * kCols + i;
      CHECK(out[at] == double(a[at]) * coef[2 * r] + double(b[at]) * coef[2 * r + 1]);
      CHECK(scaled[at] == double(g[at]) * coef[2 * r + 1]);
      dot_a += double(g[at]) * a[at];
      dot_b += double(g[at]) * b[at];
    }
    CHECK(grad_coef[2 * r] == dot_a);
    CHECK(grad_coef[2 * r + 1] == dot_b);
  }
}

TEST_CASE("row mix backward is the gradient of Σ g · mix(a, b, coef)") {
  const std::int64_t rows = 3, cols = 4;
  const auto a = test::random_floats(rows * cols, -1.0f, 1.0f, 5);
  const auto b = test::random_floats(rows * cols, -1.0f, 1.0f, 6);
  const auto g = test::random_floats(rows * cols, -1.0f, 1.0f, 7);
  const auto coef = test::random_floats(rows * 2, 0.0f, 1.0f, 8);
  std::vector<float> grad_coef(rows * 2), grad_a(rows * cols), grad_b(rows * cols);
  cpu::row_mix_coefficient_backward(g.data(), a.data(), b.data(), grad_coef.data(), rows, cols);
  cpu::scale_rows_by_coefficient(g.data(), coef.data(), 0, grad_a.data(), rows, cols);
  cpu::scale_rows_by_coefficient(g.data(), coef.data(), 1, grad_b.data(), rows, cols);
  auto loss = [&](const std::vector<double>& av, const std::vector<double>& bv,
                  const std::vector<double>& cv) {
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t i = 0; i < cols; ++i)
        total +=
            g[r * cols + i] * (av[r * cols + i] * cv[2 * r] + bv[r * cols + i] * cv[2 * r + 1]);
    return total;
  };
  const auto ad = test::to_double(a), bd = test::to_double(b), cd = test::to_double(coef);
  // fp32 sums of a few products against double differences of a bilinear loss: 1e-5 covers the
  // fp32 rounding of the results.
  test::check_close(
      grad_coef,
      test::central_difference([&](const std::vector<double>& c) { return loss(ad, bd, c); }, cd),
      1e-5);
  test::check_close(
      grad_a,
      test::central_difference([&](const std::vector<double>& x) { return loss(x, bd, cd); }, ad),
      1e-5);
  test::check_close(
      grad_b,
      test::central_difference([&](const std::vector<double>& x) { return loss(ad, x, cd); }, bd),
      1e-5);
}
