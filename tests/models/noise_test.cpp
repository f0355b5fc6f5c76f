// SeededNoise: reproducible, counter-based (order- and chunking-independent), in range, and with
// the right first moments.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "models/noise.hpp"

using namespace troupe;

namespace {

std::vector<float> draw_uniform(SeededNoise& noise, std::int64_t n, float lo = 0, float hi = 1) {
  std::vector<float> v(n);
  noise.uniform(v.data(), n, lo, hi);
  return v;
}

}  // namespace

TEST_CASE("SeededNoise is a function of (seed, stream, counter)") {
  SeededNoise a(42, 3), b(42, 3);
  CHECK(draw_uniform(a, 7) == draw_uniform(b, 7));

  // Drawing 3 then 4 equals drawing 7 at once, whatever other streams do in between.
  SeededNoise chunked(42, 3), other(42, 4), whole(42, 3);
  auto first = draw_uniform(chunked, 3);
  draw_uniform(other, 100);
  auto second = draw_uniform(chunked, 4);
  first.insert(first.end(), second.begin(), second.end());
  CHECK(first == draw_uniform(whole, 7));
  CHECK(chunked.drawn() == 7);

  // Gumbel draws consume the same counter: its values are −log(−log U) of the uniforms.
  SeededNoise g(42, 3), u(42, 3);
  std::vector<float> gumbel(5);
  g.gumbel(gumbel.data(), 5);
  const auto unit = draw_uniform(u, 5);
  for (int i = 0; i < 5; ++i) CHECK(gumbel[i] == -std::log(-std::log(unit[i])));

  // Neighbouring streams and seeds give different numbers.
  SeededNoise s1(42, 1), s2(42, 2), t1(43, 1);
  const auto x1 = draw_uniform(s1, 16), x2 = draw_uniform(s2, 16), y1 = draw_uniform(t1, 16);
  CHECK(x1 != x2);
  CHECK(x1 != y1);
}

TEST_CASE("SeededNoise samples lie in range with the expected means") {
  SeededNoise noise(7, 0);
  const std::int64_t n = 20000;
  const auto jitter = draw_uniform(noise, n, 0.99f, 1.01f);
  double sum = 0;
  for (float v : jitter) {
    CHECK((v >= 0.99f && v <= 1.01f));
    sum += v;
  }
  // Mean of U(a, b) has standard error (b − a) / √(12 n) ≈ 4e-5 here; allow 5 of them.
  CHECK(sum / n == Approx(1.0).margin(2e-4));

  std::vector<float> g(n);
  noise.gumbel(g.data(), n);
  double gsum = 0;
  for (float v : g) {
    CHECK(std::isfinite(v));
    gsum += v;
  }
  // Gumbel(0, 1): mean γ ≈ 0.5772, standard deviation π/√6 ≈ 1.28 → standard error ≈ 0.009.
  CHECK(gsum / n == Approx(0.5772156649).margin(0.045));
}

TEST_CASE("SeededNoise rejects bad arguments") {
  SeededNoise noise(1, 1);
  float v[2];
  CHECK_THROWS_AS(noise.uniform(v, -1, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(noise.uniform(v, 2, 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(noise.gumbel(v, -3), std::invalid_argument);
  noise.uniform(v, 2, 0.5f, 0.5f);  // a degenerate interval is allowed
  CHECK(v[0] == 0.5f);
}
