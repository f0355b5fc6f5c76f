// Element-wise CUDA kernels (see elementwise.hpp for the bit-exactness contract).
//
// Bit-exactness with the CPU twins: every fp32 product, sum and quotient goes through the
// round-to-nearest intrinsics (__fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn), which nvcc never fuses
// into an FMA, in the CPU code's evaluation order. The sections: casts, activations, Adam, noise,
// permutation; each kernel is followed by its launcher, which checks the launch.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/elementwise.hpp"

namespace troupe::cuda {
namespace {

constexpr int kThreads = 256;

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

unsigned grid_for(std::int64_t n, int threads = kThreads) {
  const std::int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535 * 32 ? (blocks > 0 ? blocks : 1) : 65535 * 32);
}

void check_dtype(const char* kernel, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument(std::string(kernel) + ": dtype " + std::string(dtype_name(dtype)) +
                                " not supported (f32 or bf16)");
}

// ---------------------------------------------------------------------------------------------
// Casts: the bit manipulations of memory/dtype.cpp, on 32-bit words.

__device__ std::uint16_t to_bf16_bits(float value) {
  const std::uint32_t x = __float_as_uint(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  const std::uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}

__device__ float from_bf16_bits(std::uint16_t bits) {
  return __uint_as_float(static_cast<std::uint32_t>(bits) << 16);
}

__device__ std::uint16_t to_f16_bits(float value) {
  const std::uint32_t x = __float_as_uint(value);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {
    const bool is_nan = abs > 0x7f800000u;
    return static_cast<std::uint16_t>(sign | 0x7c00u |
                                      (is_nan ? 0x0200u | ((abs >> 13) & 0x3ffu) : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {
    const int exponent = static_cast<int>(abs >> 23);
    if (exponent < 102) return static_cast<std::uint16_t>(sign);
    const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - exponent;
    std::uint32_t half = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = (abs - 0x38000000u) >> 13;
  const std::uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

__device__ float from_f16_bits(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  std::uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      out = sign;
    } else {  // exact: mantissa · 2^-24
      const float magnitude = __fmul_rn(static_cast<float>(mantissa), 5.9604644775390625e-8f);
      return sign ? -magnitude : magnitude;
    }
  } else {
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  return __uint_as_float(out);
}

template <class In, class Out, class F>
__global__ void map_kernel(const In* x, Out* y, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] = f(x[i]);
}

struct ToBf16 {
  __device__ std::uint16_t operator()(float v) const { return to_bf16_bits(v); }
};
struct FromBf16 {
  __device__ float operator()(std::uint16_t v) const { return from_bf16_bits(v); }
};
struct ToF16 {
  __device__ std::uint16_t operator()(float v) const { return to_f16_bits(v); }
};
struct FromF16 {
  __device__ float operator()(std::uint16_t v) const { return from_f16_bits(v); }
};

template <class In, class Out, class F>
void launch_map(const In* x, Out* y, std::int64_t n, F f, void* stream) {
  if (n <= 0) return;
  map_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(x, y, n, f);
  TROUPE_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------------------------------------
// Activations: kernels/cpu/activation.cpp's formulas, operation by operation.

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoeff = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ float div(float a, float b) { return __fdiv_rn(a, b); }
// Transcendentals in double, rounded once (see elementwise.hpp).
__device__ float exp_f(float x) { return static_cast<float>(exp(static_cast<double>(x))); }
__device__ float tanh_f(float x) { return static_cast<float>(tanh(static_cast<double>(x))); }
__device__ float erf_f(float x) { return static_cast<float>(erf(static_cast<double>(x))); }
// bf16 storage needs no bit-exact fp32: CUDA's float versions (≤ 2 ulp) are far inside a bf16 ulp.
template <bool Fast>
__device__ float exp_t(float x) { return Fast ? expf(x) : exp_f(x); }
template <bool Fast>
__device__ float tanh_t(float x) { return Fast ? tanhf(x) : tanh_f(x); }
template <bool Fast>
__device__ float erf_t(float x) { return Fast ? erff(x) : erf_f(x); }
template <bool Fast>
__device__ float sigmoid(float x) { return div(1.0f, add(1.0f, exp_t<Fast>(-x))); }

template <bool Fast>
__device__ float act_forward(ActivationFunction a, float v) {
  switch (a) {
    case ActivationFunction::relu:
      return v > 0.0f ? v : 0.0f;
    case ActivationFunction::gelu_tanh: {
      const float cube = mul(mul(mul(kGeluCoeff, v), v), v);
      return mul(mul(0.5f, v), add(1.0f, tanh_t<Fast>(mul(kSqrt2OverPi, add(v, cube)))));
    }
    case ActivationFunction::gelu_erf:
      return mul(mul(0.5f, v), add(1.0f, erf_t<Fast>(mul(v, kInvSqrt2))));
    case ActivationFunction::silu:
      return mul(v, sigmoid<Fast>(v));
  }
  return 0.0f;
}

template <bool Fast>
__device__ float act_backward(ActivationFunction a, float v, float dy) {
  switch (a) {
    case ActivationFunction::relu:
      return v > 0.0f ? dy : 0.0f;
    case ActivationFunction::gelu_tanh: {
      const float inner = mul(kSqrt2OverPi, add(v, mul(mul(mul(kGeluCoeff, v), v), v)));
      const float t = tanh_t<Fast>(inner);
      const float dinner = mul(kSqrt2OverPi, add(1.0f, mul(mul(mul(3.0f, kGeluCoeff), v), v)));
      const float left = mul(0.5f, add(1.0f, t));
      const float right = mul(mul(mul(0.5f, v), sub(1.0f, mul(t, t))), dinner);
      return mul(dy, add(left, right));
    }
    case ActivationFunction::gelu_erf: {
      const float cdf = mul(0.5f, add(1.0f, erf_t<Fast>(mul(v, kInvSqrt2))));
      const float pdf = mul(kInvSqrt2Pi, exp_t<Fast>(mul(mul(-0.5f, v), v)));
      return mul(dy, add(cdf, mul(v, pdf)));
    }
    case ActivationFunction::silu: {
      const float s = sigmoid<Fast>(v);
      return mul(mul(dy, s), add(1.0f, mul(v, sub(1.0f, s))));
    }
  }
  return 0.0f;
}

__device__ float load(const float* p, std::int64_t i) { return p[i]; }
__device__ float load(const __nv_bfloat16* p, std::int64_t i) { return __bfloat162float(p[i]); }
__device__ void store(float* p, std::int64_t i, float v) { p[i] = v; }
__device__ void store(__nv_bfloat16* p, std::int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// ---------------------------------------------------------------------------------------------
// Adam / AdamW: kernels/cpu/optimizer.cpp's element loop.

struct AdamScalars {
  float b1, b2, one_minus_b1, one_minus_b2, eps, l2, shrink, step_size, inv_sqrt_bc2, grad_scale;
};

__global__ void adam_kernel(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                            std::int64_t n, AdamScalars s) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float p = params[i];
    const float g = add(mul(grads[i], s.grad_scale), mul(s.l2, p));
    const float m = add(mul(s.b1, exp_avg[i]), mul(s.one_minus_b1, g));
    const float v = add(mul(s.b2, exp_avg_sq[i]), mul(mul(s.one_minus_b2, g), g));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = add(mul(__fsqrt_rn(v), s.inv_sqrt_bc2), s.eps);
    params[i] = sub(mul(p, s.shrink), div(mul(s.step_size, m), denom));
  }
}

// ---------------------------------------------------------------------------------------------
// Noise: models/noise.cpp's SeededNoise, one counter per element.

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

__host__ __device__ std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

__global__ void uniform_kernel(std::uint64_t key, std::uint64_t first, float* out, std::int64_t n,
                               float lo, float span) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t bits = mix64(key ^ mix64(first + static_cast<std::uint64_t>(i) + kGolden));
    const float u = mul(add(static_cast<float>(bits >> 41), 0.5f), 0x1p-23f);
    out[i] = add(lo, mul(span, u));
  }
}

// ---------------------------------------------------------------------------------------------
// Permutation. One block per output row (or token); each thread handles V consecutive elements at
// a time (16-byte accesses when the width allows), accumulating in fp32 in the CPU's order.

constexpr int kRowThreads = 128;

template <class T, int V>
struct alignas(sizeof(T) * V) AlignedVec {
  T v[V];
};

template <class T, int V>
__device__ void load_vec(const T* p, float (&out)[V]) {
  const AlignedVec<T, V> raw = *reinterpret_cast<const AlignedVec<T, V>*>(p);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = load(raw.v, i);
}

template <class T, int V>
__device__ void store_vec(T* p, const float (&in)[V]) {
  AlignedVec<T, V> raw;
#pragma unroll
  for (int i = 0; i < V; ++i) store(raw.v, i, in[i]);
  *reinterpret_cast<AlignedVec<T, V>*>(p) = raw;
}

// V elements per thread (16-byte accesses for bf16 when n and the pointers allow).
template <class T, int V>
__global__ void activation_forward_kernel(ActivationFunction a, const T* x, T* y, std::int64_t n) {
  constexpr bool fast = sizeof(T) == 2;
  for (std::int64_t i = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) * V;
       i < n; i += static_cast<std::int64_t>(gridDim.x) * blockDim.x * V) {
    float v[V];
    load_vec<T, V>(x + i, v);
#pragma unroll
    for (int e = 0; e < V; ++e) v[e] = act_forward<fast>(a, v[e]);
    store_vec<T, V>(y + i, v);
  }
}

template <class T, int V>
__global__ void activation_backward_kernel(ActivationFunction a, const T* x, const T* dy, T* dx,
                                           std::int64_t n) {
  constexpr bool fast = sizeof(T) == 2;
  for (std::int64_t i = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) * V;
       i < n; i += static_cast<std::int64_t>(gridDim.x) * blockDim.x * V) {
    float v[V], g[V];
    load_vec<T, V>(x + i, v);
    load_vec<T, V>(dy + i, g);
#pragma unroll
    for (int e = 0; e < V; ++e) g[e] = act_backward<fast>(a, v[e], g[e]);
    store_vec<T, V>(dx + i, g);
  }
}

template <class T, int V>
__global__ void permute_kernel(const T* x, const std::int64_t* row_token, std::int64_t width,
                               T* out) {
  const std::int64_t r = blockIdx.x;
  const T* src = x + row_token[r] * width;
  T* dst = out + r * width;
  for (std::int64_t i = threadIdx.x * V; i < width; i += blockDim.x * V)
    *reinterpret_cast<AlignedVec<T, V>*>(dst + i) = *reinterpret_cast<const AlignedVec<T, V>*>(src + i);
}

template <class T, int V>
__global__ void permute_backward_kernel(const T* grad_rows, const std::int64_t* choice_row,
                                        std::int64_t k, std::int64_t width, T* grad_x,
                                        bool accumulate) {
  const std::int64_t s = blockIdx.x;
  for (std::int64_t i = threadIdx.x * V; i < width; i += blockDim.x * V) {
    float acc[V];
    if (accumulate) {
      load_vec<T, V>(grad_x + s * width + i, acc);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] = 0.0f;
    }
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t row = choice_row[s * k + j];
      if (row < 0) continue;
      float g[V];
      load_vec<T, V>(grad_rows + row * width + i, g);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] = add(acc[e], g[e]);
    }
    store_vec<T, V>(grad_x + s * width + i, acc);
  }
}

template <class T, int V>
__global__ void combine_kernel(const T* rows, const std::int64_t* choice_row, const float* weight,
                               std::int64_t k, std::int64_t width, T* out) {
  const std::int64_t s = blockIdx.x;
  for (std::int64_t i = threadIdx.x * V; i < width; i += blockDim.x * V) {
    float acc[V];
#pragma unroll
    for (int e = 0; e < V; ++e) acc[e] = 0.0f;
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t row = choice_row[s * k + j];
      if (row < 0) continue;
      const float w = weight[s * k + j];
      float x[V];
      load_vec<T, V>(rows + row * width + i, x);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] = add(acc[e], mul(w, x[e]));
    }
    store_vec<T, V>(out + s * width + i, acc);
  }
}

// Block-wide sum (blockDim.x = kRowThreads); every thread gets the total.
__device__ float block_sum(float v) {
  __shared__ float partial[kRowThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();  // partial[] may still be read by the previous call
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kRowThreads / 32; ++w) total += partial[w];
  return total;
}

template <class T, int V>
__global__ void combine_backward_kernel(const T* grad_out, const T* rows,
                                        const std::int64_t* choice_row, const float* weight,
                                        std::int64_t k, std::int64_t width, T* grad_rows,
                                        float* grad_weight) {
  const std::int64_t s = blockIdx.x;
  for (std::int64_t j = 0; j < k; ++j) {
    const std::int64_t c = s * k + j, row = choice_row[c];
    if (row < 0) {
      if (threadIdx.x == 0) grad_weight[c] = 0.0f;
      continue;
    }
    const float w = weight[c];
    float dot = 0.0f;
    for (std::int64_t i = threadIdx.x * V; i < width; i += blockDim.x * V) {
      float dy[V], x[V], dx[V];
      load_vec<T, V>(grad_out + s * width + i, dy);
      load_vec<T, V>(rows + row * width + i, x);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        dot += dy[e] * x[e];
        dx[e] = mul(w, dy[e]);
      }
      store_vec<T, V>(grad_rows + row * width + i, dx);
    }
    dot = block_sum(dot);
    if (threadIdx.x == 0) grad_weight[c] = dot;
  }
}

// Picks the vector width: 16 bytes when every row starts 16-byte aligned, else scalar.
template <class T, class Launch>
void dispatch_vec(std::int64_t width, const void* const* ptrs, int count, Launch launch) {
  constexpr int V = 16 / sizeof(T);
  bool aligned = width % V == 0;
  for (int i = 0; i < count; ++i)
    aligned = aligned && reinterpret_cast<std::uintptr_t>(ptrs[i]) % 16 == 0;
  if (aligned)
    launch(std::integral_constant<int, V>{});
  else
    launch(std::integral_constant<int, 1>{});
}

template <class Launch>
void dispatch_type(const char* kernel, DType dtype, Launch launch) {
  check_dtype(kernel, dtype);
  if (dtype == DType::f32)
    launch(float{});
  else
    launch(__nv_bfloat16{});
}

}  // namespace

void cast_f32_to_bf16(const float* x, std::uint16_t* y, std::int64_t n, void* stream) {
  launch_map(x, y, n, ToBf16{}, stream);
}
void cast_bf16_to_f32(const std::uint16_t* x, float* y, std::int64_t n, void* stream) {
  launch_map(x, y, n, FromBf16{}, stream);
}
void cast_f32_to_f16(const float* x, std::uint16_t* y, std::int64_t n, void* stream) {
  launch_map(x, y, n, ToF16{}, stream);
}
void cast_f16_to_f32(const std::uint16_t* x, float* y, std::int64_t n, void* stream) {
  launch_map(x, y, n, FromF16{}, stream);
}

void activation_forward(ActivationFunction activation, DType dtype, const void* x, void* y, std::int64_t n,
                        void* stream) {
  if (n <= 0) return;
  dispatch_type("activation_forward", dtype, [&](auto t) {
    using T = decltype(t);
    const void* ptrs[] = {x, y};
    dispatch_vec<T>(n, ptrs, 2, [&](auto v) {
      constexpr int V = decltype(v)::value;
      activation_forward_kernel<T, V><<<grid_for((n + V - 1) / V), kThreads, 0,
                                        as_stream(stream)>>>(activation, static_cast<const T*>(x),
                                                             static_cast<T*>(y), n);
    });
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void activation_backward(ActivationFunction activation, DType dtype, const void* x, const void* dy,
                         void* dx, std::int64_t n, void* stream) {
  if (n <= 0) return;
  dispatch_type("activation_backward", dtype, [&](auto t) {
    using T = decltype(t);
    const void* ptrs[] = {x, dy, dx};
    dispatch_vec<T>(n, ptrs, 3, [&](auto v) {
      constexpr int V = decltype(v)::value;
      activation_backward_kernel<T, V><<<grid_for((n + V - 1) / V), kThreads, 0,
                                         as_stream(stream)>>>(
          activation, static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dx), n);
    });
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::int64_t n,
               const AdamParams& hp, std::int64_t step, float grad_scale, void* stream) {
  if (step < 1)
    throw std::invalid_argument("adam_step: step = " + std::to_string(step) +
                                " must be at least 1 (it counts this update)");
  for (float beta : {hp.beta1, hp.beta2})
    if (!(beta >= 0.0f && beta < 1.0f))
      throw std::invalid_argument("adam_step: beta = " + std::to_string(beta) +
                                  " must lie in [0, 1)");
  // The per-call scalars exactly as kernels/cpu/optimizer.cpp forms them, on the host.
  const double t = static_cast<double>(step);
  const float bc1 = hp.bias_correction ? static_cast<float>(1.0 - std::pow(hp.beta1, t)) : 1.0f;
  const float bc2 = hp.bias_correction ? static_cast<float>(1.0 - std::pow(hp.beta2, t)) : 1.0f;
  AdamScalars s;
  s.step_size = hp.lr / bc1;
  s.inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  s.b1 = hp.beta1;
  s.b2 = hp.beta2;
  s.one_minus_b1 = 1.0f - s.b1;
  s.one_minus_b2 = 1.0f - s.b2;
  s.eps = hp.eps;
  s.l2 = hp.adam_w_mode ? 0.0f : hp.weight_decay;
  s.shrink = hp.adam_w_mode ? 1.0f - hp.lr * hp.weight_decay : 1.0f;
  s.grad_scale = grad_scale;
  if (n <= 0) return;
  adam_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(params, grads, exp_avg, exp_avg_sq,
                                                               n, s);
  TROUPE_CUDA_CHECK_LAUNCH();
}

void seeded_uniform(std::uint64_t seed, std::uint64_t noise_stream, std::uint64_t first_draw,
                    float* out, std::int64_t n, float lo, float hi, void* stream) {
  if (!(lo <= hi))
    throw std::invalid_argument("seeded_uniform: lo = " + std::to_string(lo) + " and hi = " +
                                std::to_string(hi) + ", need lo ≤ hi");
  if (n <= 0) return;
  const std::uint64_t key = mix64(seed ^ mix64(noise_stream + kGolden));
  uniform_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(key, first_draw, out, n, lo,
                                                                  hi - lo);
  TROUPE_CUDA_CHECK_LAUNCH();
}

void permute_rows(DType dtype, const void* x, const std::int64_t* row_token, std::int64_t rows,
                  std::int64_t width, void* out, void* stream) {
  if (rows <= 0 || width <= 0) return;
  dispatch_type("permute_rows", dtype, [&](auto t) {
    using T = decltype(t);
    const void* ptrs[] = {x, out};
    dispatch_vec<T>(width, ptrs, 2, [&](auto v) {
      permute_kernel<T, decltype(v)::value><<<static_cast<unsigned>(rows), kRowThreads, 0,
                                              as_stream(stream)>>>(
          static_cast<const T*>(x), row_token, width, static_cast<T*>(out));
    });
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void permute_rows_backward(DType dtype, const void* grad_rows, const std::int64_t* choice_row,
                           std::int64_t tokens, std::int64_t k, std::int64_t width, void* grad_x,
                           bool accumulate, void* stream) {
  if (tokens <= 0 || width <= 0) return;
  dispatch_type("permute_rows_backward", dtype, [&](auto t) {
    using T = decltype(t);
    const void* ptrs[] = {grad_rows, grad_x};
    dispatch_vec<T>(width, ptrs, 2, [&](auto v) {
      permute_backward_kernel<T, decltype(v)::value><<<static_cast<unsigned>(tokens), kRowThreads,
                                                       0, as_stream(stream)>>>(
          static_cast<const T*>(grad_rows), choice_row, k, width, static_cast<T*>(grad_x),
          accumulate);
    });
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void unpermute_combine(DType dtype, const void* rows, const std::int64_t* choice_row,
                       const float* weight, std::int64_t tokens, std::int64_t k, std::int64_t width,
                       void* out, void* stream) {
  if (tokens <= 0 || width <= 0) return;
  dispatch_type("unpermute_combine", dtype, [&](auto t) {
    using T = decltype(t);
    const void* ptrs[] = {rows, out};
    dispatch_vec<T>(width, ptrs, 2, [&](auto v) {
      combine_kernel<T, decltype(v)::value><<<static_cast<unsigned>(tokens), kRowThreads, 0,
                                              as_stream(stream)>>>(
          static_cast<const T*>(rows), choice_row, weight, k, width, static_cast<T*>(out));
    });
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void unpermute_combine_backward(DType dtype, const void* grad_out, const void* rows,
                                const std::int64_t* choice_row, const float* weight,
                                std::int64_t tokens, std::int64_t k, std::int64_t width,
                                void* grad_rows, float* grad_weight, void* stream) {
  if (tokens <= 0) return;
  dispatch_type("unpermute_combine_backward", dtype, [&](auto t) {
    using T = decltype(t);
    const void* ptrs[] = {grad_out, rows, grad_rows};
    dispatch_vec<T>(width, ptrs, 3, [&](auto v) {
      combine_backward_kernel<T, decltype(v)::value><<<static_cast<unsigned>(tokens),
                                                       kRowThreads, 0, as_stream(stream)>>>(
          static_cast<const T*>(grad_out), static_cast<const T*>(rows), choice_row, weight, k,
          width, static_cast<T*>(grad_rows), grad_weight);
    });
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace troupe::cuda
