// Dispatcher: permute / combine against the reference's dense [S, E, C] one-hot formulation,
// round trips (permute → unpermute is the identity for values and gradients), the combine backward
// against central differences, dropped tokens and empty experts.
#include <catch2/catch.hpp>

#include <vector>

#include "models/moe/dispatcher.hpp"
#include "models/moe/router.hpp"
#include "moe_test_util.hpp"

using namespace troupe;
using test::random_tensor;
using test::RecordingNoise;

namespace {

struct Setup {
  std::int64_t S, d, E, k;
  bool drop_tokens;
};

RoutingPlan make_plan(const Setup& s, const Tensor& x, std::uint64_t seed = 3) {
  MoEConfig config;
  config.hidden_size = s.d;
  config.ffn_hidden_size = 2;
  config.num_experts = s.E;
  config.k = s.k;
  config.drop_tokens = s.drop_tokens;
  config.capacity_factor = 0.7;
  config.min_capacity = 1;
  RecordingNoise noise;
  return Router(config, seed).route(x, true, noise);
}

// The reference's dense tensors: slot(s, e) from the plan's rows (row − offset of e), then
// dispatched[e, c] = Σ_s mask[s, e, c] · x[s] and out[s] = Σ_{e,c} combine[s, e, c] · y[e, c].
struct Dense {
  std::int64_t C;
  std::vector<double> mask, combine;  // [S, E, C]
};

Dense dense_tensors(const RoutingPlan& plan) {
  std::int64_t C = 0;
  for (auto t : plan.tokens_per_expert) C = std::max(C, t);
  Dense dense{C, std::vector<double>(plan.tokens * plan.experts * C, 0.0),
              std::vector<double>(plan.tokens * plan.experts * C, 0.0)};
  for (std::int64_t c = 0; c < plan.tokens * plan.k; ++c) {
    if (!plan.kept(c)) continue;
    const std::int64_t s = c / plan.k, e = plan.expert[c];
    const std::int64_t slot = plan.choice_row[c] - plan.expert_offsets[e];
    dense.mask[(s * plan.experts + e) * C + slot] = 1.0;
    dense.combine[(s * plan.experts + e) * C + slot] = plan.weight[c];
  }
  return dense;
}

const Setup kSetups[] = {{13, 5, 4, 1, true},
                         {13, 5, 4, 2, true},
                         {11, 3, 5, 3, true},
                         {9, 4, 3, 2, false},
                         {7, 2, 6, 1, false}};

}  // namespace

TEST_CASE("permute_tokens and combine equal the dense one-hot einsums") {
  for (const Setup& s : kSetups) {
    CAPTURE(s.S, s.E, s.k, s.drop_tokens);
    const Tensor x = random_tensor({s.S, s.d}, 1);
    const RoutingPlan plan = make_plan(s, x);
    const Dense dense = dense_tensors(plan);
    const Tensor rows = permute_tokens(x, plan);
    REQUIRE(rows.shape() == Shape{plan.rows(), s.d});
    // Each expert's rows, padded to C, are the einsum "sec,sm->ecm" (one 1 per slot: exact).
    for (std::int64_t e = 0; e < s.E; ++e)
      for (std::int64_t slot = 0; slot < dense.C; ++slot)
        for (std::int64_t m = 0; m < s.d; ++m) {
          double v = 0.0;
          for (std::int64_t t = 0; t < s.S; ++t)
            v += dense.mask[(t * s.E + e) * dense.C + slot] * x.data<float>()[t * s.d + m];
          const bool used = slot < plan.tokens_per_expert[e];
          CHECK(v == (used ? rows.data<float>()[(plan.expert_offsets[e] + slot) * s.d + m] : 0.0));
        }

    const Tensor y = random_tensor({plan.rows(), s.d}, 2);
    const Tensor out = combine(y, plan);
    for (std::int64_t t = 0; t < s.S; ++t)
      for (std::int64_t m = 0; m < s.d; ++m) {
        double v = 0.0;  // "sec,ecm->sm"
        for (std::int64_t e = 0; e < s.E; ++e)
          for (std::int64_t slot = 0; slot < plan.tokens_per_expert[e]; ++slot)
            v += dense.combine[(t * s.E + e) * dense.C + slot] *
                 y.data<float>()[(plan.expert_offsets[e] + slot) * s.d + m];
        // float32 sum of ≤ k products of O(1) values: a few ulps.
        CHECK(out.data<float>()[t * s.d + m] == Approx(v).margin(1e-6));
      }
  }
}

TEST_CASE("permute → unpermute is the identity for values and gradients") {
  for (const Setup& s : kSetups) {
    CAPTURE(s.S, s.E, s.k, s.drop_tokens);
    const Tensor x = random_tensor({s.S, s.d}, 4);
    RoutingPlan plan = make_plan(s, x);
    // With weight 1 on kept choices, combine(permute(x)) = (number of kept choices) · x exactly.
    for (std::int64_t c = 0; c < s.S * s.k; ++c) plan.weight[c] = plan.kept(c) ? 1.0f : 0.0f;
    const Tensor back = combine(permute_tokens(x, plan), plan);
    // Unpermuting the gradient of the permuted rows sums them back onto their tokens the same way.
    Tensor grad_x = Tensor::zeros({s.S, s.d});
    permute_tokens_backward(permute_tokens(x, plan), plan, grad_x);
    for (std::int64_t t = 0; t < s.S; ++t) {
      float kept = 0.0f;
      for (std::int64_t j = 0; j < s.k; ++j) kept += plan.kept(t * s.k + j) ? 1.0f : 0.0f;
      for (std::int64_t m = 0; m < s.d; ++m) {
        CHECK(back.data<float>()[t * s.d + m] == kept * x.data<float>()[t * s.d + m]);
        CHECK(grad_x.data<float>()[t * s.d + m] == kept * x.data<float>()[t * s.d + m]);
      }
    }
  }
}

TEST_CASE("combine_backward equals central differences; dropped tokens give zero") {
  for (const Setup& s : kSetups) {
    CAPTURE(s.S, s.E, s.k, s.drop_tokens);
    const Tensor x = random_tensor({s.S, s.d}, 5);
    RoutingPlan plan = make_plan(s, x);
    const Tensor y = random_tensor({plan.rows(), s.d}, 6);
    const Tensor g = random_tensor({s.S, s.d}, 7);
    Tensor grad_y, grad_w;
    combine_backward(g, y, plan, grad_y, grad_w);
    REQUIRE(grad_y.shape() == y.shape());
    REQUIRE(grad_w.numel() == s.S * s.k);

    const auto objective = [&]() {
      const Tensor out = combine(y, plan);
      double total = 0.0;
      for (std::int64_t i = 0; i < out.numel(); ++i)
        total += double(out.data<float>()[i]) * g.data<float>()[i];
      return total;
    };
    // The objective is linear in each input, so a central difference is exact up to float32
    // rounding of the forward (≈1e-7 · |out|) divided by the step: 1e-7 · 4 / (2 · 0.05) ≈ 4e-6.
    const float h = 0.05f;
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      float& v = y.data<float>()[i];
      const float saved = v;
      v = saved + h;
      const double up = objective();
      v = saved - h;
      const double down = objective();
      v = saved;
      CHECK(grad_y.data<float>()[i] == Approx((up - down) / (2 * h)).margin(2e-5));
    }
    for (std::int64_t c = 0; c < s.S * s.k; ++c) {
      if (!plan.kept(c)) {
        CHECK(grad_w.data<float>()[c] == 0.0f);
        continue;
      }
      const float saved = plan.weight[c];
      plan.weight[c] = saved + h;
      const double up = objective();
      plan.weight[c] = saved - h;
      const double down = objective();
      plan.weight[c] = saved;
      CHECK(grad_w.data<float>()[c] == Approx((up - down) / (2 * h)).margin(2e-5));
    }
    // A token whose choices were all dropped comes out as exact zeros.
    const Tensor out = combine(y, plan);
    for (std::int64_t t = 0; t < s.S; ++t) {
      bool any = false;
      for (std::int64_t j = 0; j < s.k; ++j) any = any || plan.kept(t * s.k + j);
      if (any) continue;
      for (std::int64_t m = 0; m < s.d; ++m) CHECK(out.data<float>()[t * s.d + m] == 0.0f);
    }
  }
}

TEST_CASE("dispatcher handles experts with no tokens and rejects wrong shapes") {
  MoEConfig config;
  config.hidden_size = 2;
  config.ffn_hidden_size = 2;
  config.num_experts = 3;
  config.min_capacity = 2;
  config.capacity_factor = 0.5;  // C = max(ceil(6 / 3 · 0.5), 2) = 2
  config.use_rts = false;        // expert 0 keeps its first 2 tokens, by position
  Router router(config, 1);
  router.weight().value.copy_from(Tensor::from_vector({1, 1, 0, 0, 0, 0}, {3, 2}));
  // Every token prefers expert 0 (positive inputs): experts 1 and 2 get nothing, 4 tokens drop.
  const Tensor x = Tensor::from_vector({1, 2, 3, 1, 2, 2, 1, 1, 4, 1, 2, 3}, {6, 2});
  RecordingNoise noise;
  const RoutingPlan plan = router.route(x, false, noise);
  CHECK(plan.tokens_per_expert == std::vector<std::int64_t>{2, 0, 0});
  CHECK(plan.exp_counts == std::vector<std::int64_t>{6, 0, 0});
  const Tensor rows = permute_tokens(x, plan);
  CHECK(rows.to_vector() == std::vector<float>{1, 2, 3, 1});
  const Tensor out = combine(rows, plan);
  for (std::int64_t i = 4; i < 12; ++i) CHECK(out.data<float>()[i] == 0.0f);

  CHECK_THROWS_AS(combine(random_tensor({3, 2}, 1), plan), std::invalid_argument);
  Tensor grad_x = Tensor::zeros({5, 2});
  CHECK_THROWS_AS(permute_tokens_backward(rows, plan, grad_x), std::invalid_argument);
  Tensor grad_y, grad_w = Tensor::zeros({4});
  CHECK_THROWS_AS(combine_backward(out, rows, plan, grad_y, grad_w), std::invalid_argument);
  CHECK_THROWS_AS(permute_tokens(random_tensor({6, 3}, 1), RoutingPlan{}), std::invalid_argument);
}
