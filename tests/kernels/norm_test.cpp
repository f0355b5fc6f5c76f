// LayerNorm and RMSNorm against double-precision references (outputs and saved statistics), and
// their backward passes against central differences of those references.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/norm.hpp"

using namespace troupe;
using test::central_difference;
using test::check_close;
using test::to_double;

namespace {

constexpr std::int64_t kRows = 5, kCols = 13;
constexpr float kEps = 1e-5f;

struct Reference {
  std::vector<double> y, mean, rstd;
};

Reference reference_layernorm(const std::vector<double>& x, const std::vector<double>& gamma,
                              const std::vector<double>& beta) {
  Reference ref{std::vector<double>(x.size()), std::vector<double>(kRows),
                std::vector<double>(kRows)};
  for (std::int64_t r = 0; r < kRows; ++r) {
    double mean = 0.0, var = 0.0;
    for (std::int64_t c = 0; c < kCols; ++c) mean += x[r * kCols + c] / kCols;
    for (std::int64_t c = 0; c < kCols; ++c)
      var += (x[r * kCols + c] - mean) * (x[r * kCols + c] - mean) / kCols;
    const double rstd = 1.0 / std::sqrt(var + double(kEps));
    for (std::int64_t c = 0; c < kCols; ++c)
      ref.y[r * kCols + c] = (x[r * kCols + c] - mean) * rstd * gamma[c] + beta[c];
    ref.mean[r] = mean;
    ref.rstd[r] = rstd;
  }
  return ref;
}

Reference reference_rmsnorm(const std::vector<double>& x, const std::vector<double>& gamma) {
  Reference ref{std::vector<double>(x.size()), {}, std::vector<double>(kRows)};
  for (std::int64_t r = 0; r < kRows; ++r) {
    double ms = 0.0;
    for (std::int64_t c = 0; c < kCols; ++c) ms += x[r * kCols + c] * x[r * kCols + c] / kCols;
    const double rstd = 1.0 / std::sqrt(ms + double(kEps));
    for (std::int64_t c = 0; c < kCols; ++c)
      ref.y[r * kCols + c] = x[r * kCols + c] * rstd * gamma[c];
    ref.rstd[r] = rstd;
  }
  return ref;
}

double weighted_sum(const std::vector<float>& w, const std::vector<double>& v) {
  double total = 0.0;
  for (std::size_t i = 0; i < v.size(); ++i) total += w[i] * v[i];
  return total;
}

// x rows with different scales and offsets, so statistics differ per row; row 0 has |mean| ≫ std.
std::vector<float> make_input() {
  auto x = test::random_floats(kRows * kCols, -2.0f, 2.0f, 1);
  for (std::int64_t r = 0; r < kRows; ++r)
    for (std::int64_t c = 0; c < kCols; ++c)
      x[r * kCols + c] = x[r * kCols + c] * float(r + 1) + (r == 0 ? 30.0f : float(r) - 2.0f);
  return x;
}

}  // namespace

TEST_CASE("layernorm forward matches the reference and backward matches finite differences") {
  const auto x = make_input();
  const auto gamma = test::random_floats(kCols, 0.5f, 1.5f, 2);
  const auto beta = test::random_floats(kCols, -0.5f, 0.5f, 3);
  const auto dy = test::random_floats(kRows * kCols, -1.0f, 1.0f, 4);

  std::vector<float> y(x.size()), mean(kRows), rstd(kRows);
  cpu::layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(),
                         kRows, kCols, kEps);
  const auto ref = reference_layernorm(to_double(x), to_double(gamma), to_double(beta));
  // The statistics are accumulated in double and rounded once to fp32: mean within ulp/2
  // (2^-24 ≈ 6e-8 relative); rstd also carries the fp32 rounding of each x − mean, a few ulps.
  check_close(mean, ref.mean, 1e-9, 1e-7);
  check_close(rstd, ref.rstd, 0.0, 4e-7);
  // y inherits the fp32 mean's rounding times rstd: ulp(30)/2 · 0.9 ≈ 9e-7 absolute for row 0
  // (|mean| ≈ 30); then a few ulps relative of |y| ≤ 3.
  check_close(y, ref.y, 1.5e-6, 1e-6);

  const auto dgamma0 = test::random_floats(kCols, -1.0f, 1.0f, 5);
  const auto dbeta0 = test::random_floats(kCols, -1.0f, 1.0f, 6);
  std::vector<float> dx(x.size(), NAN), dgamma = dgamma0, dbeta = dbeta0;
  cpu::layernorm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(), dx.data(),
                          dgamma.data(), dbeta.data(), kRows, kCols);

  const auto xd = to_double(x), gd = to_double(gamma), bd = to_double(beta);
  const auto dx_expected = central_difference(
      [&](const std::vector<double>& v) {
        return weighted_sum(dy, reference_layernorm(v, gd, bd).y);
      },
      xd);
  auto dgamma_expected = central_difference(
      [&](const std::vector<double>& v) {
        return weighted_sum(dy, reference_layernorm(xd, v, bd).y);
      },
      gd);
  auto dbeta_expected = central_difference(
      [&](const std::vector<double>& v) {
        return weighted_sum(dy, reference_layernorm(xd, gd, v).y);
      },
      bd);
  for (std::int64_t c = 0; c < kCols; ++c) {
    dgamma_expected[c] += dgamma0[c];  // parameter gradients accumulate
    dbeta_expected[c] += dbeta0[c];
  }
  // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)): x̂ carries the ≈ 9e-7 absolute error of the forward
  // above (row 0), times O(1) factors; then a few ulps of the cancelling O(1) terms.
  check_close(dx, dx_expected, 2e-6, 4e-6);
  // Sums over 5 rows of dy·x̂ (|·| ≤ 3), each x̂ off by up to ≈ 9e-7 as above.
  check_close(dgamma, dgamma_expected, 2e-6, 2e-6);
  // Five fp32 additions of values ≤ 4: 5·ulp(4)/2 ≈ 1.2e-6.
  check_close(dbeta, dbeta_expected, 1.5e-6);
}

TEST_CASE("layernorm of a constant row gives beta, with rstd = 1/sqrt(eps)") {
  const std::vector<float> x(kCols, 2.5f);  // the fp32 mean of 2.5s is exact, so x − mean = 0
  const auto gamma = test::random_floats(kCols, 0.5f, 1.5f, 7);
  const auto beta = test::random_floats(kCols, -0.5f, 0.5f, 8);
  std::vector<float> y(kCols), mean(1), rstd(1);
  cpu::layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), 1,
                         kCols, kEps);
  CHECK(y == beta);
  CHECK(mean[0] == 2.5f);
  CHECK(rstd[0] == Approx(1.0 / std::sqrt(double(kEps))).epsilon(1e-6));  // a few fp32 ulps
}

TEST_CASE("rmsnorm forward matches the reference and backward matches finite differences") {
  const auto x = make_input();
  const auto gamma = test::random_floats(kCols, 0.5f, 1.5f, 9);
  const auto dy = test::random_floats(kRows * kCols, -1.0f, 1.0f, 10);

  std::vector<float> y(x.size()), rstd(kRows);
  cpu::rmsnorm_forward(x.data(), gamma.data(), y.data(), rstd.data(), kRows, kCols, kEps);
  const auto ref = reference_rmsnorm(to_double(x), to_double(gamma));
  // rstd is computed in double and rounded once (ulp/2 ≈ 6e-8 relative); y = x·rstd·gamma adds two
  // fp32 roundings: ≈ 2 ulps (1.2e-7) relative.
  check_close(rstd, ref.rstd, 0.0, 2e-7);
  check_close(y, ref.y, 1e-8, 3e-7);

  const auto dgamma0 = test::random_floats(kCols, -1.0f, 1.0f, 11);
  std::vector<float> dx(x.size(), NAN), dgamma = dgamma0;
  cpu::rmsnorm_backward(x.data(), gamma.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(),
                        kRows, kCols);
  const auto xd = to_double(x), gd = to_double(gamma);
  const auto dx_expected = central_difference(
      [&](const std::vector<double>& v) { return weighted_sum(dy, reference_rmsnorm(v, gd).y); },
      xd);
  auto dgamma_expected = central_difference(
      [&](const std::vector<double>& v) { return weighted_sum(dy, reference_rmsnorm(xd, v).y); },
      gd);
  for (std::int64_t c = 0; c < kCols; ++c) dgamma_expected[c] += dgamma0[c];
  // Same structure as LayerNorm without the mean, so no inherited mean error: a few fp32 ulps of
  // the cancelling O(1) terms for dx, and five fp32 additions of values ≤ 3 for dgamma.
  check_close(dx, dx_expected, 3e-7, 1e-6);
  check_close(dgamma, dgamma_expected, 5e-7, 1e-6);
}

TEST_CASE("norms reject rows of zero width") {
  const float x = 1.0f, gamma = 1.0f, beta = 0.0f;
  float y = 0.0f, mean = 0.0f, rstd = 0.0f;
  CHECK_THROWS_AS(cpu::layernorm_forward(&x, &gamma, &beta, &y, &mean, &rstd, 1, 0, kEps),
                  std::invalid_argument);
  CHECK_THROWS_AS(cpu::rmsnorm_forward(&x, &gamma, &y, &rstd, 1, 0, kEps), std::invalid_argument);
}
