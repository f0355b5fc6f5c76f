// CPU activations (see activation.hpp). Computed in fp32 with the closed-form derivatives; every
// kernel splits its elements over the intra-op pool.
#include "kernels/cpu/activation.hpp"

#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/intra_op_pool.hpp"

namespace troupe::cpu {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoeff = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

// Elements per chunk worth waking a thread for.
constexpr std::int64_t kGrain = 16 * 1024;

float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

// e^z for z in [−87, 88] (callers clamp), Cephes' expf: z = n·ln2 + r with |r| ≤ ln2/2, a degree-5
// polynomial for e^r and 2^n built in the exponent bits. Straight-line float and int arithmetic,
// so loops calling it vectorise; rounding n by the 1.5·2²³ trick needs no floor (SSE2 has none).
inline float exp_poly(float z) {
  constexpr float kRound = 12582912.0f;  // 1.5 · 2^23
  const float n = (z * 1.44269504088896341f + kRound) - kRound;
  float r = z - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  return y * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}

// e^{−2u} for the tanh-GELU's u(v) = √(2/π)·(v + 0.044715·v³), clamped into exp_poly's range:
// beyond it the GELU is v or 0 to float precision either way. The clamp is two selects, which
// vectorise with the flags kernels/CMakeLists.txt gives this file (a nested select does not).
inline float gelu_tanh_exp(float v) {
  const float u = kSqrt2OverPi * (v + kGeluCoeff * v * v * v);
  float z = -2.0f * u;
  z = z < -87.0f ? -87.0f : z;
  z = z > 88.0f ? 88.0f : z;
  return exp_poly(z);
}

// Runs body(i) for i in [0, n) over the pool, each chunk a plain loop the compiler vectorises.
template <class Body>
void for_each_element(std::int64_t n, int threads, const Body& body) {
  parallel_for(n, kGrain, threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) body(i);
  });
}

}  // namespace

void relu_forward(const float* x, float* y, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; });
}

// dy[i] is read whatever the sign: a load under the condition keeps the compiler from turning the
// select into vector blends, and the branch it leaves is mispredicted on half the elements.
void relu_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    const float g = dy[i];
    dx[i] = x[i] > 0.0f ? g : 0.0f;
  });
}

// 0.5·v·(1 + tanh u) = v / (1 + e^{−2u}).
void gelu_tanh_forward(const float* x, float* y, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    const float v = x[i];
    y[i] = v / (1.0f + gelu_tanh_exp(v));
  });
}

// With s = sigmoid(2u) = 1 / (1 + e) and e = e^{−2u}: 0.5·(1 + tanh u) = s and
// 0.5·(1 − tanh² u) = 2·s·(1 − s) = 2·s·(e·s), which has no cancellation for large |u|.
void gelu_tanh_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    const float v = x[i];
    const float e = gelu_tanh_exp(v);
    const float s = 1.0f / (1.0f + e);
    const float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCoeff * v * v);
    dx[i] = dy[i] * (s + 2.0f * v * s * (e * s) * dinner);
  });
}

void gelu_erf_forward(const float* x, float* y, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
  });
}

void gelu_erf_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    const float v = x[i];
    const float cdf = 0.5f * (1.0f + std::erf(v * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * std::exp(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  });
}

void silu_forward(const float* x, float* y, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) { y[i] = x[i] * sigmoid(x[i]); });
}

void silu_backward(const float* x, const float* dy, float* dx, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    const float s = sigmoid(x[i]);
    dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
  });
}

void swiglu_forward(const float* gate, const float* up, float* y, std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) { y[i] = gate[i] * sigmoid(gate[i]) * up[i]; });
}

void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                     std::int64_t n, int threads) {
  for_each_element(n, threads, [=](std::int64_t i) {
    const float s = sigmoid(gate[i]);
    const float silu = gate[i] * s;
    dup[i] = dy[i] * silu;
    dgate[i] = dy[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
  });
}

}  // namespace troupe::cpu
