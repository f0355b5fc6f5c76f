// Element-wise CUDA kernels against their CPU twins. Tolerances (and why):
//   - casts, Adam/AdamW, noise, ReLU, permute, permute-backward, combine, combine-backward's
//     grad_rows in fp32: bit for bit (same operations, same order, each rounded as on the CPU);
//   - GELU / SiLU: |a − b| ≤ 2^-20·|dy|·(1 + |x|)·(1 + x²) + 2 ulp — the GPU evaluates tanh / erf /
//     exp in double and rounds once, glibc's float versions may differ by an ulp (2^-23 relative
//     to a value ≤ 1); the formulas multiply that by terms of size |x|·(1 + x²), and 1 + tanh
//     cancels near x ≪ 0, so an ulp bound on the result would be meaningless there;
//   - combine-backward's grad_weight (a dot product over the width, tree-summed on the GPU):
//     |a − b| ≤ width · 2^-24 · Σ|dy·x| (the K·ε bound of a length-K sum);
//   - bf16 variants: one bf16 rounding of the fp32 result, so ≤ 1 bf16 ulp (2^-8 relative).
#include <cfloat>
#include <cmath>
#include <limits>

#include "gpu/gpu_test.hpp"
#include "kernels/cpu/activation.hpp"
#include "kernels/cpu/optimizer.hpp"
#include "kernels/cpu/permute.hpp"
#include "kernels/cuda/elementwise.hpp"
#include "memory/dtype.hpp"
#include "models/noise.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

const char* activation_name(cuda::ActivationFunction a) {
  switch (a) {
    case cuda::ActivationFunction::relu:
      return "relu";
    case cuda::ActivationFunction::gelu_tanh:
      return "gelu_tanh";
    case cuda::ActivationFunction::gelu_erf:
      return "gelu_erf";
    case cuda::ActivationFunction::silu:
      return "silu";
  }
  return "?";
}

// The CPU twin of each activation function the CUDA kernel selects.
void cpu_activation_forward(cuda::ActivationFunction a, const float* x, float* y, std::int64_t n) {
  switch (a) {
    case cuda::ActivationFunction::relu:
      return cpu::relu_forward(x, y, n);
    case cuda::ActivationFunction::gelu_tanh:
      return cpu::gelu_tanh_forward(x, y, n);
    case cuda::ActivationFunction::gelu_erf:
      return cpu::gelu_erf_forward(x, y, n);
    case cuda::ActivationFunction::silu:
      return cpu::silu_forward(x, y, n);
  }
}

void cpu_activation_backward(cuda::ActivationFunction a, const float* x, const float* dy, float* dx,
                             std::int64_t n) {
  switch (a) {
    case cuda::ActivationFunction::relu:
      return cpu::relu_backward(x, dy, dx, n);
    case cuda::ActivationFunction::gelu_tanh:
      return cpu::gelu_tanh_backward(x, dy, dx, n);
    case cuda::ActivationFunction::gelu_erf:
      return cpu::gelu_erf_backward(x, dy, dx, n);
    case cuda::ActivationFunction::silu:
      return cpu::silu_backward(x, dy, dx, n);
  }
}

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

std::vector<float> special_and_random_floats(std::size_t random_count) {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          INFINITY,
                          -INFINITY,
                          NAN,
                          -NAN,
                          FLT_MIN,
                          -FLT_MIN,
                          FLT_MAX,
                          -FLT_MAX,
                          FLT_TRUE_MIN,
                          65504.0f,
                          65520.0f,
                          65519.99f,
                          6.1035156e-05f,
                          5.9604645e-08f,
                          2.9802322e-08f,
                          1e-45f,
                          from_bits(0x7f800001u),
                          from_bits(0xffc00001u),
                          from_bits(0x7fbfffffu)};
  // Every bf16 / f16 rounding boundary class: patterns with all low bits set or exactly halfway.
  for (std::uint32_t e = 0; e < 256; ++e)
    for (std::uint32_t low :
         {0x7fffu, 0x8000u, 0x8001u, 0x17fffu, 0x18000u, 0x1000u, 0x0fffu, 0x3000u, 0x1fffu})
      v.push_back(from_bits((e << 23) | low));
  std::mt19937_64 rng(7);
  for (std::size_t i = 0; i < random_count; ++i)
    v.push_back(from_bits(static_cast<std::uint32_t>(rng())));
  return v;
}

void casts_are_bit_exact() {
  const std::vector<float> x = special_and_random_floats(1 << 20);
  const std::size_t n = x.size();
  DeviceBuffer<float> dx(x);
  DeviceBuffer<std::uint16_t> d16(n);
  for (bool bf : {true, false}) {
    if (bf)
      cuda::cast_f32_to_bf16(dx.get(), d16.get(), n, nullptr);
    else
      cuda::cast_f32_to_f16(dx.get(), d16.get(), n, nullptr);
    const auto got = d16.download();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint16_t want = bf ? f32_to_bf16_bits(x[i]) : f32_to_f16_bits(x[i]);
      if (got[i] != want && bad++ < 3)
        std::printf("    %s(0x%08x): gpu 0x%04x cpu 0x%04x\n", bf ? "bf16" : "f16",
                    gpu_test::bits(x[i]), got[i], want);
    }
    GPU_CHECK_MSG(bad == 0, "%zu of %zu f32 -> %s casts differ", bad, n, bf ? "bf16" : "f16");
  }
  // Every 16-bit pattern back to f32.
  std::vector<std::uint16_t> all(65536);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  DeviceBuffer<std::uint16_t> dall(all);
  DeviceBuffer<float> dout(all.size());
  for (bool bf : {true, false}) {
    if (bf)
      cuda::cast_bf16_to_f32(dall.get(), dout.get(), all.size(), nullptr);
    else
      cuda::cast_f16_to_f32(dall.get(), dout.get(), all.size(), nullptr);
    const auto got = dout.download();
    std::vector<float> want(all.size());
    for (std::size_t i = 0; i < all.size(); ++i)
      want[i] = bf ? bf16_bits_to_f32(all[i]) : f16_bits_to_f32(all[i]);
    GPU_CHECK(gpu_test::bit_mismatches(got, want, bf ? "bf16->f32" : "f16->f32") == 0);
  }
}

void activations_match() {
  std::mt19937_64 rng(11);
  std::vector<float> x = gpu_test::random_floats(100003, rng, 3.0f);
  x.insert(x.end(), {0.0f, -0.0f, 1e-30f, -1e-30f, 20.0f, -20.0f, 88.0f, -88.0f});
  const std::vector<float> dy = gpu_test::random_floats(x.size(), rng);
  const std::size_t n = x.size();
  DeviceBuffer<float> dxin(x), ddy(dy), dout(n);
  for (cuda::ActivationFunction a :
       {cuda::ActivationFunction::relu, cuda::ActivationFunction::gelu_tanh,
        cuda::ActivationFunction::gelu_erf, cuda::ActivationFunction::silu}) {
    for (bool backward : {false, true}) {
      std::vector<float> want(n);
      if (backward) {
        cpu_activation_backward(a, x.data(), dy.data(), want.data(), n);
        cuda::activation_backward(a, DType::f32, dxin.get(), ddy.get(), dout.get(), n, nullptr);
      } else {
        cpu_activation_forward(a, x.data(), want.data(), n);
        cuda::activation_forward(a, DType::f32, dxin.get(), dout.get(), n, nullptr);
      }
      const auto got = dout.download();
      std::int64_t worst = 0;
      std::size_t exact = 0, outside = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t d = gpu_test::ulp_distance(got[i], want[i]);
        exact += d == 0;
        worst = std::max(worst, d);
        const double g = backward ? std::abs(dy[i]) : 1.0, v = std::abs(x[i]);
        const double bound = std::ldexp(1.0, -20) * g * (1.0 + v) * (1.0 + v * v) +
                             2.0 * std::ldexp(std::abs(static_cast<double>(want[i])), -23);
        outside += a == cuda::ActivationFunction::relu ? d != 0
                                                       : std::abs(double(got[i]) - want[i]) > bound;
      }
      std::printf("    %s %s: %zu of %zu bit-identical, worst %lld ulp, %zu outside the bound\n",
                  std::string(activation_name(a)).c_str(), backward ? "backward" : "forward", exact,
                  n, static_cast<long long>(worst), outside);
      GPU_CHECK(outside == 0);
    }
  }
  // bf16 storage: the CPU twin on the bf16-rounded input, rounded once to bf16.
  std::vector<std::uint16_t> xb(n);
  std::vector<float> xr(n);
  for (std::size_t i = 0; i < n; ++i) {
    xb[i] = f32_to_bf16_bits(x[i]);
    xr[i] = bf16_bits_to_f32(xb[i]);
  }
  DeviceBuffer<std::uint16_t> dxb(xb), dyb(n);
  for (cuda::ActivationFunction a :
       {cuda::ActivationFunction::relu, cuda::ActivationFunction::gelu_tanh,
        cuda::ActivationFunction::silu}) {
    std::vector<float> want(n);
    cpu_activation_forward(a, xr.data(), want.data(), n);
    cuda::activation_forward(a, DType::bf16, dxb.get(), dyb.get(), n, nullptr);
    const auto got = dyb.download();
    // Within one bf16 ulp of the CPU value rounded to bf16, or within the fp32 comparison's bound
    // above plus one bf16 rounding: where GELU's tail is tiny (x << 0) both twins are accurate
    // only in absolute terms, and a relative bf16 criterion alone would ask for more than the
    // CPU twin promises.
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const float g = bf16_bits_to_f32(got[i]);
      const float w = bf16_bits_to_f32(f32_to_bf16_bits(want[i]));
      const double v = std::abs(xr[i]);
      const double bound = std::ldexp(1.0, -20) * (1.0 + v) * (1.0 + v * v) +
                           std::ldexp(std::abs(static_cast<double>(want[i])), -8);
      if (gpu_test::ulp_distance(g, w) > (1 << 16) &&  // 1 bf16 ulp = 2^16 fp32 ulps
          std::abs(double(g) - want[i]) > bound)
        ++bad;
    }
    GPU_CHECK_MSG(bad == 0, "%zu bf16 %s values off by more than one bf16 ulp", bad,
                  std::string(activation_name(a)).c_str());
  }
}

void adam_is_bit_exact() {
  std::mt19937_64 rng(5);
  const std::size_t n = 77777;
  for (bool adamw : {false, true}) {
    for (bool bias_correction : {true, false}) {
      AdamParams hp;
      hp.lr = 3e-3f;
      hp.weight_decay = 0.01f;
      hp.adam_w_mode = adamw;
      hp.bias_correction = bias_correction;
      std::vector<float> p = gpu_test::random_floats(n, rng), g = gpu_test::random_floats(n, rng);
      std::vector<float> m = gpu_test::random_floats(n, rng, 0.1f), v(n);
      for (auto& e : v) e = std::abs(gpu_test::random_floats(1, rng, 0.01f)[0]);
      DeviceBuffer<float> dp(p), dg(g), dm(m), dv(v);
      for (std::int64_t step = 1; step <= 3; ++step) {
        cpu::adam_step(p.data(), g.data(), m.data(), v.data(), n, hp, step, 0.5f);
        cuda::adam_step(dp.get(), dg.get(), dm.get(), dv.get(), n, hp, step, 0.5f, nullptr);
      }
      GPU_CHECK(gpu_test::bit_mismatches(dp.download(), p, "params") == 0);
      GPU_CHECK(gpu_test::bit_mismatches(dm.download(), m, "exp_avg") == 0);
      GPU_CHECK(gpu_test::bit_mismatches(dv.download(), v, "exp_avg_sq") == 0);
    }
  }
}

void noise_matches_seeded_noise() {
  SeededNoise cpu_noise(1234, 5);
  std::vector<float> skip(1000);
  cpu_noise.uniform(skip.data(), 1000, 0.0f, 1.0f);
  const std::size_t n = 100000;
  std::vector<float> want(n);
  cpu_noise.uniform(want.data(), n, 0.99f, 1.01f);
  DeviceBuffer<float> out(n);
  cuda::seeded_uniform(1234, 5, 1000, out.get(), n, 0.99f, 1.01f, nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(out.download(), want, "uniform") == 0);
}

// A routing with drops: token s's choice j goes to row choice_row[s·k+j] or is dropped (−1).
struct Routing {
  std::vector<std::int64_t> row_token, choice_row;
  std::vector<float> weight;
};

Routing make_routing(std::int64_t tokens, std::int64_t k, std::mt19937_64& rng) {
  Routing r;
  r.choice_row.assign(tokens * k, -1);
  r.weight.assign(tokens * k, 0.0f);
  std::vector<std::int64_t> choices;
  for (std::int64_t c = 0; c < tokens * k; ++c)
    if (rng() % 5 != 0) choices.push_back(c);  // a fifth dropped; some tokens lose every choice
  std::shuffle(choices.begin(), choices.end(), rng);
  for (std::size_t row = 0; row < choices.size(); ++row) {
    r.choice_row[choices[row]] = static_cast<std::int64_t>(row);
    r.row_token.push_back(choices[row] / k);
    r.weight[choices[row]] = static_cast<float>(rng() % 1000) / 997.0f;
  }
  return r;
}

void permutation_matches(std::int64_t width) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(width));
  const std::int64_t tokens = 301, k = 3;
  const Routing r = make_routing(tokens, k, rng);
  const std::int64_t rows = static_cast<std::int64_t>(r.row_token.size());
  const auto x = gpu_test::random_floats(tokens * width, rng);
  const auto grad_out = gpu_test::random_floats(tokens * width, rng);
  const auto expert_rows = gpu_test::random_floats(rows * width, rng);
  const auto grad_x0 = gpu_test::random_floats(tokens * width, rng);
  DeviceBuffer<std::int64_t> d_row_token(r.row_token), d_choice_row(r.choice_row);
  DeviceBuffer<float> d_weight(r.weight), dx(x), dgo(grad_out), drows(expert_rows);

  std::vector<float> want(rows * width);
  cpu::permute_rows(x.data(), r.row_token.data(), rows, width, want.data());
  DeviceBuffer<float> dperm(rows * width);
  cuda::permute_rows(DType::f32, dx.get(), d_row_token.get(), rows, width, dperm.get(), nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(dperm.download(), want, "permute") == 0);

  std::vector<float> gx = grad_x0;
  cpu::permute_rows_backward(expert_rows.data(), r.choice_row.data(), tokens, k, width, gx.data());
  DeviceBuffer<float> dgx(grad_x0);
  cuda::permute_rows_backward(DType::f32, drows.get(), d_choice_row.get(), tokens, k, width,
                              dgx.get(), true, nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(dgx.download(), gx, "permute_backward") == 0);

  std::vector<float> y(tokens * width);
  cpu::unpermute_combine(expert_rows.data(), r.choice_row.data(), r.weight.data(), tokens, k, width,
                         y.data());
  DeviceBuffer<float> dy(tokens * width);
  cuda::unpermute_combine(DType::f32, drows.get(), d_choice_row.get(), d_weight.get(), tokens, k,
                          width, dy.get(), nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(dy.download(), y, "unpermute_combine") == 0);

  std::vector<float> grows(rows * width), gw(tokens * k);
  cpu::unpermute_combine_backward(grad_out.data(), expert_rows.data(), r.choice_row.data(),
                                  r.weight.data(), tokens, k, width, grows.data(), gw.data());
  DeviceBuffer<float> dgrows(rows * width), dgw(tokens * k);
  cuda::unpermute_combine_backward(DType::f32, dgo.get(), drows.get(), d_choice_row.get(),
                                   d_weight.get(), tokens, k, width, dgrows.get(), dgw.get(),
                                   nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(dgrows.download(), grows, "combine_backward rows") == 0);
  const auto got_w = dgw.download();
  for (std::int64_t c = 0; c < tokens * k; ++c) {
    double magnitude = 0.0;
    if (r.choice_row[c] >= 0)
      for (std::int64_t i = 0; i < width; ++i)
        magnitude +=
            std::abs(grad_out[(c / k) * width + i] * expert_rows[r.choice_row[c] * width + i]);
    const double bound = width * std::ldexp(1.0, -24) * magnitude;
    GPU_CHECK_MSG(std::abs(got_w[c] - gw[c]) <= bound, "grad_weight[%lld] gpu %g cpu %g",
                  static_cast<long long>(c), got_w[c], gw[c]);
  }

  // bf16 storage, fp32 arithmetic: the combine of bf16 rows against the CPU on the same values.
  std::vector<std::uint16_t> rows_b(rows * width);
  std::vector<float> rows_r(rows * width);
  for (std::size_t i = 0; i < rows_b.size(); ++i) {
    rows_b[i] = f32_to_bf16_bits(expert_rows[i]);
    rows_r[i] = bf16_bits_to_f32(rows_b[i]);
  }
  cpu::unpermute_combine(rows_r.data(), r.choice_row.data(), r.weight.data(), tokens, k, width,
                         y.data());
  DeviceBuffer<std::uint16_t> drows_b(rows_b), dy_b(tokens * width);
  cuda::unpermute_combine(DType::bf16, drows_b.get(), d_choice_row.get(), d_weight.get(), tokens, k,
                          width, dy_b.get(), nullptr);
  const auto got_b = dy_b.download();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < y.size(); ++i) bad += got_b[i] != f32_to_bf16_bits(y[i]);
  GPU_CHECK_MSG(bad == 0, "%zu bf16 combine outputs differ from the rounded CPU result", bad);
}

}  // namespace

int main() {
  return gpu_test::run({
      {"casts f32 <-> bf16 / f16 are bit-exact (NaN, Inf, subnormals)", casts_are_bit_exact},
      {"activations: ReLU exact, GELU / SiLU within the libm bound, bf16 within 1 bf16 ulp or that "
       "bound",
       activations_match},
      {"Adam / AdamW steps are bit-exact", adam_is_bit_exact},
      {"seeded uniform noise reproduces SeededNoise", noise_matches_seeded_noise},
      {"permutation kernels, odd width (scalar path)", [] { permutation_matches(37); }},
      {"permutation kernels, width 256 (16-byte path)", [] { permutation_matches(256); }},
  });
}
