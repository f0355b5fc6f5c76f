// An independent reference of MoE routing, written from /work/shared/MOE-SPEC.md as naive
// per-token loops in double precision that share no code with models/moe or the gating kernels:
// which experts each token picks, the capacity, which choices an over-full expert drops (position
// order, Random Token Selection priorities, or router logits) and the combine weights. The MoE
// layer tests compare the layer's routing plan and forward output against it, so a wrong drop
// decision fails them. O(S²·k²) drop ranking: meant for a few dozen tokens.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "models/moe/moe_config.hpp"
#include "moe_test_util.hpp"

namespace troupe::test {

// The random numbers the spec's routing consumes; empty where the configuration draws none.
struct RoutingDraws {
  std::vector<float> jitter;    // S·d, U(0.99, 1.01) multiplying the gate's input (Jitter)
  std::vector<float> gumbel;    // S·E: RSample's (k = 1) or the 2nd expert's (k = 2) noise
  std::vector<float> priority;  // S, U(0, 1): Random Token Selection priorities (k = 1)
};

struct ReferenceRouting {
  std::int64_t capacity = -1;            // C; −1 with drop_tokens = false (no capacity)
  std::vector<std::int64_t> expert;      // per choice c = s·k + j
  std::vector<bool> kept;                // per choice
  std::vector<double> weight;            // per choice: combine weight, 0 when dropped
  std::vector<std::int64_t> exp_counts;  // (E) choices requested, before drops

  std::int64_t dropped() const { return std::count(kept.begin(), kept.end(), false); }
};

inline std::vector<double> reference_softmax(const std::vector<double>& x) {
  const double max = *std::max_element(x.begin(), x.end());
  double sum = 0.0;
  std::vector<double> p(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) sum += p[i] = std::exp(x[i] - max);
  for (double& v : p) v /= sum;
  return p;
}

// The router logits Wg · (x_s ⊙ jitter_s) of every token, [S][E]; jitter empty = none. wg is
// [E, d] and x [S, d], row-major.
inline std::vector<std::vector<double>> reference_logits(const std::vector<double>& x,
                                                         const std::vector<double>& wg,
                                                         const std::vector<float>& jitter,
                                                         std::int64_t E, std::int64_t d) {
  const auto S = static_cast<std::int64_t>(x.size()) / d;
  std::vector<std::vector<double>> logits(static_cast<std::size_t>(S),
                                          std::vector<double>(static_cast<std::size_t>(E), 0.0));
  for (std::int64_t s = 0; s < S; ++s)
    for (std::int64_t e = 0; e < E; ++e)
      for (std::int64_t i = 0; i < d; ++i)
        logits[s][e] += wg[e * d + i] * x[s * d + i] * (jitter.empty() ? 1.0 : jitter[s * d + i]);
  return logits;
}

// The draws the spec says this configuration makes, taken from what the layer drew (matched by
// kind, range and size, not by order). Fails the test when a draw is missing or one too many.
inline RoutingDraws spec_draws(const MoEConfig& c, bool training, std::int64_t S,
                               const std::vector<RecordingNoise::Call>& calls) {
  const bool jitter = training && c.noisy_gate_policy == "Jitter";
  const bool gumbel = training && ((c.k == 1 && c.noisy_gate_policy == "RSample") ||
                                   (c.k == 2 && c.top2_2nd_expert_sampling));
  // Unlike the noise policy, Random Token Selection applies in evaluation too, as DeepSpeed's
  // TopKGate passes use_rts whether training or not.
  const bool priority = c.k == 1 && c.use_rts && c.drop_tokens;
  RoutingDraws draws;
  for (const auto& call : calls) {
    if (call.kind == 'u' && call.n == S * c.hidden_size && call.lo == 0.99f && call.hi == 1.01f)
      draws.jitter = call.values;
    else if (call.kind == 'g' && call.n == S * c.num_experts)
      draws.gumbel = call.values;
    else if (call.kind == 'u' && call.n == S && call.lo == 0.0f && call.hi == 1.0f)
      draws.priority = call.values;
    else
      FAIL("unexpected draw '" << call.kind << "' of " << call.n);
  }
  CHECK(calls.size() == static_cast<std::size_t>(jitter + gumbel + priority));
  CHECK(draws.jitter.empty() != jitter);
  CHECK(draws.gumbel.empty() != gumbel);
  CHECK(draws.priority.empty() != priority);
  return draws;
}

// The spec's routing of S tokens with router logits [S, E] (from reference_logits).
inline ReferenceRouting reference_routing(const MoEConfig& c, bool training,
                                          const std::vector<std::vector<double>>& logits,
                                          const RoutingDraws& draws) {
  const auto S = static_cast<std::int64_t>(logits.size());
  const std::int64_t E = c.num_experts, k = c.k;
  ReferenceRouting r;
  r.expert.assign(static_cast<std::size_t>(S * k), -1);
  r.exp_counts.assign(static_cast<std::size_t>(E), 0);

  // Experts per token. argmax(gates) = argmax(logits); ties go to the lower expert id.
  const auto argmax = [E](const std::vector<double>& v, std::int64_t skip) {
    std::int64_t best = -1;
    for (std::int64_t e = 0; e < E; ++e)
      if (e != skip && (best < 0 || v[e] > v[best])) best = e;
    return best;
  };
  for (std::int64_t s = 0; s < S; ++s) {
    std::vector<double> noisy = logits[s];
    if (!draws.gumbel.empty())
      for (std::int64_t e = 0; e < E; ++e) noisy[e] += draws.gumbel[s * E + e];
    if (k == 1) {
      r.expert[s] = argmax(noisy, -1);  // RSample: noisy logits; else plain (no draws)
    } else if (k == 2) {
      r.expert[2 * s] = argmax(logits[s], -1);
      r.expert[2 * s + 1] = argmax(noisy, r.expert[2 * s]);
    } else {
      std::vector<double> rest = logits[s];
      for (std::int64_t j = 0; j < k; ++j) {
        r.expert[s * k + j] = argmax(rest, -1);
        rest[r.expert[s * k + j]] = -INFINITY;
      }
    }
    for (std::int64_t j = 0; j < k; ++j) ++r.exp_counts[r.expert[s * k + j]];
  }

  // Drops: choice (s, j) is kept when fewer than C choices of its expert come before it in the
  // expert's keep order.
  r.kept.assign(static_cast<std::size_t>(S * k), true);
  if (c.drop_tokens) {
    const double factor = training ? c.capacity_factor : c.eval_capacity_factor;
    r.capacity =
        std::max(static_cast<std::int64_t>(std::ceil(static_cast<double>(S) / E * factor * k)),
                 c.min_capacity);
    const bool probs = k > 2 && c.drop_policy == "probs";
    // Does choice (t, i) come before choice (s, j) of the same expert?
    const auto before = [&](std::int64_t t, std::int64_t i, std::int64_t s, std::int64_t j) {
      const std::int64_t e = r.expert[s * k + j];
      if (!draws.priority.empty())  // RTS: higher priority first, ties by position
        return draws.priority[t] > draws.priority[s] ||
               (draws.priority[t] == draws.priority[s] && t < s);
      if (probs)  // higher router logit first, ties by position
        return logits[t][e] > logits[s][e] || (logits[t][e] == logits[s][e] && t < s);
      if (k == 2 && i != j) return i < j;  // all first choices before all second choices
      return t < s;                        // position
    };
    for (std::int64_t s = 0; s < S; ++s)
      for (std::int64_t j = 0; j < k; ++j) {
        std::int64_t ahead = 0;
        for (std::int64_t t = 0; t < S; ++t)
          for (std::int64_t i = 0; i < k; ++i)
            if ((t != s || i != j) && r.expert[t * k + i] == r.expert[s * k + j] &&
                before(t, i, s, j))
              ++ahead;
        r.kept[s * k + j] = ahead < r.capacity;
      }
  }

  // Combine weights: top-1 the raw probability; k ≥ 2 renormalised over the kept choices.
  r.weight.assign(static_cast<std::size_t>(S * k), 0.0);
  for (std::int64_t s = 0; s < S; ++s) {
    const std::vector<double> gates = reference_softmax(logits[s]);
    double kept_sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j)
      if (r.kept[s * k + j]) kept_sum += gates[r.expert[s * k + j]];
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t choice = s * k + j;
      if (!r.kept[choice]) continue;
      const double g = gates[r.expert[choice]];
      r.weight[choice] = k == 1 ? g : g / std::max(kept_sum, double(FLT_EPSILON));
    }
  }
  return r;
}

}  // namespace troupe::test
