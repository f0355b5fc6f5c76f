// Adam / AdamW against a double-precision reference written from the update rule, over several
// steps; bit for bit against the float recipe done one element at a time (the kernel's loop is
// vectorised, and the CUDA twin is held to these bits); hand-derived first steps; grad_scale; and
// the argument checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/optimizer.hpp"

using namespace troupe;
using test::check_close;

namespace {

struct ReferenceState {
  std::vector<double> params, exp_avg, exp_avg_sq;
};

void reference_step(ReferenceState& s, const std::vector<float>& grads, const AdamParams& hp,
                    int step, double grad_scale) {
  const double lr = hp.lr, b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps, wd = hp.weight_decay;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    double& p = s.params[i];
    double g = grads[i] * grad_scale;
    if (!hp.adam_w_mode) g += wd * p;
    s.exp_avg[i] = b1 * s.exp_avg[i] + (1 - b1) * g;
    s.exp_avg_sq[i] = b2 * s.exp_avg_sq[i] + (1 - b2) * g * g;
    double m_hat = s.exp_avg[i], v_hat = s.exp_avg_sq[i];
    if (hp.bias_correction) {
      m_hat /= 1 - std::pow(b1, step);
      v_hat /= 1 - std::pow(b2, step);
    }
    if (hp.adam_w_mode) p -= lr * wd * p;
    p -= lr * m_hat / (std::sqrt(v_hat) + eps);
  }
}

// The kernel's float recipe (kernels/cpu/optimizer.cpp), one element at a time.
void float_recipe_step(std::vector<float>& params, const std::vector<float>& grads,
                       std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq,
                       const AdamParams& hp, int step, float grad_scale) {
  const float bc1 = static_cast<float>(1.0 - std::pow(hp.beta1, static_cast<double>(step)));
  const float bc2 = static_cast<float>(1.0 - std::pow(hp.beta2, static_cast<double>(step)));
  const float step_size = hp.lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float l2 = hp.adam_w_mode ? 0.0f : hp.weight_decay;
  const float shrink = hp.adam_w_mode ? 1.0f - hp.lr * hp.weight_decay : 1.0f;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const float g = grads[i] * grad_scale + l2 * params[i];
    exp_avg[i] = hp.beta1 * exp_avg[i] + (1.0f - hp.beta1) * g;
    exp_avg_sq[i] = hp.beta2 * exp_avg_sq[i] + (1.0f - hp.beta2) * g * g;
    params[i] = params[i] * shrink -
                step_size * exp_avg[i] / (std::sqrt(exp_avg_sq[i]) * inv_sqrt_bc2 + hp.eps);
  }
}

}  // namespace

TEST_CASE("adam_step gives the float recipe's bits on every element, vector body and tail") {
  // 1003 elements: the vector body and a scalar tail; gradients from 1 down to 1e-30 (their squares
  // are subnormal or zero), some exactly zero.
  const std::int64_t n = 1003;
  auto grads = test::random_floats(n, -1.0f, 1.0f, 11);
  for (std::int64_t i = 0; i < n; ++i) {
    grads[i] *= std::pow(10.0f, -static_cast<float>(i % 31));
    if (i % 17 == 0) grads[i] = 0.0f;
  }
  for (const bool adam_w : {false, true}) {
    AdamParams hp;
    hp.weight_decay = 0.01f;
    hp.adam_w_mode = adam_w;
    std::vector<float> p = test::random_floats(n, -1.0f, 1.0f, 12), m(n, 0.0f), v(n, 0.0f);
    std::vector<float> rp = p, rm = m, rv = v;
    for (int step = 1; step <= 4; ++step) {
      cpu::adam_step(p.data(), grads.data(), m.data(), v.data(), n, hp, step, 0.5f);
      float_recipe_step(rp, grads, rm, rv, hp, step, 0.5f);
    }
    const auto bytes = static_cast<std::size_t>(n) * sizeof(float);
    CHECK(std::memcmp(p.data(), rp.data(), bytes) == 0);
    CHECK(std::memcmp(m.data(), rm.data(), bytes) == 0);
    CHECK(std::memcmp(v.data(), rv.data(), bytes) == 0);
  }
}

TEST_CASE("adam_step follows the double-precision reference over several steps") {
  struct Config {
    const char* name;
    AdamParams hp;
    float grad_scale;
  };
  AdamParams adam;
  adam.lr = 1e-2f;
  AdamParams adam_l2 = adam;
  adam_l2.weight_decay = 0.1f;
  AdamParams adamw = adam_l2;
  adamw.adam_w_mode = true;
  AdamParams no_correction = adamw;
  no_correction.bias_correction = false;
  const Config configs[] = {
      {"Adam", adam, 1.0f},
      {"Adam with L2 weight decay", adam_l2, 1.0f},
      {"AdamW", adamw, 1.0f},
      {"AdamW without bias correction", no_correction, 1.0f},
      {"Adam with L2 and grad_scale", adam_l2, 0.37f},
      {"AdamW with grad_scale", adamw, 2.5f},
  };
  const std::int64_t n = 37;
  const int steps = 6;
  for (const Config& config : configs) {
    DYNAMIC_SECTION(config.name) {
      std::vector<float> params = test::random_floats(n, -1.0f, 1.0f, 1);
      std::vector<float> exp_avg(n, 0.0f), exp_avg_sq(n, 0.0f);
      ReferenceState ref{test::to_double(params), std::vector<double>(n), std::vector<double>(n)};
      for (int step = 1; step <= steps; ++step) {
        const auto grads = test::random_floats(n, -1.0f, 1.0f, 100 + step);
        cpu::adam_step(params.data(), grads.data(), exp_avg.data(), exp_avg_sq.data(), n, config.hp,
                       step, config.grad_scale);
        reference_step(ref, grads, config.hp, step, config.grad_scale);
      }
      // Each step rounds p once (ulp(1)/2 ≈ 6e-8) and the update lr·m̂/(√v̂ + eps) ≤ 3.2·lr to a
      // few fp32 ulps relative (≈ 1e-8 here): six steps stay below 1e-6. The moments are sums of
      // O(1) fp32 products, a few ulps relative each step.
      check_close(params, ref.params, 1e-6);
      check_close(exp_avg, ref.exp_avg, 1e-7, 1e-5);
      check_close(exp_avg_sq, ref.exp_avg_sq, 1e-8, 1e-5);
    }
  }
}

TEST_CASE("the first Adam step moves each parameter by lr·sign(g)") {
  // Step 1 with bias correction: m̂ = g and v̂ = g², so the update is lr·g / (|g| + eps).
  const std::vector<float> grads = {0.3f, -2.0f, 1e-3f, 0.0f};
  AdamParams hp;
  hp.lr = 1e-2f;
  std::vector<float> params(4, 0.5f), exp_avg(4, 0.0f), exp_avg_sq(4, 0.0f);
  cpu::adam_step(params.data(), grads.data(), exp_avg.data(), exp_avg_sq.data(), 4, hp, 1, 1.0f);
  // ulp(0.5) = 6e-8; eps/|g| shortens the 1e-3 step by lr·1e-5 = 1e-7.
  CHECK(params[0] == Approx(0.49).margin(1.5e-7));
  CHECK(params[1] == Approx(0.51).margin(1.5e-7));
  CHECK(params[2] == Approx(0.49).margin(1.5e-7));
  CHECK(params[3] == 0.5f);  // g = 0 gives 0 / (0 + eps) = 0: no NaN from 0/0
  CHECK(exp_avg[3] == 0.0f);

  SECTION("without bias correction the step is lr·(1−β1)/√(1−β2) ≈ 3.1623·lr") {
    hp.bias_correction = false;
    std::vector<float> p(4, 0.5f), m(4, 0.0f), v(4, 0.0f);
    cpu::adam_step(p.data(), grads.data(), m.data(), v.data(), 4, hp, 1, 1.0f);
    const double step = 1e-2 * 0.1 / std::sqrt(0.001);  // β's are fp32, ~1e-8 relative off
    CHECK(p[0] == Approx(0.5 - step).margin(2e-7));
    CHECK(p[1] == Approx(0.5 + step).margin(2e-7));
  }
  SECTION("AdamW first shrinks the weight by lr·wd") {
    hp.adam_w_mode = true;
    hp.weight_decay = 0.5f;
    std::vector<float> p(4, 0.5f), m(4, 0.0f), v(4, 0.0f);
    cpu::adam_step(p.data(), grads.data(), m.data(), v.data(), 4, hp, 1, 1.0f);
    CHECK(p[0] == Approx(0.5 * (1 - 0.005) - 0.01).margin(1.5e-7));
    CHECK(p[3] == Approx(0.5 * (1 - 0.005)).margin(1e-7));  // decays even with zero gradient
  }
}

TEST_CASE("grad_scale is the same as pre-scaling the gradient") {
  const std::int64_t n = 19;
  const auto grads = test::random_floats(n, -1.0f, 1.0f, 2);
  std::vector<float> scaled = grads;
  for (float& g : scaled) g *= 0.25f;  // a power of two: pre-scaling is exact
  AdamParams hp;
  hp.weight_decay = 0.01f;
  const auto params0 = test::random_floats(n, -1.0f, 1.0f, 3);
  std::vector<float> p1 = params0, m1(n, 0.0f), v1(n, 0.0f);
  std::vector<float> p2 = params0, m2(n, 0.0f), v2(n, 0.0f);
  for (int step = 1; step <= 3; ++step) {
    cpu::adam_step(p1.data(), grads.data(), m1.data(), v1.data(), n, hp, step, 0.25f);
    cpu::adam_step(p2.data(), scaled.data(), m2.data(), v2.data(), n, hp, step, 1.0f);
  }
  CHECK(p1 == p2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
}

TEST_CASE("adam_step rejects step < 1 and betas outside [0, 1)") {
  float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
  AdamParams hp;
  CHECK_THROWS_AS(cpu::adam_step(&p, &g, &m, &v, 1, hp, 0, 1.0f), std::invalid_argument);
  hp.beta2 = 1.0f;
  CHECK_THROWS_AS(cpu::adam_step(&p, &g, &m, &v, 1, hp, 1, 1.0f), std::invalid_argument);
  hp.beta2 = 0.999f;
  hp.beta1 = -0.1f;
  CHECK_THROWS_AS(cpu::adam_step(&p, &g, &m, &v, 1, hp, 1, 1.0f), std::invalid_argument);
  CHECK(p == 1.0f);
}
