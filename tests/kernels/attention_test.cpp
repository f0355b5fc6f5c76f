// Causal self-attention CPU kernel against a naive per-head double-precision reference: forward
// values, the causal property, and the backward by central finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/attention.hpp"

using namespace troupe::cpu;

namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

std::vector<float> uniform(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = dist(rng);
  return v;
}

std::size_t qkv_size(const AttentionShape& s) {
  return static_cast<std::size_t>(s.batch * s.seq_len * 3 * s.channels);
}
std::size_t out_size(const AttentionShape& s) {
  return static_cast<std::size_t>(s.batch * s.seq_len * s.channels);
}
std::size_t att_size(const AttentionShape& s) {
  return static_cast<std::size_t>(s.batch * s.heads * s.seq_len * s.seq_len);
}

struct Reference {
  std::vector<double> out, att;
};

// One query at a time: p_j ∝ exp(q_i·k_j / sqrt(hs)) over j <= i, out_i = Σ_j p_j v_j.
Reference naive_attention(const AttentionShape& s, const std::vector<double>& qkv) {
  const std::int64_t t_n = s.seq_len, c = s.channels, hs = c / s.heads;
  Reference r{std::vector<double>(out_size(s), 0.0), std::vector<double>(att_size(s), 0.0)};
  auto at = [&](std::int64_t b, std::int64_t t, std::int64_t part, std::int64_t h, std::int64_t d) {
    return qkv[((b * t_n + t) * 3 + part) * c + h * hs + d];
  };
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h)
      for (std::int64_t i = 0; i < t_n; ++i) {
        std::vector<double> p(static_cast<std::size_t>(i + 1));
        double max = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (std::int64_t d = 0; d < hs; ++d) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          p[j] = dot / std::sqrt(static_cast<double>(hs));
          max = std::max(max, p[j]);
        }
        double sum = 0.0;
        for (double& e : p) sum += (e = std::exp(e - max));
        for (std::int64_t j = 0; j <= i; ++j) {
          p[j] /= sum;
          r.att[((b * s.heads + h) * t_n + i) * t_n + j] = p[j];
          for (std::int64_t d = 0; d < hs; ++d)
            r.out[(b * t_n + i) * c + h * hs + d] += p[j] * at(b, j, 2, h, d);
        }
      }
  return r;
}

// Odd sequence lengths, one head and several, head size 1, and a single position (T = 1).
std::vector<AttentionShape> test_shapes() {
  return {{2, 5, 12, 3}, {2, 7, 6, 2}, {1, 4, 5, 5}, {3, 1, 4, 1}};
}

}  // namespace

TEST_CASE("attention_forward matches the naive per-head reference") {
  unsigned seed = 1;
  for (const AttentionShape& s : test_shapes()) {
    CAPTURE(s.batch, s.seq_len, s.channels, s.heads);
    const std::vector<float> qkv = uniform(qkv_size(s), ++seed);
    std::vector<float> out(out_size(s), kNan), att(att_size(s), kNan);
    attention_forward(s, qkv.data(), out.data(), att.data());
    const Reference ref = naive_attention(s, {qkv.begin(), qkv.end()});
    // |q·k|/sqrt(hs) <= sqrt(hs) <= 2 and out is a convex combination of |v| <= 1, so every
    // fp32 result carries at most a few ulps (6e-8) per summed term, ≤ ~20 terms: ≈ 1.2e-6
    // worst case (observed: < 1e-7). 4e-6 sits ~3× above that bound.
    const double tol = 4e-6;
    for (std::size_t i = 0; i < out.size(); ++i) CHECK(std::abs(out[i] - ref.out[i]) <= tol);
    for (std::size_t i = 0; i < att.size(); ++i) {
      CHECK(std::abs(att[i] - ref.att[i]) <= tol);
      if (ref.att[i] == 0.0) CHECK(att[i] == 0.0f);  // above the diagonal: exactly zero
    }
  }
}

TEST_CASE("attention_forward is causal: a later token never changes earlier outputs") {
  const AttentionShape s{2, 6, 8, 2};
  const std::int64_t t_n = s.seq_len, c = s.channels;
  const std::vector<float> qkv = uniform(qkv_size(s), 42);
  std::vector<float> out(out_size(s)), att(att_size(s));
  attention_forward(s, qkv.data(), out.data(), att.data());
  for (std::int64_t changed = 0; changed < t_n; ++changed) {
    CAPTURE(changed);
    std::vector<float> edited = qkv;  // new q, k and v for every head of token `changed`, batch 0
    for (std::int64_t col = 0; col < 3 * c; ++col) edited[changed * 3 * c + col] += 0.5f;
    std::vector<float> out2(out_size(s)), att2(att_size(s));
    attention_forward(s, edited.data(), out2.data(), att2.data());
    // Masked scores never reach the softmax and masked probabilities are exact zeros, so earlier
    // positions (and all of batch 1) must be bitwise equal; the edited ones must differ.
    for (std::int64_t t = 0; t < t_n; ++t) {
      bool same = true;
      for (std::int64_t col = 0; col < c; ++col)
        same = same && out[t * c + col] == out2[t * c + col];
      CHECK(same == (t < changed));
    }
    for (std::size_t i = out_size(s) / 2; i < out.size(); ++i) CHECK(out[i] == out2[i]);
  }
}

TEST_CASE("attention_backward matches central finite differences of the naive reference") {
  unsigned seed = 70;
  for (const AttentionShape& s : test_shapes()) {
    CAPTURE(s.batch, s.seq_len, s.channels, s.heads);
    const std::vector<float> qkv = uniform(qkv_size(s), ++seed);
    const std::vector<float> dout = uniform(out_size(s), ++seed);
    std::vector<float> out(out_size(s)), att(att_size(s)), dqkv(qkv_size(s), kNan);
    attention_forward(s, qkv.data(), out.data(), att.data());
    attention_backward(s, qkv.data(), att.data(), dout.data(), dqkv.data());

    // L = Σ dout ⊙ out in double. Central differences with step 1e-4 have truncation error
    // ~step²/6 · |L'''| ≈ 1e-9 (inputs and derivatives are O(1)) and rounding error ~1e-16/step
    // ≈ 1e-12. The fp32 kernel sums ≤ ~35 terms of size ≤ 1 per entry through two chained
    // products: ≲ 2·35·6e-8 ≈ 4e-6 worst case (observed: < 3e-7). 1e-5 sits ~2.5× above that;
    // scaling the gradient by 1.001 already fails.
    const double step = 1e-4, tol = 1e-5;
    std::vector<double> x(qkv.begin(), qkv.end());
    auto loss = [&] {
      const Reference r = naive_attention(s, x);
      double sum = 0.0;
      for (std::size_t i = 0; i < r.out.size(); ++i) sum += dout[i] * r.out[i];
      return sum;
    };
    bool nonzero = false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double saved = x[i];
      x[i] = saved + step;
      const double up = loss();
      x[i] = saved - step;
      const double down = loss();
      x[i] = saved;
      const double ref = (up - down) / (2 * step);
      CAPTURE(i);
      CHECK(std::abs(dqkv[i] - ref) <= tol);
      nonzero = nonzero || std::abs(ref) > 1e-2;
    }
    CHECK(nonzero);
  }
}

TEST_CASE("attention rejects bad shapes") {
  std::vector<float> buf(4096, 0.0f);
  float* p = buf.data();
  CHECK_THROWS_AS(attention_forward({1, 4, 10, 3}, p, p, p), std::invalid_argument);  // 10 % 3
  CHECK_THROWS_AS(attention_forward({1, 4, 12, 0}, p, p, p), std::invalid_argument);
  CHECK_THROWS_AS(attention_forward({1, 0, 12, 3}, p, p, p), std::invalid_argument);
  CHECK_THROWS_AS(attention_forward({1, 4, 12, 3}, p, nullptr, p), std::invalid_argument);
  CHECK_THROWS_AS(attention_backward({1, 4, 12, 3}, p, p, p, nullptr), std::invalid_argument);
  CHECK_THROWS_WITH(attention_backward({1, 4, 10, 4}, p, p, p, p),
                    Catch::Contains("channels = 10") && Catch::Contains("heads = 4"));
  CHECK_NOTHROW(attention_forward({0, 4, 12, 3}, nullptr, nullptr, nullptr));
}
