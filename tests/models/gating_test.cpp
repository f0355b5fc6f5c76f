// Router (gate) of the MoE layer: noise only in training, injected noise used as the spec says,
// the plan's index maps, the backward against central differences, and configuration errors.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <vector>

#include "kernels/ops/gating.hpp"
#include "models/moe/router.hpp"
#include "moe_test_util.hpp"

using namespace troupe;
using Catch::Matchers::Contains;
using test::random_tensor;
using test::RecordingNoise;

namespace {

MoEConfig small_config(std::int64_t experts, std::int64_t k) {
  MoEConfig c;
  c.hidden_size = 3;
  c.ffn_hidden_size = 5;
  c.num_experts = experts;
  c.k = k;
  return c;
}

void set_weight(Router& router, const std::vector<float>& values) {
  router.weight().value.copy_from(Tensor::from_vector(values, router.weight().value.shape()));
}

// Gate logits in double for rows of x (optionally jittered) and Wg.
std::vector<double> logits64(const Tensor& x, const Tensor& w, const Tensor& jitter) {
  const std::int64_t S = x.size(0), d = x.size(1), E = w.size(0);
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  std::vector<double> out(S * E, 0.0);
  for (std::int64_t s = 0; s < S; ++s)
    for (std::int64_t e = 0; e < E; ++e)
      for (std::int64_t i = 0; i < d; ++i)
        out[s * E + e] += double(xp[s * d + i]) *
                          (jitter.defined() ? jitter.data<float>()[s * d + i] : 1.0) *
                          wp[e * d + i];
  return out;
}

std::vector<double> softmax64(const std::vector<double>& logits, std::int64_t E) {
  std::vector<double> p(logits.size());
  for (std::size_t r = 0; r < logits.size() / E; ++r) {
    double max = logits[r * E], sum = 0;
    for (std::int64_t e = 1; e < E; ++e) max = std::max(max, logits[r * E + e]);
    for (std::int64_t e = 0; e < E; ++e) sum += p[r * E + e] = std::exp(logits[r * E + e] - max);
    for (std::int64_t e = 0; e < E; ++e) p[r * E + e] /= sum;
  }
  return p;
}

}  // namespace

TEST_CASE("Router: the noise policy draws only in training, RTS priorities in evaluation too") {
  const std::int64_t S = 8, E = 4, d = 3;
  const Tensor x = random_tensor({S, d}, 1);
  struct Case {
    std::int64_t k;
    const char* policy;
    bool drop_tokens;
    std::vector<char> training_draws;  // kinds, in order
  };
  for (const Case& c : {Case{1, "RSample", true, {'g', 'u'}}, Case{1, "Jitter", true, {'u', 'u'}},
                        Case{1, "None", false, {}}, Case{2, "None", true, {'g'}},
                        Case{2, "Jitter", true, {'u', 'g'}}, Case{3, "Jitter", true, {'u'}}}) {
    CAPTURE(c.k, c.policy, c.drop_tokens);
    MoEConfig config = small_config(E, c.k);
    config.noisy_gate_policy = c.policy;
    config.drop_tokens = c.drop_tokens;
    const Router router(config, 5);
    RecordingNoise eval_noise;
    router.route(x, /*training=*/false, eval_noise);
    // As DeepSpeed's TopKGate does, Random Token Selection (k = 1 with drops) also picks
    // evaluation's drops; no noise policy applies there.
    if (c.k == 1 && c.drop_tokens) {
      REQUIRE(eval_noise.calls().size() == 1);
      CHECK(eval_noise.calls()[0].kind == 'u');
      CHECK(eval_noise.calls()[0].n == S);
      CHECK(eval_noise.calls()[0].lo == 0.0f);
      CHECK(eval_noise.calls()[0].hi == 1.0f);
    } else {
      CHECK(eval_noise.calls().empty());
    }

    RecordingNoise noise;
    router.route(x, /*training=*/true, noise);
    REQUIRE(noise.calls().size() == c.training_draws.size());
    for (std::size_t i = 0; i < c.training_draws.size(); ++i) {
      const auto& call = noise.calls()[i];
      CHECK(call.kind == c.training_draws[i]);
      if (call.kind == 'g') CHECK(call.n == S * E);
      if (call.kind == 'u' && i == 0 && std::string(c.policy) == "Jitter") {
        CHECK(call.n == S * d);  // multiplicative jitter U(1 − 0.01, 1 + 0.01) on the gate input
        CHECK(call.lo == 0.99f);
        CHECK(call.hi == 1.01f);
      } else if (call.kind == 'u') {
        CHECK(call.n == S);  // RTS priorities U(0, 1)
        CHECK(call.lo == 0.0f);
        CHECK(call.hi == 1.0f);
      }
    }
  }
}

TEST_CASE("Router: RSample chooses by noisy logits, weighs by the clean softmax") {
  MoEConfig config = small_config(3, 1);
  config.noisy_gate_policy = "RSample";
  config.drop_tokens = false;
  Router router(config, 5);
  set_weight(router, {1, 0, 0, 0, 1, 0, 0, 0, 1});  // logits = x
  const Tensor x = Tensor::from_vector({2, 0, 0, 0, 0, 1}, {2, 3});
  RecordingNoise noise;
  noise.queue({0, 3, 0, 0, 0, 0});  // token 0: logits + gumbel = (2, 3, 0) → expert 1
  const RoutingPlan plan = router.route(x, true, noise);
  CHECK(plan.expert == std::vector<std::int64_t>{1, 2});
  // float32 softmax of 3 entries: error < 1e-6.
  CHECK(plan.weight[0] == Approx(1 / (std::exp(2.0) + 2)).margin(1e-6));
  CHECK(plan.weight[1] == Approx(std::exp(1.0) / (std::exp(1.0) + 2)).margin(1e-6));
}

TEST_CASE("Router: Jitter multiplies the gate input, the plan keeps the multiplier") {
  MoEConfig config = small_config(4, 2);
  config.noisy_gate_policy = "Jitter";
  const Router router(config, 9);
  const std::int64_t S = 6, d = 3;
  const Tensor x = random_tensor({S, d}, 2);
  RecordingNoise noise;
  std::vector<float> u(S * d);
  for (std::int64_t i = 0; i < S * d; ++i) u[i] = 0.99f + 0.001f * static_cast<float>(i);
  noise.queue(u);
  const RoutingPlan plan = router.route(x, true, noise);
  REQUIRE(plan.jitter.defined());
  CHECK(plan.jitter.to_vector() == u);
  const auto expected = softmax64(logits64(x, router.weight().value, plan.jitter), 4);
  const auto gates = plan.gates.to_vector();
  for (std::size_t i = 0; i < gates.size(); ++i)  // float32 dot of 3 terms + softmax: < 1e-6
    CHECK(gates[i] == Approx(expected[i]).margin(1e-6));
}

TEST_CASE("Router: the plan's index maps describe an expert-major buffer") {
  for (std::int64_t k : {1, 2, 3}) {
    CAPTURE(k);
    MoEConfig config = small_config(5, k);
    config.capacity_factor = 0.75;  // with min_capacity = 1, C · E < S · k: drops are certain
    config.min_capacity = 1;
    const Router router(config, 3);
    const std::int64_t S = 17;
    RecordingNoise noise;
    const RoutingPlan plan = router.route(random_tensor({S, 3}, 4, 2.0f), true, noise);
    CHECK(plan.capacity == ops::gating_capacity(S, 5, k, 0.75, 1));
    std::int64_t kept = 0;
    for (std::int64_t e = 0; e < 5; ++e) {
      CHECK(plan.expert_offsets[e + 1] - plan.expert_offsets[e] == plan.tokens_per_expert[e]);
      CHECK(plan.tokens_per_expert[e] <= std::min(plan.exp_counts[e], plan.capacity));
      kept += plan.tokens_per_expert[e];
    }
    CHECK(kept < S * k);  // some choices were dropped
    CHECK(plan.rows() == kept);
    for (std::int64_t c = 0; c < S * k; ++c) {
      if (!plan.kept(c)) {
        CHECK(plan.weight[c] == 0.0f);
        continue;
      }
      const std::int64_t row = plan.choice_row[c], e = plan.expert[c];
      CHECK(row >= plan.expert_offsets[e]);
      CHECK(row < plan.expert_offsets[e + 1]);
      CHECK(plan.row_choice[row] == c);
      CHECK(plan.row_token[row] == c / k);
    }
    CHECK(plan.local_offsets(1, 4) ==
          std::vector<std::int64_t>{0, plan.tokens_per_expert[1],
                                    plan.tokens_per_expert[1] + plan.tokens_per_expert[2],
                                    plan.expert_offsets[4] - plan.expert_offsets[1]});
  }
}

TEST_CASE("Router: evaluation uses eval_capacity_factor") {
  MoEConfig config = small_config(4, 1);
  config.capacity_factor = 2.0;
  config.eval_capacity_factor = 0.5;
  config.min_capacity = 1;
  const Router router(config, 1);
  RecordingNoise noise;
  const Tensor x = random_tensor({16, 3}, 5);
  CHECK(router.route(x, true, noise).capacity == 8);
  CHECK(router.route(x, false, noise).capacity == 2);
  config.drop_tokens = false;
  CHECK(Router(config, 1).route(x, true, noise).capacity == -1);
}

TEST_CASE("Router::backward equals central differences for x and Wg") {
  const std::int64_t S = 10, d = 3, E = 4;
  for (auto [k, policy] : {std::pair{1, "None"}, std::pair{2, "Jitter"}, std::pair{3, "None"}}) {
    CAPTURE(k, policy);
    MoEConfig config = small_config(E, k);
    config.noisy_gate_policy = policy;
    config.capacity_factor = 0.8;  // some drops; routing is fixed below, so FD stays smooth
    Router router(config, 21);
    const Tensor x = random_tensor({S, d}, 6);
    RecordingNoise noise;
    const RoutingPlan plan = router.route(x, true, noise);
    const Tensor a = random_tensor({S * k}, 7);
    const float lambda = 0.6f;

    Tensor grad_x = Tensor::zeros({S, d});
    router.backward(plan, x, a, lambda, grad_x);

    // Σ a·weight + λ·l_aux in double for the plan's fixed routing.
    const auto objective = [&](const Tensor& xx, const Tensor& ww) {
      const auto gates = softmax64(logits64(xx, ww, plan.jitter), E);
      std::vector<double> me(E, 0.0), count(E, 0.0);
      double total = 0.0;
      for (std::int64_t s = 0; s < S; ++s) {
        double kept_sum = 0.0;
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t c = s * k + j;
          if (k != 2 || j == 0) count[plan.expert[c]] += 1;
          if (plan.kept(c)) kept_sum += gates[s * E + plan.expert[c]];
        }
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t c = s * k + j;
          const double g = gates[s * E + plan.expert[c]];
          if (plan.kept(c))
            total +=
                a.data<float>()[c] * (k == 1 ? g : g / std::max(kept_sum, double(FLT_EPSILON)));
        }
        for (std::int64_t e = 0; e < E; ++e) me[e] += gates[s * E + e] / S;
      }
      double l_aux = 0.0;
      for (std::int64_t e = 0; e < E; ++e) l_aux += me[e] * count[e] / S;
      return total + lambda * l_aux * (k > 2 ? double(E) / k : E);
    };
    // Perturb one float entry; h = 1e-3 on O(1) values keeps the float32 rounding of the perturbed
    // input (≈6e-8 relative) small next to h, and the double objective's truncation error is O(h²).
    for (auto [target, grad] :
         {std::pair{x, grad_x}, std::pair{router.weight().value, router.weight().grad}}) {
      float* p = target.data<float>();
      for (std::int64_t i = 0; i < target.numel(); ++i) {
        const float saved = p[i];
        const float up_v = saved + 1e-3f, down_v = saved - 1e-3f;
        p[i] = up_v;
        const double up = objective(x, router.weight().value);
        p[i] = down_v;
        const double down = objective(x, router.weight().value);
        p[i] = saved;
        // float32 backward on O(1) values (≲1e-6) against a difference quotient over the exact
        // float step (up_v − down_v), whose O(h²) truncation error is ≲1e-6 here.
        CHECK(grad.data<float>()[i] == Approx((up - down) / (double(up_v) - down_v)).margin(1e-5));
      }
    }
  }
}

TEST_CASE("Router and MoEConfig give clear errors") {
  MoEConfig config = small_config(4, 1);
  RecordingNoise noise;
  SECTION("S < min_capacity with drop_tokens") {
    const Router router(config, 1);
    CHECK_THROWS_WITH(router.route(random_tensor({3, 3}, 1), true, noise),
                      Contains("min_capacity = 4"));
    config.drop_tokens = false;  // no capacity: any S works
    CHECK(Router(config, 1).route(random_tensor({3, 3}, 1), true, noise).rows() == 3);
  }
  SECTION("wrong input width") {
    const Router router(config, 1);
    CHECK_THROWS_WITH(router.route(random_tensor({8, 2}, 1), true, noise),
                      Contains("x has shape [8, 2]"));
  }
  SECTION("num_experts not divisible by ep_size") {
    config.ep_size = 3;
    CHECK_THROWS_WITH(config.validate(), Contains("not divisible by ep_size = 3"));
    CHECK_THROWS_AS(Router(config, 1), std::invalid_argument);
  }
  SECTION("k out of range") {
    config.k = 5;
    CHECK_THROWS_WITH(config.validate(), Contains("k = 5"));
    config.k = 0;
    CHECK_THROWS_AS(config.validate(), std::invalid_argument);
  }
  SECTION("noisy_gate_policy") {
    config.noisy_gate_policy = "Gaussian";
    CHECK_THROWS_WITH(config.validate(), Contains("\"Gaussian\" is unknown"));
    config.noisy_gate_policy = "none";
    config.validate();
    config.noisy_gate_policy = "RSample";
    config.k = 2;
    CHECK_THROWS_WITH(config.validate(), Contains("RSample\" needs k = 1"));
  }
  SECTION("other fields") {
    config.enable_expert_tensor_parallelism = true;
    CHECK_THROWS_WITH(config.validate(), Contains("not implemented yet: needs tensor parallelism"));
    config.enable_expert_tensor_parallelism = false;
    config.drop_policy = "random";
    CHECK_THROWS_WITH(config.validate(), Contains("drop_policy"));
    config.drop_policy = "position";
    config.capacity_factor = 0.0;
    CHECK_THROWS_WITH(config.validate(), Contains("capacity_factor"));
    config.capacity_factor = 1.0;
    config.hidden_size = 0;
    CHECK_THROWS_WITH(config.validate(), Contains("hidden_size"));
  }
}
