// Causal attention on the GPU (see attention.hpp). Per batch item b, with H heads of size hs, T
// positions and C = H·hs:
//   forward   S = scale · Q·Kᵀ (one batched GEMM over heads), causal softmax rows (kernel below),
//             out = att·V (batched GEMM);
//   backward  dV = attᵀ·dout, dP = dout·Vᵀ, dpre = scale · att ⊙ (dP − rowsum(att ⊙ dP)) (kernel),
//             dQ = dpre·K, dK = dpreᵀ·Q.
// Q, K, V of head h are the T × hs views qkv + b·T·3C + {0, C, 2C} + h·hs with row stride 3C, so
// consecutive heads are hs elements apart: that is the batch stride of the GEMMs.
//
// bf16 runs the same steps one batch item at a time: the GEMMs read bf16 operands (qkv, dout, and
// bf16 copies of att and dpre that the row kernels write beside their fp32 results into the
// workspace) and accumulate in fp32; scores, att, dP and dpre are fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/reduce.cuh"

namespace troupe::cuda {
namespace {

constexpr int kRowThreads = 128;

__device__ float exp_f(float x) {
  return static_cast<float>(exp(static_cast<double>(x)));
}

// In place on rows of T scores (row r is position r % T): softmax over j ≤ i, zeros above; the
// CPU's operations (max, exp, sum, one reciprocal, multiply), the sum a block tree. When `lo` is
// not null the result is also written there rounded to bf16 (same layout).
__global__ void causal_softmax_kernel(float* att, __nv_bfloat16* lo, std::int64_t rows,
                                      std::int64_t t_n) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float* row = att + r * t_n;
    const std::int64_t i = r % t_n;
    float row_max = -INFINITY;
    for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) row_max = fmaxf(row_max, row[j]);
    row_max = detail::block_max(row_max);
    float sum = 0.0f;
    for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
      const float e = exp_f(__fsub_rn(row[j], row_max));
      row[j] = e;
      sum = __fadd_rn(sum, e);
    }
    const float inv = __fdiv_rn(1.0f, detail::block_sum(sum));
    for (std::int64_t j = threadIdx.x; j < t_n; j += blockDim.x) {
      const float p = j <= i ? __fmul_rn(row[j], inv) : 0.0f;
      row[j] = p;
      if (lo) lo[r * t_n + j] = __float2bfloat16_rn(p);
    }
  }
}

// In place on rows of dP: dpre = scale · att ⊙ (dP − Σ_{j≤i} att·dP), zeros above the diagonal;
// also rounded to bf16 into `lo` when that is not null.
__global__ void causal_softmax_backward_kernel(const float* att, float* dpre, __nv_bfloat16* lo,
                                               std::int64_t rows, std::int64_t t_n, float scale) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* a = att + r * t_n;
    float* row = dpre + r * t_n;
    const std::int64_t i = r % t_n;
    float dot = 0.0f;
    for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x)
      dot = __fadd_rn(dot, __fmul_rn(a[j], row[j]));
    dot = detail::block_sum(dot);
    for (std::int64_t j = threadIdx.x; j < t_n; j += blockDim.x) {
      const float d = j <= i ? __fmul_rn(__fmul_rn(scale, a[j]), __fsub_rn(row[j], dot)) : 0.0f;
      row[j] = d;
      if (lo) lo[r * t_n + j] = __float2bfloat16_rn(d);
    }
  }
}

__global__ void to_bf16_kernel(const float* x, __nv_bfloat16* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

unsigned row_blocks(std::int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
}

void check_shape(const char* function, const cpu::AttentionShape& s) {
  auto fail = [&](const char* name, std::int64_t value, const std::string& allowed) {
    throw std::invalid_argument(std::string(function) + ": " + name + " = " +
                                std::to_string(value) + ", " + allowed);
  };
  if (s.batch < 0) fail("batch", s.batch, "must be >= 0");
  if (s.seq_len < 1) fail("seq_len", s.seq_len, "must be >= 1");
  if (s.heads < 1) fail("heads", s.heads, "must be >= 1");
  if (s.channels < 1 || s.channels % s.heads != 0)
    fail("channels", s.channels,
         "must be a positive multiple of heads = " + std::to_string(s.heads));
}

// Where the bf16 scratch starts in a bf16 workspace: after the heads·T·T floats, 256-aligned.
std::size_t lo_offset(const cpu::AttentionShape& s) {
  const auto bytes = static_cast<std::size_t>(s.heads * s.seq_len * s.seq_len) * sizeof(float);
  return (bytes + 255) / 256 * 256;
}

void check_dtype(const char* function, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument(std::string(function) + ": dtype " +
                                std::string(dtype_name(dtype)) + " not supported (f32 or bf16)");
}

using bf16 = __nv_bfloat16;

void attention_forward_bf16(Blas& blas, const cpu::AttentionShape& s, const bf16* qkv, bf16* out,
                            float* att, void* workspace, void* stream) {
  const std::int64_t t_n = s.seq_len, c = s.channels, h_n = s.heads, hs = c / h_n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const std::int64_t tt = t_n * t_n;
  auto* lo = reinterpret_cast<bf16*>(static_cast<char*>(workspace) + lo_offset(s));
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const bf16* q = qkv + b * t_n * 3 * c;
    float* att_b = att + b * h_n * tt;
    gemm_strided_batched(blas, stream, DType::bf16, DType::f32, false, true, t_n, t_n, hs, scale, q,
                         3 * c, hs, q + c, 3 * c, hs, 0.0f, att_b, t_n, tt, h_n);
    causal_softmax_kernel<<<row_blocks(h_n * t_n), kRowThreads, 0,
                            static_cast<cudaStream_t>(stream)>>>(att_b, lo, h_n * t_n, t_n);
    TROUPE_CUDA_CHECK_LAUNCH();
    gemm_strided_batched(blas, stream, DType::bf16, DType::bf16, false, false, t_n, hs, t_n, 1.0f,
                         lo, t_n, tt, q + 2 * c, 3 * c, hs, 0.0f, out + b * t_n * c, c, hs, h_n);
  }
}

void attention_backward_bf16(Blas& blas, const cpu::AttentionShape& s, const bf16* qkv,
                             const float* att, const bf16* dout, bf16* dqkv, void* workspace,
                             void* stream) {
  const std::int64_t t_n = s.seq_len, c = s.channels, h_n = s.heads, hs = c / h_n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const std::int64_t tt = t_n * t_n;
  auto* dpre = static_cast<float*>(workspace);
  auto* lo = reinterpret_cast<bf16*>(static_cast<char*>(workspace) + lo_offset(s));
  const auto st = static_cast<cudaStream_t>(stream);
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const bf16* q = qkv + b * t_n * 3 * c;
    bf16* dq = dqkv + b * t_n * 3 * c;
    const float* a = att + b * h_n * tt;
    const bf16* dout_b = dout + b * t_n * c;
    const std::int64_t n = h_n * tt, blocks = (n + 255) / 256;
    to_bf16_kernel<<<static_cast<unsigned>(blocks < 65535 * 32 ? blocks : 65535 * 32), 256, 0,
                     st>>>(a, lo, n);
    TROUPE_CUDA_CHECK_LAUNCH();
    gemm_strided_batched(blas, stream, DType::bf16, DType::bf16, true, false, t_n, hs, t_n, 1.0f,
                         lo, t_n, tt, dout_b, c, hs, 0.0f, dq + 2 * c, 3 * c, hs, h_n);
    gemm_strided_batched(blas, stream, DType::bf16, DType::f32, false, true, t_n, t_n, hs, 1.0f,
                         dout_b, c, hs, q + 2 * c, 3 * c, hs, 0.0f, dpre, t_n, tt, h_n);
    // Overwrites lo (att's copy) only after the dV GEMM above read it: same stream.
    causal_softmax_backward_kernel<<<row_blocks(h_n * t_n), kRowThreads, 0, st>>>(
        a, dpre, lo, h_n * t_n, t_n, scale);
    TROUPE_CUDA_CHECK_LAUNCH();
    gemm_strided_batched(blas, stream, DType::bf16, DType::bf16, false, false, t_n, hs, t_n, 1.0f,
                         lo, t_n, tt, q + c, 3 * c, hs, 0.0f, dq, 3 * c, hs, h_n);
    gemm_strided_batched(blas, stream, DType::bf16, DType::bf16, true, false, t_n, hs, t_n, 1.0f,
                         lo, t_n, tt, q, 3 * c, hs, 0.0f, dq + c, 3 * c, hs, h_n);
  }
}

}  // namespace

std::size_t attention_workspace_bytes(const cpu::AttentionShape& s, DType dtype) {
  check_shape("cuda::attention_workspace_bytes", s);
  check_dtype("cuda::attention_workspace_bytes", dtype);
  if (dtype == DType::f32) return attention_workspace_bytes(s);
  return lo_offset(s) + static_cast<std::size_t>(s.heads * s.seq_len * s.seq_len) * sizeof(bf16);
}

void attention_forward(Blas& blas, DType dtype, const cpu::AttentionShape& s, const void* qkv,
                       void* out, float* att, void* workspace, void* stream) {
  check_dtype("cuda::attention_forward", dtype);
  if (dtype == DType::f32)
    return attention_forward(blas, s, static_cast<const float*>(qkv), static_cast<float*>(out), att,
                             stream);
  check_shape("cuda::attention_forward", s);
  if (s.batch == 0) return;
  attention_forward_bf16(blas, s, static_cast<const bf16*>(qkv), static_cast<bf16*>(out), att,
                         workspace, stream);
}

void attention_backward(Blas& blas, DType dtype, const cpu::AttentionShape& s, const void* qkv,
                        const float* att, const void* dout, void* dqkv, void* workspace,
                        void* stream) {
  check_dtype("cuda::attention_backward", dtype);
  if (dtype == DType::f32)
    return attention_backward(blas, s, static_cast<const float*>(qkv), att,
                              static_cast<const float*>(dout), static_cast<float*>(dqkv), workspace,
                              stream);
  check_shape("cuda::attention_backward", s);
  if (s.batch == 0) return;
  attention_backward_bf16(blas, s, static_cast<const bf16*>(qkv), att,
                          static_cast<const bf16*>(dout), static_cast<bf16*>(dqkv), workspace,
                          stream);
}

std::size_t attention_workspace_bytes(const cpu::AttentionShape& s) {
  check_shape("cuda::attention_workspace_bytes", s);
  return static_cast<std::size_t>(s.heads * s.seq_len * s.seq_len) * sizeof(float);
}

void attention_forward(Blas& blas, const cpu::AttentionShape& s, const float* qkv, float* out,
                       float* att, void* stream) {
  check_shape("cuda::attention_forward", s);
  if (s.batch == 0) return;
  const std::int64_t t_n = s.seq_len, c = s.channels, h_n = s.heads, hs = c / h_n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const std::int64_t tt = t_n * t_n;
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const float* q = qkv + b * t_n * 3 * c;
    gemm_strided_batched(blas, stream, DType::f32, DType::f32, false, true, t_n, t_n, hs, scale, q,
                         3 * c, hs, q + c, 3 * c, hs, 0.0f, att + b * h_n * tt, t_n, tt, h_n);
  }
  const std::int64_t rows = s.batch * h_n * t_n;
  causal_softmax_kernel<<<row_blocks(rows), kRowThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      att, nullptr, rows, t_n);
  TROUPE_CUDA_CHECK_LAUNCH();
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const float* v = qkv + b * t_n * 3 * c + 2 * c;
    gemm_strided_batched(blas, stream, DType::f32, DType::f32, false, false, t_n, hs, t_n, 1.0f,
                         att + b * h_n * tt, t_n, tt, v, 3 * c, hs, 0.0f, out + b * t_n * c, c, hs,
                         h_n);
  }
}

void attention_backward(Blas& blas, const cpu::AttentionShape& s, const float* qkv,
                        const float* att, const float* dout, float* dqkv, void* workspace,
                        void* stream) {
  check_shape("cuda::attention_backward", s);
  if (s.batch == 0) return;
  const std::int64_t t_n = s.seq_len, c = s.channels, h_n = s.heads, hs = c / h_n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const std::int64_t tt = t_n * t_n;
  auto* dpre = static_cast<float*>(workspace);
  for (std::int64_t b = 0; b < s.batch; ++b) {
    const float* q = qkv + b * t_n * 3 * c;
    float* dq = dqkv + b * t_n * 3 * c;
    const float* a = att + b * h_n * tt;
    const float* dout_b = dout + b * t_n * c;
    // Each head owns disjoint columns of dqkv, so beta = 0 writes every element exactly once.
    gemm_strided_batched(blas, stream, DType::f32, DType::f32, true, false, t_n, hs, t_n, 1.0f, a,
                         t_n, tt, dout_b, c, hs, 0.0f, dq + 2 * c, 3 * c, hs, h_n);
    gemm_strided_batched(blas, stream, DType::f32, DType::f32, false, true, t_n, t_n, hs, 1.0f,
                         dout_b, c, hs, q + 2 * c, 3 * c, hs, 0.0f, dpre, t_n, tt, h_n);
    causal_softmax_backward_kernel<<<row_blocks(h_n * t_n), kRowThreads, 0,
                                     static_cast<cudaStream_t>(stream)>>>(a, dpre, nullptr,
                                                                          h_n * t_n, t_n, scale);
    TROUPE_CUDA_CHECK_LAUNCH();
    gemm_strided_batched(blas, stream, DType::f32, DType::f32, false, false, t_n, hs, t_n, 1.0f,
                         dpre, t_n, tt, q + c, 3 * c, hs, 0.0f, dq, 3 * c, hs, h_n);
    gemm_strided_batched(blas, stream, DType::f32, DType::f32, true, false, t_n, hs, t_n, 1.0f,
                         dpre, t_n, tt, q, 3 * c, hs, 0.0f, dq + c, 3 * c, hs, h_n);
  }
}

}  // namespace troupe::cuda
