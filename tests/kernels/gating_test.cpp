// Gating kernels against hand-derived routings (MOE-SPEC.md, k = 1, 2, 3), and their backward
// against central differences of a double-precision reference.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/gating.hpp"

using namespace troupe;
using I = std::vector<std::int64_t>;

namespace {

// The rule names are the model's (models/moe/gating_rule.hpp); the kernels take the GatingLoss
// each rule maps to, and the reference below is written per rule, so the test keeps both.
enum class GatingRule { top1, top2, topk };

GatingLoss loss_of(GatingRule rule) {
  if (rule == GatingRule::top1) return GatingLoss{};
  if (rule == GatingRule::top2) return GatingLoss{true, true, false};
  return GatingLoss{true, false, true};
}

constexpr bool kKeepHighestLogits = true;  // drop policy "probs"
constexpr bool kKeepFirstTokens = false;   // drop policy "position"

// Owns the arrays one gating call writes.
struct Routing {
  std::int64_t S, E, k;
  std::vector<float> gates, weight;
  I expert, slot, exp_counts, kept_counts;
  float l_aux = 0.0f;

  Routing(std::int64_t s, std::int64_t e, std::int64_t k_)
      : S(s),
        E(e),
        k(k_),
        gates(s * e),
        weight(s * k_),
        expert(s * k_),
        slot(s * k_),
        exp_counts(e),
        kept_counts(e) {}
  cpu::GatingOutput out() {
    return {gates.data(),      expert.data(),      weight.data(), slot.data(),
            exp_counts.data(), kept_counts.data(), &l_aux};
  }
};

// Logits with `high` at each token's listed experts (in order high, high − 1, …) and 0 elsewhere.
std::vector<float> peaked_logits(std::int64_t E, const std::vector<I>& chosen, float high) {
  std::vector<float> logits(chosen.size() * E, 0.0f);
  for (std::size_t s = 0; s < chosen.size(); ++s)
    for (std::size_t j = 0; j < chosen[s].size(); ++j)
      logits[s * E + chosen[s][j]] = high - static_cast<float>(j);
  return logits;
}

std::vector<double> softmax_row(const double* x, std::int64_t n) {
  double max = x[0];
  for (std::int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  std::vector<double> p(n);
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += p[i] = std::exp(x[i] - max);
  for (auto& v : p) v /= sum;
  return p;
}

// Σ a·weight + b·l_aux in double for a fixed routing (expert ids, kept flags), straight from the
// spec's formulas.
double reference_objective(GatingRule rule, const std::vector<double>& logits, std::int64_t S,
                           std::int64_t E, std::int64_t k, const I& expert, const I& slot,
                           const std::vector<double>& a, double b) {
  double total = 0.0;
  std::vector<double> me(E, 0.0), count(E, 0.0);
  for (std::int64_t s = 0; s < S; ++s) {
    const std::vector<double> g = softmax_row(&logits[s * E], E);
    for (std::int64_t e = 0; e < E; ++e) me[e] += g[e] / S;
    double kept_sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j)
      if (slot[s * k + j] >= 0) kept_sum += g[expert[s * k + j]];
    const double denom = std::max(kept_sum, static_cast<double>(FLT_EPSILON));
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t c = s * k + j;
      if (rule != GatingRule::top2 || j == 0) count[expert[c]] += 1.0;
      if (slot[c] < 0) continue;
      total += a[c] * (rule == GatingRule::top1 ? g[expert[c]] : g[expert[c]] / denom);
    }
  }
  const double coef = rule == GatingRule::topk ? static_cast<double>(E) / k : E;
  double l_aux = 0.0;
  for (std::int64_t e = 0; e < E; ++e) l_aux += me[e] * count[e] / S;
  return total + b * coef * l_aux;
}

}  // namespace

TEST_CASE("gating_capacity: ceil(S / E · factor · k) bounded below by min_capacity") {
  CHECK(cpu::gating_capacity(10, 4, 1, 1.0, 4) == 4);    // ceil(2.5) = 3 < 4
  CHECK(cpu::gating_capacity(10, 4, 1, 1.0, 0) == 3);    // ceil(2.5)
  CHECK(cpu::gating_capacity(64, 4, 1, 1.25, 4) == 20);  // 16 · 1.25
  CHECK(cpu::gating_capacity(8, 4, 2, 1.0, 0) == 4);     // exactly 4: no spurious round-up
  CHECK(cpu::gating_capacity(10, 4, 2, 1.0, 4) == 5);    // k = 2 doubles the factor
  CHECK(cpu::gating_capacity(9, 4, 3, 1.0, 0) == 7);     // ceil(6.75)
  // 10 / 3 · (0.2 · 3) is exactly 2; in float64 0.2 · 3 = 0.6000000000000001 would round C up to 3,
  // the reference's float32 product gives 2.
  CHECK(cpu::gating_capacity(10, 3, 3, 0.2, 0) == 2);
  CHECK_THROWS_AS(cpu::gating_capacity(10, 4, 1, 0.0, 4), std::invalid_argument);
  CHECK_THROWS_AS(cpu::gating_capacity(10, 4, 5, 1.0, 4), std::invalid_argument);
  CHECK_THROWS_AS(cpu::gating_capacity(10, 4, 1, 1.0, -1), std::invalid_argument);
}

TEST_CASE("top-1 gating: argmax, drops by position, l_aux and exp_counts") {
  // Tokens choose experts 0 0 0 1 0 2; expert 0 is over-full with C = 2.
  const I choice{0, 0, 0, 1, 0, 2};
  const auto logits = peaked_logits(3, {{0}, {0}, {0}, {1}, {0}, {2}}, 2.0f);
  Routing r(6, 3, 1);
  cpu::top1_gating(logits.data(), nullptr, nullptr, 6, 3, 2, r.out());
  CHECK(r.expert == choice);
  CHECK(r.slot == I{0, 1, -1, 0, -1, 0});
  CHECK(r.exp_counts == I{4, 1, 1});
  CHECK(r.kept_counts == I{2, 1, 1});
  // Each row is softmax(2, 0, 0): p on the chosen expert, q on the others.
  const double p = std::exp(2.0) / (std::exp(2.0) + 2), q = 1 / (std::exp(2.0) + 2);
  // float32 softmax of 3 entries: a few ulps (< 1e-6) of values ≤ 1.
  for (std::int64_t s = 0; s < 6; ++s)
    CHECK(r.weight[s] == Approx(r.slot[s] >= 0 ? p : 0.0).margin(1e-6));
  // l_aux = E · Σ_e mean_s(gates[:, e]) · count[e] / S
  const double me0 = (4 * p + 2 * q) / 6, me1 = (p + 5 * q) / 6, me2 = me1;
  CHECK(r.l_aux == Approx(3 * (me0 * 4 + me1 * 1 + me2 * 1) / 6).epsilon(1e-6));

  SECTION("drop_tokens = false (capacity < 0) keeps everything") {
    cpu::top1_gating(logits.data(), nullptr, nullptr, 6, 3, -1, r.out());
    CHECK(r.slot == I{0, 1, 2, 0, 3, 0});
    CHECK(r.kept_counts == r.exp_counts);
    for (std::int64_t s = 0; s < 6; ++s) CHECK(r.weight[s] == Approx(p).margin(1e-6));
  }
  SECTION("RTS keeps the C highest priorities, slots stay in position order") {
    const std::vector<float> priority{0.1f, 0.9f, 0.5f, 0.3f, 0.7f, 0.2f};
    cpu::top1_gating(logits.data(), nullptr, priority.data(), 6, 3, 2, r.out());
    CHECK(r.slot == I{-1, 0, -1, 0, 1, 0});  // expert 0 keeps tokens 1 (0.9) and 4 (0.7)
    CHECK(r.exp_counts == I{4, 1, 1});
  }
  SECTION("RSample picks argmax(logits + gumbel) but weighs with the clean softmax") {
    std::vector<float> gumbel(18, 0.0f);
    gumbel[0 * 3 + 1] = 5.0f;  // token 0: 2 + 0 < 0 + 5 → expert 1
    cpu::top1_gating(logits.data(), gumbel.data(), nullptr, 6, 3, -1, r.out());
    CHECK(r.expert[0] == 1);
    CHECK(r.weight[0] == Approx(q).margin(1e-6));
    CHECK(r.exp_counts == I{3, 2, 1});
  }
}

TEST_CASE("top-1 RTS: every over-full expert keeps exactly its C highest priorities") {
  const std::int64_t S = 64, E = 3, C = cpu::gating_capacity(S, E, 1, 1.0, 4);  // 22
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> logits(S * E), priority(S);
  for (std::int64_t i = 0; i < S * E; ++i) logits[i] = normal(rng) + (i % E == 0 ? 1.0f : 0.0f);
  for (auto& v : priority) v = unit(rng);
  Routing r(S, E, 1);
  cpu::top1_gating(logits.data(), nullptr, priority.data(), S, E, C, r.out());
  std::int64_t overfull = 0;
  for (std::int64_t e = 0; e < E; ++e) {
    CHECK(r.kept_counts[e] == std::min(r.exp_counts[e], C));
    overfull += r.exp_counts[e] > C;
    float min_kept = 2.0f, max_dropped = -1.0f;
    std::int64_t next_slot = 0;
    for (std::int64_t s = 0; s < S; ++s) {
      if (r.expert[s] != e) continue;
      if (r.slot[s] >= 0) {
        CHECK(r.slot[s] == next_slot++);  // position order among the kept
        min_kept = std::min(min_kept, priority[s]);
      } else {
        max_dropped = std::max(max_dropped, priority[s]);
      }
    }
    CHECK(min_kept > max_dropped);
  }
  CHECK(overfull >= 1);  // the bias on expert 0 makes the test exercise dropping
}

TEST_CASE("top-2 gating: first choices take slots first, drops by slot, renormalised weights") {
  // S = 4, E = 4, C = 2. First choices 0 0 0 1, second choices 1 2 1 0; expert 3 gets nothing.
  const auto logits = peaked_logits(4, {{0, 1}, {0, 2}, {0, 1}, {1, 0}}, 3.0f);
  Routing r(4, 4, 2);
  const std::int64_t C = cpu::gating_capacity(4, 4, 2, 1.0, 0);
  REQUIRE(C == 2);
  cpu::top2_gating(logits.data(), nullptr, 4, 4, C, r.out());
  CHECK(r.expert == I{0, 1, 0, 2, 0, 1, 1, 0});
  // Expert 0: first choices of tokens 0, 1, 2 → slots 0, 1, (2 ≥ C); token 3's second choice would
  // be slot 0 + 3 first choices. Expert 1: token 3 first (slot 0), then tokens 0, 2 (slots 1, 2).
  CHECK(r.slot == I{0, 1, 1, 0, -1, -1, 0, -1});
  CHECK(r.exp_counts == I{4, 3, 1, 0});
  CHECK(r.kept_counts == I{2, 2, 1, 0});
  // Kept pairs (e³, e²) renormalise to 1/(1 + e⁻¹) and e⁻¹/(1 + e⁻¹); a lone kept choice to 1.
  const double hi = 1 / (1 + std::exp(-1.0)), lo = 1 - hi;
  const std::vector<double> expected{hi, lo, hi, lo, 0, 0, 1, 0};
  for (std::size_t c = 0; c < expected.size(); ++c)  // float32 softmax + division: < 1e-6
    CHECK(r.weight[c] == Approx(expected[c]).margin(1e-6));
  // l_aux = E · Σ_e mean_s(gates[:, e]) · (first-choice count[e] / S); first counts (3, 1, 0, 0).
  const double z = std::exp(3.0) + std::exp(2.0) + 2;
  const double g3 = std::exp(3.0) / z, g2 = std::exp(2.0) / z, g0 = 1 / z;
  const double me0 = (3 * g3 + g2) / 4, me1 = (2 * g2 + g0 + g3) / 4;
  CHECK(r.l_aux == Approx(4 * (me0 * 3 + me1 * 1) / 4).epsilon(1e-6));

  SECTION("Gumbel noise moves only the second choice") {
    std::vector<float> gumbel(16, 0.0f);
    gumbel[0 * 4 + 3] = 10.0f;  // token 0's second choice becomes expert 3
    gumbel[1 * 4 + 0] = 10.0f;  // token 1's first choice is excluded from the second
    cpu::top2_gating(logits.data(), gumbel.data(), 4, 4, -1, r.out());
    CHECK(r.expert == I{0, 3, 0, 2, 0, 1, 1, 0});
  }
  SECTION("drop_tokens = false keeps every choice, slots still first-choices-first") {
    cpu::top2_gating(logits.data(), nullptr, 4, 4, -1, r.out());
    CHECK(r.slot == I{0, 1, 1, 0, 2, 2, 0, 3});
    CHECK(r.kept_counts == r.exp_counts);
    CHECK(r.weight[4] == Approx(hi).margin(1e-6));
    CHECK(r.weight[7] == Approx(lo).margin(1e-6));
  }
}

TEST_CASE("top-k gating (k = 3): drop policies, ties and renormalisation over kept choices") {
  // Every token picks expert 0 (logit l0) plus two of experts 1..3 (logits 0.2, 0.1); the third
  // is excluded with −5. Expert 0 has 6 routed tokens, C = ceil(6 / 4 · 3) = 5.
  const std::vector<float> l0{1.0f, 3.0f, 2.0f, 0.5f, 4.0f, 2.5f};
  const I excluded{1, 2, 3, 1, 2, 3};
  const std::int64_t S = 6, E = 4, k = 3;
  std::vector<float> logits(S * E);
  std::vector<I> expected_experts;
  for (std::int64_t s = 0; s < S; ++s) {
    logits[s * E] = l0[s];
    float next = 0.2f;
    I chosen{0};
    for (std::int64_t e = 1; e < E; ++e) {
      logits[s * E + e] = e == excluded[s] ? -5.0f : next;
      if (e != excluded[s]) {
        chosen.push_back(e);
        next -= 0.1f;
      }
    }
    expected_experts.push_back(chosen);
  }
  const std::int64_t C = cpu::gating_capacity(S, E, k, 1.0, 0);
  REQUIRE(C == 5);
  Routing r(S, E, k);

  SECTION("probs: expert 0 drops the token with its lowest logit (token 3)") {
    cpu::topk_gating(logits.data(), S, E, k, C, kKeepHighestLogits, r.out());
    for (std::int64_t s = 0; s < S; ++s)
      for (std::int64_t j = 0; j < k; ++j) CHECK(r.expert[s * k + j] == expected_experts[s][j]);
    CHECK(r.exp_counts == I{6, 4, 4, 4});
    CHECK(r.kept_counts == I{5, 4, 4, 4});
    CHECK(r.slot[3 * k] == -1);
    CHECK(I{r.slot[0], r.slot[k], r.slot[2 * k], r.slot[4 * k], r.slot[5 * k]} == I{0, 1, 2, 3, 4});
    // Token 3 renormalises over its two kept choices: softmax entries e^0.2, e^0.1 of its row.
    const double a = std::exp(0.2), b = std::exp(0.1);
    CHECK(r.weight[3 * k] == 0.0f);
    CHECK(r.weight[3 * k + 1] == Approx(a / (a + b)).margin(1e-6));
    CHECK(r.weight[3 * k + 2] == Approx(b / (a + b)).margin(1e-6));
    // l_aux = E² / k · mean_e(mean_s(gates[:, e]) · count[e] / S), from the float gates.
    double l_aux = 0.0;
    for (std::int64_t e = 0; e < E; ++e) {
      double me = 0.0;
      for (std::int64_t s = 0; s < S; ++s) me += r.gates[s * E + e] / S;
      l_aux += me * r.exp_counts[e] / S / E;
    }
    CHECK(r.l_aux == Approx(l_aux * E * E / k).epsilon(1e-6));
  }
  SECTION("position: expert 0 drops its last token (token 5)") {
    cpu::topk_gating(logits.data(), S, E, k, C, kKeepFirstTokens, r.out());
    CHECK(r.slot[5 * k] == -1);
    CHECK(I{r.slot[0], r.slot[k], r.slot[2 * k], r.slot[3 * k], r.slot[4 * k]} == I{0, 1, 2, 3, 4});
  }
  SECTION("probs ties keep the earlier token") {
    logits[0 * E] = 0.5f;  // tokens 0 and 3 tie for the lowest expert-0 logit: token 3 goes
    cpu::topk_gating(logits.data(), S, E, k, C, kKeepHighestLogits, r.out());
    CHECK(r.slot[0] == 0);
    CHECK(r.slot[3 * k] == -1);
  }
  SECTION("drop_tokens = false keeps all, weights sum to 1 per token") {
    cpu::topk_gating(logits.data(), S, E, k, -1, kKeepHighestLogits, r.out());
    CHECK(r.kept_counts == r.exp_counts);
    for (std::int64_t s = 0; s < S; ++s)
      CHECK(r.weight[s * k] + r.weight[s * k + 1] + r.weight[s * k + 2] ==
            Approx(1.0).margin(1e-6));
  }
}

TEST_CASE("gating_backward equals central differences of the double reference") {
  const std::int64_t S = 9, E = 5;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> logits(S * E);
  for (auto& v : logits) v = 1.5f * normal(rng);
  for (auto [rule, k, capacity] :
       {std::tuple{GatingRule::top1, 1, 2}, std::tuple{GatingRule::top2, 2, 3},
        std::tuple{GatingRule::topk, 3, 5}, std::tuple{GatingRule::topk, 3, -1}}) {
    CAPTURE(static_cast<int>(rule), k, capacity);
    Routing r(S, E, k);
    if (rule == GatingRule::top1)
      cpu::top1_gating(logits.data(), nullptr, nullptr, S, E, capacity, r.out());
    if (rule == GatingRule::top2) cpu::top2_gating(logits.data(), nullptr, S, E, capacity, r.out());
    if (rule == GatingRule::topk)
      cpu::topk_gating(logits.data(), S, E, k, capacity, kKeepHighestLogits, r.out());
    if (capacity > 0) {  // the test must cover dropped choices
      std::int64_t dropped = 0;
      for (auto s : r.slot) dropped += s < 0;
      CHECK(dropped > 0);
    }
    std::vector<float> a(S * k);
    for (auto& v : a) v = normal(rng);
    const float b = 0.7f;
    std::vector<float> grad(S * E);
    cpu::gating_backward(loss_of(rule), r.gates.data(), r.expert.data(), r.slot.data(), a.data(), b,
                         S, E, k, grad.data());
    const std::vector<double> a64(a.begin(), a.end());
    std::vector<double> x(logits.begin(), logits.end());
    for (std::int64_t i = 0; i < S * E; ++i) {
      const double h = 1e-6, saved = x[i];
      x[i] = saved + h;
      const double up = reference_objective(rule, x, S, E, k, r.expert, r.slot, a64, b);
      x[i] = saved - h;
      const double down = reference_objective(rule, x, S, E, k, r.expert, r.slot, a64, b);
      x[i] = saved;
      // Central differences in double: error ~h² + 1e-16/h ≈ 1e-10. The kernel works in float32
      // on O(1) values with sums of ≤ E terms: error ≲ 1e-6.
      CHECK(grad[i] == Approx((up - down) / (2 * h)).margin(1e-5));
    }
  }
}

TEST_CASE("gating kernels reject bad sizes") {
  std::vector<float> logits(8, 0.0f);
  Routing r(4, 2, 2);
  CHECK_THROWS_AS(cpu::topk_gating(logits.data(), 4, 2, 3, -1, kKeepHighestLogits, r.out()),
                  std::invalid_argument);
  CHECK_THROWS_AS(cpu::top1_gating(logits.data(), nullptr, nullptr, 0, 2, -1, r.out()),
                  std::invalid_argument);
  CHECK_THROWS_AS(cpu::top2_gating(logits.data(), nullptr, 4, 1, -1, r.out()),
                  std::invalid_argument);
}
