// The MoE layer: routing and forward against a naive double-precision per-token loop written from
// the spec (moe_reference_routing.hpp: experts, capacity, drops, weights; then Σ w · expert_e(x),
// the spec's l_aux, Residual MoE's mix), drops exactly where capacity puts them (position order
// and Random Token Selection), backward against central differences of that reference,
// bit-identity of the composed forward / backward with the actor runtime's pieces and expert
// shards, zero-token experts, fully dropped tokens, parameter groups and initialisation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "models/moe/dispatcher.hpp"
#include "models/moe/moe_layer.hpp"
#include "moe_reference_routing.hpp"
#include "moe_test_util.hpp"

using namespace troupe;
using test::random_tensor;
using test::RecordingNoise;
using test::ReferenceRouting;
using test::RoutingDraws;

namespace {

MoEConfig make_config(std::int64_t E, std::int64_t k, bool drop_tokens) {
  MoEConfig c;
  c.hidden_size = 5;
  c.ffn_hidden_size = 7;
  c.num_experts = E;
  c.k = k;
  c.drop_tokens = drop_tokens;
  c.capacity_factor = 0.8;  // with drop_tokens, some choices drop
  c.activation = Activation::gelu_tanh;
  return c;
}

double activate(Activation a, double x) {
  switch (a) {
    case Activation::relu:
      return x > 0 ? x : 0;
    case Activation::gelu_tanh:
      return 0.5 * x *
             (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
    case Activation::gelu_erf:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::silu:
      return x / (1 + std::exp(-x));
  }
  return 0;
}

std::vector<double> to_double(const Tensor& t) {
  const auto v = t.to_vector();
  return {v.begin(), v.end()};
}

// The layer in double precision, computed token by token from the spec, for a fixed routing
// (expert ids and kept flags from the reference routing: routing is piecewise constant).
class Reference {
 public:
  Reference(MoELayer& layer, const ReferenceRouting& routing, const RoutingDraws& draws)
      : config_(layer.config()), routing_(routing), jitter_(draws.jitter) {
    for (Parameter* p : layer.parameters()) params_[p->name] = to_double(p->value);
  }

  std::map<std::string, std::vector<double>>& params() { return params_; }

  // Fills out (S·d) and l_aux.
  void forward(const std::vector<double>& x, std::vector<double>& out, double& l_aux) const {
    const std::int64_t d = config_.hidden_size, E = config_.num_experts, k = config_.k;
    const auto all_logits = test::reference_logits(x, params_.at("moe.gate.weight"), jitter_, E, d);
    const auto S = static_cast<std::int64_t>(all_logits.size());
    out.assign(S * d, 0.0);
    std::vector<double> me(E, 0.0), count(E, 0.0);
    for (std::int64_t s = 0; s < S; ++s) {
      const double* xs = &x[s * d];
      const std::vector<double> gates = test::reference_softmax(all_logits[s]);
      for (std::int64_t e = 0; e < E; ++e) me[e] += gates[e] / S;
      double kept_sum = 0.0;
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t c = s * k + j;
        if (k != 2 || j == 0) count[routing_.expert[c]] += 1;
        if (routing_.kept[c]) kept_sum += gates[routing_.expert[c]];
      }
      std::vector<double> moe(d, 0.0);
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t c = s * k + j, e = routing_.expert[c];
        if (!routing_.kept[c]) continue;
        const double w = k == 1 ? gates[e] : gates[e] / std::max(kept_sum, double(FLT_EPSILON));
        const std::vector<double> y = mlp("moe.experts", e, xs);
        for (std::int64_t i = 0; i < d; ++i) moe[i] += w * y[i];
      }
      if (!config_.use_residual) {
        std::copy(moe.begin(), moe.end(), &out[s * d]);
        continue;
      }
      const auto& cw = params_.at("moe.coefficient.weight");
      const auto& cb = params_.at("moe.coefficient.bias");
      std::vector<double> coef_logits{cb[0], cb[1]};
      for (std::int64_t i = 0; i < d; ++i) {
        coef_logits[0] += cw[i] * xs[i];
        coef_logits[1] += cw[d + i] * xs[i];
      }
      const std::vector<double> coef = test::reference_softmax(coef_logits);
      const std::vector<double> dense = mlp("moe.residual_mlp", 0, xs);
      for (std::int64_t i = 0; i < d; ++i) out[s * d + i] = moe[i] * coef[0] + dense[i] * coef[1];
    }
    l_aux = 0.0;
    for (std::int64_t e = 0; e < E; ++e) l_aux += me[e] * count[e] / S;
    l_aux *= k > 2 ? double(E) / k : E;
  }

  double objective(const std::vector<double>& x, const std::vector<double>& g,
                   double lambda) const {
    std::vector<double> out;
    double l_aux;
    forward(x, out, l_aux);
    double total = lambda * l_aux;
    for (std::size_t i = 0; i < out.size(); ++i) total += g[i] * out[i];
    return total;
  }

 private:
  std::vector<double> mlp(const std::string& prefix, std::int64_t e, const double* x) const {
    const std::int64_t d = config_.hidden_size, f = config_.ffn_hidden_size;
    const auto& w1 = params_.at(prefix + ".w1");
    const auto& b1 = params_.at(prefix + ".b1");
    const auto& w2 = params_.at(prefix + ".w2");
    const auto& b2 = params_.at(prefix + ".b2");
    std::vector<double> h(f), y(d);
    for (std::int64_t o = 0; o < f; ++o) {
      double v = b1[e * f + o];
      for (std::int64_t i = 0; i < d; ++i) v += w1[(e * f + o) * d + i] * x[i];
      h[o] = activate(config_.activation, v);
    }
    for (std::int64_t o = 0; o < d; ++o) {
      double v = b2[e * d + o];
      for (std::int64_t i = 0; i < f; ++i) v += w2[(e * d + o) * f + i] * h[i];
      y[o] = v;
    }
    return y;
  }

  MoEConfig config_;
  const ReferenceRouting& routing_;
  std::vector<float> jitter_;
  std::map<std::string, std::vector<double>> params_;
};

// The spec's routing of x through `layer`, with the random numbers the layer drew.
struct SpecRouting {
  RoutingDraws draws;
  ReferenceRouting routing;
};

SpecRouting spec_routing(MoELayer& layer, const Tensor& x, bool training,
                         const RecordingNoise& noise) {
  const MoEConfig& c = layer.config();
  SpecRouting r;
  r.draws = test::spec_draws(c, training, x.shape()[0], noise.calls());
  const auto logits = test::reference_logits(to_double(x), to_double(layer.router().weight().value),
                                             r.draws.jitter, c.num_experts, c.hidden_size);
  r.routing = test::reference_routing(c, training, logits, r.draws);
  return r;
}

// The layer routed as the reference does: the same experts, capacity, kept choices and weights.
void check_routing(const RoutingPlan& plan, const ReferenceRouting& expected) {
  CHECK(plan.capacity == expected.capacity);
  CHECK(plan.expert == expected.expert);
  CHECK(plan.exp_counts == expected.exp_counts);
  REQUIRE(plan.weight.size() == expected.kept.size());
  for (std::size_t c = 0; c < expected.kept.size(); ++c) {
    CAPTURE(c);
    CHECK(plan.kept(static_cast<std::int64_t>(c)) == expected.kept[c]);
    CHECK(plan.weight[c] == Approx(expected.weight[c]).margin(1e-6));
  }
}

// One forward of the layer whose routing and output have been checked against the spec's.
struct CheckedForward {
  MoEOutput out;
  MoEForwardState st;
  SpecRouting spec;
};

CheckedForward checked_forward(MoELayer& layer, const Tensor& x, bool training,
                               RecordingNoise& noise) {
  CheckedForward f;
  f.out = layer.forward(x, training, noise, f.st);
  REQUIRE(f.out.output.shape() == x.shape());
  CHECK(f.out.exp_counts == f.st.plan.exp_counts);
  f.spec = spec_routing(layer, x, training, noise);
  check_routing(f.st.plan, f.spec.routing);

  const Reference ref(layer, f.spec.routing, f.spec.draws);
  std::vector<double> expected;
  double l_aux = 0;
  ref.forward(to_double(x), expected, l_aux);
  // float32 layer (dot products of ≤ 7 terms, O(1) values) against double: ≲ 1e-6 absolute.
  const auto got = f.out.output.to_vector();
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(expected[i]).margin(1e-5));
  CHECK(f.out.l_aux == Approx(l_aux).epsilon(1e-5));
  return f;
}

// Routing equals the spec's; forward equals the reference; backward equals its central
// differences for x and every parameter.
void check_layer(const MoEConfig& config, std::int64_t S, bool training, std::uint64_t seed) {
  MoELayer layer(config, seed);
  const Tensor x = random_tensor({S, config.hidden_size}, static_cast<std::uint32_t>(seed));
  RecordingNoise noise(seed);
  CheckedForward f = checked_forward(layer, x, training, noise);
  MoEForwardState& st = f.st;
  Reference ref(layer, f.spec.routing, f.spec.draws);
  std::vector<double> x64 = to_double(x);

  const Tensor g = random_tensor(x.shape(), 99);
  const std::vector<double> g64 = to_double(g);
  const double lambda = 0.37;
  zero_grads(layer.parameters());
  const Tensor grad_x = layer.backward(g, static_cast<float>(lambda), x, st);

  // Central differences of the double reference with h = 1e-5: truncation O(h²) ≈ 1e-10 and
  // cancellation ≈ 1e-16 / h ≈ 1e-11, so the margin covers the float32 backward (≲ 1e-5).
  const double h = 1e-5;
  const auto check_grad = [&](std::vector<double>& values, const Tensor& grad,
                              const std::string& what) {
    CAPTURE(what);
    const auto analytic = grad.to_vector();
    REQUIRE(analytic.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const double saved = values[i];
      values[i] = saved + h;
      const double up = ref.objective(x64, g64, lambda);
      values[i] = saved - h;
      const double down = ref.objective(x64, g64, lambda);
      values[i] = saved;
      CAPTURE(i);
      CHECK(analytic[i] == Approx((up - down) / (2 * h)).margin(2e-5));
    }
  };
  check_grad(x64, grad_x, "x");
  for (Parameter* p : layer.parameters()) check_grad(ref.params().at(p->name), p->grad, p->name);
}

}  // namespace

TEST_CASE("MoE layer forward equals the naive loop and backward equals finite differences") {
  SECTION("k = 1, drops with RTS, training") {
    check_layer(make_config(4, 1, true), 12, true, 1);
  }
  SECTION("k = 1, RSample, no drops") {
    MoEConfig c = make_config(3, 1, false);
    c.noisy_gate_policy = "RSample";
    c.activation = Activation::silu;
    check_layer(c, 9, true, 2);
  }
  SECTION("k = 2, drops, 2nd-expert sampling, Jitter") {
    MoEConfig c = make_config(5, 2, true);
    c.noisy_gate_policy = "Jitter";
    check_layer(c, 13, true, 3);
  }
  SECTION("k = 2, evaluation") {
    check_layer(make_config(4, 2, true), 10, false, 4);
  }
  SECTION("k = 3, probs drops") {
    check_layer(make_config(5, 3, true), 11, true, 5);
  }
  SECTION("k = 3, position drops, gelu_erf") {
    MoEConfig c = make_config(4, 3, true);
    c.drop_policy = "position";
    c.activation = Activation::gelu_erf;
    check_layer(c, 8, true, 6);
  }
  SECTION("Residual MoE, k = 2") {
    MoEConfig c = make_config(3, 2, true);
    c.use_residual = true;
    check_layer(c, 10, true, 7);
  }
  SECTION("Residual MoE, k = 1, no drops") {
    MoEConfig c = make_config(4, 1, false);
    c.use_residual = true;
    check_layer(c, 6, true, 8);
  }
}

// Skewed routing over 4 experts, 16 tokens: token s's input is e_first[s] + ½·e_second[s] (+ small
// noise in the fifth component the router ignores) and the router weight is 4·I, so its first
// choice is first[s] and its second second[s]. Expert 0 is the first choice of ten tokens.
const std::vector<std::int64_t> kFirst{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3};
const std::vector<std::int64_t> kSecond{1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 3, 3, 0};

// capacity_factor 1.0, and a deterministic second choice for k = 2.
MoEConfig skewed_config(std::int64_t k, bool drop_tokens) {
  MoEConfig c = make_config(4, k, drop_tokens);
  c.capacity_factor = 1.0;
  c.top2_2nd_expert_sampling = false;
  return c;
}

void skew_router(MoELayer& layer) {
  std::vector<float> wg(4 * 5, 0.0f);
  for (std::int64_t e = 0; e < 4; ++e) wg[e * 5 + e] = 4.0f;
  layer.router().weight().value.copy_from(Tensor::from_vector(wg, {4, 5}));
}

Tensor skewed_input() {
  Tensor x = random_tensor({16, 5}, 41, 0.05f);
  for (std::int64_t s = 0; s < 16; ++s) {
    x.data<float>()[s * 5 + kFirst[s]] = 1.0f;
    x.data<float>()[s * 5 + kSecond[s]] = 0.5f;
  }
  return x;
}

// n flags, `value` at the indices listed and !value elsewhere.
std::vector<bool> flags(std::int64_t n, std::initializer_list<std::int64_t> at, bool value) {
  std::vector<bool> out(static_cast<std::size_t>(n), !value);
  for (std::int64_t i : at) out[static_cast<std::size_t>(i)] = value;
  return out;
}

// Per choice: did the layer keep it?
std::vector<bool> kept_choices(const RoutingPlan& plan) {
  std::vector<bool> kept;
  for (std::int64_t c = 0; c < plan.tokens * plan.k; ++c) kept.push_back(plan.kept(c));
  return kept;
}

// Per token: is its output row exactly zero (every choice dropped)?
std::vector<bool> zero_rows(const Tensor& out) {
  std::vector<bool> zero;
  for (std::int64_t s = 0; s < out.shape()[0]; ++s) {
    const float* row = out.data<float>() + s * out.shape()[1];
    zero.push_back(std::all_of(row, row + out.shape()[1], [](float v) { return v == 0.0f; }));
  }
  return zero;
}

TEST_CASE("MoE layer: capacity_factor 1.0 drops exactly the overflow of skewed routing") {
  const Tensor x = skewed_input();
  SECTION("k = 1 by position: C = max(⌈16 / 4⌉, 4) = 4, expert 0 keeps tokens 0-3 of 0-9") {
    MoEConfig config = skewed_config(1, true);
    config.use_rts = false;
    MoELayer layer(config, 40);
    skew_router(layer);
    RecordingNoise noise;
    const CheckedForward f = checked_forward(layer, x, /*training=*/true, noise);
    CHECK(f.st.plan.capacity == 4);
    CHECK(f.spec.routing.dropped() == 6);
    CHECK(kept_choices(f.st.plan) == flags(16, {4, 5, 6, 7, 8, 9}, false));
    CHECK(zero_rows(f.out.output) == flags(16, {4, 5, 6, 7, 8, 9}, true));
  }
  SECTION("k = 1 with Random Token Selection: expert 0 keeps its 4 highest priorities") {
    MoEConfig config = skewed_config(1, true);
    config.use_rts = true;
    MoELayer layer(config, 40);
    skew_router(layer);
    RecordingNoise noise;
    // Among tokens 0-9 the highest are tokens 2, 5, 7 and 9.
    noise.queue({0.10f, 0.20f, 0.95f, 0.30f, 0.40f, 0.90f, 0.15f, 0.85f, 0.05f, 0.80f, 0.5f, 0.5f,
                 0.5f, 0.5f, 0.5f, 0.5f});
    const CheckedForward f = checked_forward(layer, x, /*training=*/true, noise);
    CHECK(f.st.plan.capacity == 4);
    CHECK(f.spec.routing.dropped() == 6);
    CHECK(kept_choices(f.st.plan) == flags(16, {0, 1, 3, 4, 6, 8}, false));
    CHECK(zero_rows(f.out.output) == flags(16, {0, 1, 3, 4, 6, 8}, true));
  }
  SECTION("k = 2: C = 8; expert 0 drops 2 first and 4 second choices, expert 1 one second") {
    MoELayer layer(skewed_config(2, true), 40);
    skew_router(layer);
    RecordingNoise noise;
    const CheckedForward f = checked_forward(layer, x, /*training=*/true, noise);
    CHECK(f.st.plan.capacity == 8);
    CHECK(f.spec.routing.dropped() == 7);
    // Expert 0: the first choices of tokens 0-9 take slots 0-9 (8 and 9 drop), its second choices
    // (tokens 10-12, 15) slots 10-13. Expert 1: the first choices of tokens 10-12, then the
    // second choices of tokens 0-5 at slots 3-8 (token 5's drops). Choice c = 2·s + j.
    CHECK(kept_choices(f.st.plan) == flags(32, {16, 18, 21, 23, 25, 31, 11}, false));
    CHECK(zero_rows(f.out.output) == std::vector<bool>(16, false));
  }
  SECTION("drop_tokens = false keeps every choice") {
    for (std::int64_t k : {1, 2}) {
      CAPTURE(k);
      MoELayer layer(skewed_config(k, false), 40);
      skew_router(layer);
      RecordingNoise noise;
      const CheckedForward f = checked_forward(layer, x, /*training=*/true, noise);
      CHECK(f.st.plan.capacity == -1);
      CHECK(f.spec.routing.dropped() == 0);
      CHECK(kept_choices(f.st.plan) == std::vector<bool>(static_cast<std::size_t>(16 * k), true));
      CHECK(zero_rows(f.out.output) == std::vector<bool>(16, false));
    }
  }
}

TEST_CASE("MoE layer: drop_tokens = false routes to the naive top-k of the logits") {
  for (std::int64_t k : {1, 2, 3}) {
    CAPTURE(k);
    MoELayer layer(make_config(5, k, false), 10 + k);
    const Tensor x = random_tensor({16, 5}, 11);
    RecordingNoise noise;
    MoEForwardState st;
    layer.forward(x, /*training=*/false, noise, st);
    CHECK(st.plan.rows() == 16 * k);
    const auto w = layer.router().weight().value.to_vector();
    for (std::int64_t s = 0; s < 16; ++s) {
      std::vector<std::pair<double, std::int64_t>> logits;
      for (std::int64_t e = 0; e < 5; ++e) {
        double v = 0;
        for (std::int64_t i = 0; i < 5; ++i) v += double(w[e * 5 + i]) * x.data<float>()[s * 5 + i];
        logits.push_back({-v, e});
      }
      std::sort(logits.begin(), logits.end());
      for (std::int64_t j = 0; j < k; ++j) CHECK(st.plan.expert[s * k + j] == logits[j].second);
    }
  }
}

TEST_CASE("MoE layer: experts with no tokens and fully dropped tokens") {
  for (std::int64_t k : {1, 2}) {
    CAPTURE(k);
    MoEConfig config = make_config(3, k, true);
    config.capacity_factor = 1.0;
    config.use_rts = false;  // k = 1 keeps an expert's first C tokens, by position
    MoELayer layer(config, 12);
    // Wg row 0 = 1: every (positive) token's first choice is expert 0; k = 2 ties the rest at 0,
    // so the second choice is expert 1. C = max(ceil(8 / 3 · k), 4): tokens ≥ C drop entirely.
    std::vector<float> wg(15, 0.0f);
    std::fill_n(wg.begin(), 5, 1.0f);
    layer.router().weight().value.copy_from(Tensor::from_vector(wg, {3, 5}));
    Tensor x = random_tensor({8, 5}, 13);
    for (std::int64_t i = 0; i < 40; ++i) x.data<float>()[i] = std::abs(x.data<float>()[i]) + 0.1f;
    RecordingNoise noise;
    MoEForwardState st;
    const MoEOutput out = layer.forward(x, /*training=*/false, noise, st);
    const std::int64_t C = k == 1 ? 4 : 6;
    CHECK(st.plan.capacity == C);
    CHECK(st.plan.tokens_per_expert ==
          (k == 1 ? std::vector<std::int64_t>{4, 0, 0} : std::vector<std::int64_t>{6, 6, 0}));
    for (std::int64_t i = C * 5; i < 40; ++i) CHECK(out.output.data<float>()[i] == 0.0f);

    zero_grads(layer.parameters());
    const Tensor grad_x = layer.backward(random_tensor({8, 5}, 14), 0.5f, x, st);
    // Experts without tokens get exactly zero gradient; the used ones do not.
    const auto w1 = layer.experts().w1().grad.to_vector();
    const std::int64_t per_expert = 7 * 5;
    for (std::int64_t e = 0; e < 3; ++e) {
      double norm = 0;
      for (std::int64_t i = 0; i < per_expert; ++i) norm += std::abs(w1[e * per_expert + i]);
      CHECK((norm == 0.0) == (st.plan.tokens_per_expert[e] == 0));
    }
    for (float v : grad_x.to_vector()) CHECK(std::isfinite(v));
  }
}

TEST_CASE("MoE layer: forward/backward are the pieces composed, expert shards are bit-identical") {
  MoEConfig config = make_config(5, 2, true);
  config.noisy_gate_policy = "Jitter";
  config.use_residual = true;
  MoELayer whole(config, 21), pieces(config, 21);
  const Tensor x = random_tensor({16, 5}, 22);
  const Tensor g = random_tensor({16, 5}, 23);

  RecordingNoise noise_a(5), noise_b(5);
  MoEForwardState st_a, st_b;
  const MoEOutput out_a = whole.forward(x, true, noise_a, st_a);
  const Tensor grad_a = whole.backward(g, 0.25f, x, st_a);

  // The actor runtime's path: route and permute, two expert shards [0, 2) and [2, 5) on their own
  // slices of the buffer (backward on two threads at once), then finish / begin / end.
  RoutingPlan plan = pieces.router().route(x, true, noise_b);
  const Tensor rows = permute_tokens(x, plan);
  const std::int64_t split = plan.expert_offsets[2], R = plan.rows();
  REQUIRE(split > 0);
  REQUIRE(split < R);
  ExpertActivations saved_lo, saved_hi;
  const Tensor out_lo =
      pieces.experts().forward(0, 2, rows.slice_rows(0, split), plan.local_offsets(0, 2), saved_lo);
  const Tensor out_hi =
      pieces.experts().forward(2, 5, rows.slice_rows(split, R), plan.local_offsets(2, 5), saved_hi);
  Tensor expert_out = Tensor::empty({R, 5});
  expert_out.slice_rows(0, split).copy_from(out_lo);
  expert_out.slice_rows(split, R).copy_from(out_hi);
  const MoEOutput out_b = pieces.finish_forward(x, std::move(plan), expert_out, st_b);
  CHECK(out_b.output.to_vector() == out_a.output.to_vector());
  CHECK(out_b.l_aux == out_a.l_aux);
  CHECK(out_b.exp_counts == out_a.exp_counts);

  const Tensor grad_rows_out = pieces.begin_backward(g, x, st_b);
  Tensor grad_lo, grad_hi;
  std::thread lo([&] {
    grad_lo = pieces.experts().backward(0, 2, grad_rows_out.slice_rows(0, split), saved_lo);
  });
  std::thread hi([&] {
    grad_hi = pieces.experts().backward(2, 5, grad_rows_out.slice_rows(split, R), saved_hi);
  });
  lo.join();
  hi.join();
  Tensor grad_rows = Tensor::empty({R, 5});
  grad_rows.slice_rows(0, split).copy_from(grad_lo);
  grad_rows.slice_rows(split, R).copy_from(grad_hi);
  const Tensor grad_b = pieces.end_backward(grad_rows, 0.25f, x, st_b);

  CHECK(grad_b.to_vector() == grad_a.to_vector());
  const auto pa = whole.parameters(), pb = pieces.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i]->name);
    CHECK(pa[i]->grad.to_vector() == pb[i]->grad.to_vector());
    double norm = 0;
    for (float v : pa[i]->grad.to_vector()) norm += std::abs(v);
    CHECK(norm > 0);  // every parameter took part
  }
}

TEST_CASE("MoE layer: parameters, groups and ep_size") {
  MoEConfig config = make_config(4, 1, true);
  config.use_residual = true;
  MoELayer layer(config, 30, "block3.moe");
  std::vector<std::string> names, expert_names;
  for (Parameter* p : layer.parameters()) names.push_back(p->name);
  CHECK(names == std::vector<std::string>{
                     "block3.moe.gate.weight", "block3.moe.experts.w1", "block3.moe.experts.b1",
                     "block3.moe.experts.w2", "block3.moe.experts.b2", "block3.moe.residual_mlp.w1",
                     "block3.moe.residual_mlp.b1", "block3.moe.residual_mlp.w2",
                     "block3.moe.residual_mlp.b2", "block3.moe.coefficient.weight",
                     "block3.moe.coefficient.bias"});
  const ParamGroups groups = split_moe_param_groups(layer.parameters());
  for (Parameter* p : groups.expert) expert_names.push_back(p->name);
  CHECK(expert_names == std::vector<std::string>{"block3.moe.experts.w1", "block3.moe.experts.b1",
                                                 "block3.moe.experts.w2", "block3.moe.experts.b2"});
  CHECK(groups.non_expert.size() == 7);
  CHECK(layer.experts().w1().value.shape() == Shape{4, 7, 5});
  CHECK(layer.experts().w2().value.shape() == Shape{4, 5, 7});
  // nn.Linear's default init: |w1| ≤ 1/√d, |w2| ≤ 1/√f.
  for (float v : layer.experts().w1().value.to_vector()) CHECK(std::abs(v) <= 1 / std::sqrt(5.0f));
  for (float v : layer.experts().w2().value.to_vector()) CHECK(std::abs(v) <= 1 / std::sqrt(7.0f));

  // With ep_size = 2, rank 1 holds global experts 2 and 3 with the same values as ep_size = 1.
  MoEConfig sharded = config;
  sharded.ep_size = 2;
  MoELayer rank1(sharded, 30, "block3.moe", 1);
  CHECK(rank1.experts().count() == 2);
  const auto all = layer.experts().w1().value.to_vector();
  CHECK(rank1.experts().w1().value.to_vector() ==
        std::vector<float>(all.begin() + 2 * 35, all.end()));
  CHECK(rank1.router().weight().value.to_vector() == layer.router().weight().value.to_vector());
  RecordingNoise noise;
  MoEForwardState st;
  CHECK_THROWS_AS(rank1.forward(random_tensor({8, 5}, 1), true, noise, st), std::invalid_argument);
  CHECK_THROWS_AS(MoELayer(sharded, 30, "moe", 2), std::invalid_argument);
  CHECK_THROWS_AS(layer.forward(random_tensor({2, 5}, 1), true, noise, st), std::invalid_argument);
  MoEForwardState fresh;
  CHECK_THROWS_AS(
      layer.end_backward(random_tensor({1, 5}, 1), 0.0f, random_tensor({8, 5}, 1), fresh),
      std::invalid_argument);
}
