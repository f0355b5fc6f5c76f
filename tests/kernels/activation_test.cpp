// Activations against their textbook formulas in double, and their gradients against central
// differences of those formulas; SwiGLU likewise. (The activation names are model vocabulary:
// tests/models/activation_kind_test.cpp.)
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/activation.hpp"

using namespace troupe;
using test::central_difference;
using test::check_close;

namespace {

// The kernels are one function per activation; the tests loop over them through this table.
enum class Activation { relu, gelu_tanh, gelu_erf, silu };

const char* activation_name(Activation a) {
  constexpr const char* names[] = {"relu", "gelu_tanh", "gelu_erf", "silu"};
  return names[static_cast<int>(a)];
}

void activation_forward(Activation a, const float* x, float* y, std::int64_t n) {
  constexpr void (*kernels[])(const float*, float*, std::int64_t, int) = {
      cpu::relu_forward, cpu::gelu_tanh_forward, cpu::gelu_erf_forward, cpu::silu_forward};
  kernels[static_cast<int>(a)](x, y, n, 1);
}

void activation_backward(Activation a, const float* x, const float* dy, float* dx, std::int64_t n) {
  constexpr void (*kernels[])(const float*, const float*, float*, std::int64_t, int) = {
      cpu::relu_backward, cpu::gelu_tanh_backward, cpu::gelu_erf_backward, cpu::silu_backward};
  kernels[static_cast<int>(a)](x, dy, dx, n, 1);
}

double reference(Activation activation, double x) {
  const double pi = std::acos(-1.0);
  switch (activation) {
    case Activation::relu:
      return x > 0.0 ? x : 0.0;
    case Activation::gelu_tanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
    case Activation::gelu_erf:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::silu:
      return x / (1.0 + std::exp(-x));
  }
  return NAN;
}

// −7 … 7 in steps of 0.37 (never exactly 0, so ReLU's kink is away from every difference
// stencil), plus the far tails where tanh / erf / exp saturate.
std::vector<float> inputs() {
  std::vector<float> x;
  for (int i = 0; i <= 38; ++i) x.push_back(-7.0f + 0.37f * static_cast<float>(i));
  for (float tail : {-30.0f, -12.5f, 12.5f, 30.0f}) x.push_back(tail);
  return x;
}

}  // namespace

TEST_CASE("activation forward matches the formulas and backward matches finite differences") {
  const auto x = inputs();
  const auto n = static_cast<std::int64_t>(x.size());
  const auto dy = test::random_floats(x.size(), -2.0f, 2.0f, 1);
  for (Activation activation :
       {Activation::relu, Activation::gelu_tanh, Activation::gelu_erf, Activation::silu}) {
    DYNAMIC_SECTION(activation_name(activation)) {
      std::vector<float> y(x.size());
      activation_forward(activation, x.data(), y.data(), n);
      std::vector<double> y_expected(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) y_expected[i] = reference(activation, x[i]);
      // fp32 evaluation: a few ulps relative (2^-24 ≈ 6e-8 each), plus the cancellation in
      // 1 + tanh(·) / 1 + erf(·) for negative x, where tanh's ulp(1)/2 error times 0.5·|x| costs
      // up to 2e-7 absolute at |x| = 7 (beyond that tanh / erf round to −1 and y is exactly −0).
      check_close(y, y_expected, 3e-7, 1e-6);

      // L = Σ dy·f(x) separates per element, so its gradient is dy·f'(x).
      const auto loss = [&](const std::vector<double>& xs) {
        double total = 0.0;
        for (std::size_t i = 0; i < xs.size(); ++i) total += dy[i] * reference(activation, xs[i]);
        return total;
      };
      const auto dx_expected = central_difference(loss, test::to_double(x));
      std::vector<float> dx(x.size());
      activation_backward(activation, x.data(), dy.data(), dx.data(), n);
      // fp32 closed-form derivative with |f'| ≤ 1.13 and |dy| ≤ 2: a few ulps relative; the
      // absolute part is the same 1 ± tanh cancellation as above, now also multiplied by the
      // derivative of the inner polynomial (≈ 0.8·(1 + 0.13·x²) ≈ 6 at |x| = 7) and by |dy|.
      check_close(dx, dx_expected, 2e-6, 1e-5);
    }
  }
}

TEST_CASE("ReLU at exactly 0 gives 0 and a zero gradient (PyTorch's convention)") {
  const float x = 0.0f, dy = 3.0f;
  float y = 1.0f, dx = 1.0f;
  activation_forward(Activation::relu, &x, &y, 1);
  activation_backward(Activation::relu, &x, &dy, &dx, 1);
  CHECK(y == 0.0f);
  CHECK(dx == 0.0f);
}

TEST_CASE("SwiGLU forward is silu(gate)·up and its gradients match finite differences") {
  const auto gate = inputs();
  const std::size_t n = gate.size();
  const auto up = test::random_floats(n, -3.0f, 3.0f, 2);
  const auto dy = test::random_floats(n, -2.0f, 2.0f, 3);
  const auto swiglu = [](double g, double u) { return g / (1.0 + std::exp(-g)) * u; };

  std::vector<float> y(n);
  cpu::swiglu_forward(gate.data(), up.data(), y.data(), static_cast<std::int64_t>(n));
  std::vector<double> y_expected(n);
  for (std::size_t i = 0; i < n; ++i) y_expected[i] = swiglu(gate[i], up[i]);
  // Three fp32 roundings plus exp's ~1 ulp, relative to |y|; the absolute part covers y ≈ 0.
  check_close(y, y_expected, 1e-7, 1e-6);

  std::vector<float> dgate(n), dup(n);
  cpu::swiglu_backward(gate.data(), up.data(), dy.data(), dgate.data(), dup.data(),
                       static_cast<std::int64_t>(n));
  const auto loss_of_gate = [&](const std::vector<double>& g) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) total += dy[i] * swiglu(g[i], up[i]);
    return total;
  };
  const auto loss_of_up = [&](const std::vector<double>& u) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) total += dy[i] * swiglu(gate[i], u[i]);
    return total;
  };
  // |dy·up·silu'| ≤ 2·3·1.1 and |dy·silu| ≤ 2·30: a few fp32 ulps of those magnitudes.
  check_close(dgate, central_difference(loss_of_gate, test::to_double(gate)), 4e-6, 1e-5);
  check_close(dup, central_difference(loss_of_up, test::to_double(up)), 4e-6, 1e-5);
}
