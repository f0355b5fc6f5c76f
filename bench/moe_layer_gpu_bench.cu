// One MoE layer, forward + backward in bf16 on one GPU, composed from the CUDA kernels (no actors):
// gate GEMM (fp32 logits) → fused router → permute → expert GEMM 1 → GELU → expert GEMM 2 →
// unpermute+combine, and the reverse. It first validates against the CPU reference on a small
// shape, then times the three configs of issue 8 with CUDA events (median of ≥ 20 after ≥ 5
// warm-up steps), next to a dense 8192³ bf16 cuBLASLt GEMM measured in the same run (the ceiling),
// and the six expert GEMMs alone as per-expert calls over 1/2/4/8 streams and through
// cublasGemmGroupedBatchedEx. Dropless routing: the one host synchronisation per step is the copy
// of the per-expert row offsets after the router (cuBLAS needs the sizes on the host); the
// backward reuses them.
// Usage: troupe_bench_moe_layer_gpu [results.json] [--quick]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/activation.hpp"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/elementwise.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/router.hpp"
#include "kernels/cuda_device.hpp"
#include "kernels/cpu/gating.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/permute.hpp"
#include "memory/dtype.hpp"

using namespace troupe;
using bf16 = __nv_bfloat16;

namespace {

constexpr cuda::ActivationFunction kAct = cuda::ActivationFunction::gelu_tanh;

__device__ std::uint64_t hash64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// N(0, std²) by Box–Muller from a counter hash: random data of any size without host work.
__global__ void normal_bf16_kernel(bf16* out, std::int64_t n, float std, std::uint64_t seed) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t h = hash64(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(i));
    const float u1 = ((h >> 40) + 0.5f) * 0x1p-24f, u2 = ((h & 0xffffff) + 0.5f) * 0x1p-24f;
    out[i] = __float2bfloat16(std * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
  }
}

struct Buf {
  void* p = nullptr;
  explicit Buf(std::size_t bytes) { TROUPE_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16)); }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p); }
};

void fill_normal(void* p, std::int64_t n, float std, std::uint64_t seed) {
  normal_bf16_kernel<<<4096, 256>>>(static_cast<bf16*>(p), n, std, seed);
  TROUPE_CUDA_CHECK_LAUNCH();
}

struct Config {
  const char* name;
  std::int64_t T, d, f, E, k;
};

cuda::RouterSelection rule_for(std::int64_t k) {
  return k == 1 ? cuda::RouterSelection::top1
         : k == 2 ? cuda::RouterSelection::top2
                  : cuda::RouterSelection::topk;
}

// The layer's buffers and one step, instrumented with events at phase boundaries.
struct Layer {
  Config c;
  int streams;
  std::int64_t Rmax;
  Buf x, wg, w1, w2, logits, gates, weight, expert, slot, exp_counts, kept_counts, row_offsets,
      choice_row, row_token, ws, xp, hpre, h, yp, y, dy, dyp, dweight, dh, dhpre, dxp, dx, dlogits,
      dlogits_b, dwg, dw1, dw2;
  std::int64_t* offsets_host = nullptr;  // pinned
  cuda::Blas blas{0};
  cuda::GroupedGemm grouped;
  cudaStream_t s = nullptr;
  cudaEvent_t ev[9];
  int host_syncs = 0;

  Layer(const Config& cfg, int n_streams)
      : c(cfg), streams(n_streams), Rmax(cfg.T * cfg.k),
        x(cfg.T * cfg.d * 2), wg(cfg.E * cfg.d * 2), w1(cfg.E * cfg.f * cfg.d * 2),
        w2(cfg.E * cfg.d * cfg.f * 2), logits(cfg.T * cfg.E * 4), gates(cfg.T * cfg.E * 4),
        weight(cfg.T * cfg.k * 4), expert(cfg.T * cfg.k * 8), slot(cfg.T * cfg.k * 8),
        exp_counts(cfg.E * 8), kept_counts(cfg.E * 8), row_offsets((cfg.E + 1) * 8),
        choice_row(cfg.T * cfg.k * 8), row_token(cfg.T * cfg.k * 8),
        ws(cuda::router_workspace_bytes(cfg.T, cfg.k)), xp(Rmax * cfg.d * 2),
        hpre(Rmax * cfg.f * 2), h(Rmax * cfg.f * 2), yp(Rmax * cfg.d * 2), y(cfg.T * cfg.d * 2),
        dy(cfg.T * cfg.d * 2), dyp(Rmax * cfg.d * 2), dweight(cfg.T * cfg.k * 4),
        dh(Rmax * cfg.f * 2), dhpre(Rmax * cfg.f * 2), dxp(Rmax * cfg.d * 2),
        dx(cfg.T * cfg.d * 2), dlogits(cfg.T * cfg.E * 4), dlogits_b(cfg.T * cfg.E * 2),
        dwg(cfg.E * cfg.d * 2), dw1(cfg.E * cfg.f * cfg.d * 2), dw2(cfg.E * cfg.d * cfg.f * 2),
        grouped(0, n_streams) {
    TROUPE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    TROUPE_CUDA_CHECK(cudaMallocHost(&offsets_host, (c.E + 1) * 8));
    for (auto& e : ev) TROUPE_CUDA_CHECK(cudaEventCreate(&e));
    fill_normal(x.p, c.T * c.d, 1.0f, 1);
    fill_normal(wg.p, c.E * c.d, 1.0f / std::sqrt(static_cast<float>(c.d)), 2);
    fill_normal(w1.p, c.E * c.f * c.d, 1.0f / std::sqrt(static_cast<float>(c.d)), 3);
    fill_normal(w2.p, c.E * c.d * c.f, 1.0f / std::sqrt(static_cast<float>(c.f)), 4);
    fill_normal(dy.p, c.T * c.d, 1.0f, 5);
    TROUPE_CUDA_CHECK(cudaDeviceSynchronize());
  }
  ~Layer() {
    cudaStreamSynchronize(s);
    for (auto& e : ev) cudaEventDestroy(e);
    cudaFreeHost(offsets_host);
    cudaStreamDestroy(s);
  }

  void step() {
    const std::int64_t T = c.T, d = c.d, f = c.f, E = c.E, k = c.k;
    host_syncs = 0;
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[0], s));
    // Router: fp32 logits from bf16 x and Wg, routing, row offsets to the host (the one sync).
    cuda::gemm(blas, s, DType::bf16, DType::f32, false, true, T, E, d, 1.0f, x.p, d, wg.p, d, 0.0f,
               logits.p, E);
    const cuda::RouterConfig rc{rule_for(k), T, E, k, -1, true};
    const cuda::RouterOutput ro{gates.as<float>(), expert.as<std::int64_t>(),
                                weight.as<float>(), slot.as<std::int64_t>(),
                                exp_counts.as<std::int64_t>(), kept_counts.as<std::int64_t>(),
                                row_offsets.as<std::int64_t>(), choice_row.as<std::int64_t>(),
                                row_token.as<std::int64_t>()};
    cuda::route(rc, logits.as<float>(), nullptr, nullptr, ws.p, ro, s);
    TROUPE_CUDA_CHECK(cudaMemcpyAsync(offsets_host, row_offsets.p, (E + 1) * 8,
                                      cudaMemcpyDeviceToHost, s));
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[1], s));
    TROUPE_CUDA_CHECK(cudaEventSynchronize(ev[1]));
    ++host_syncs;
    const std::int64_t R = offsets_host[E];
    cuda::permute_rows(DType::bf16, x.p, row_token.as<std::int64_t>(), R, d, xp.p, s);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[2], s));
    grouped.forward(s, DType::bf16, xp.p, offsets_host, E, w1.p, hpre.p, d, f);
    cuda::activation_forward(kAct, DType::bf16, hpre.p, h.p, R * f, s);
    grouped.forward(s, DType::bf16, h.p, offsets_host, E, w2.p, yp.p, f, d);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[3], s));
    cuda::unpermute_combine(DType::bf16, yp.p, choice_row.as<std::int64_t>(), weight.as<float>(),
                            T, k, d, y.p, s);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[4], s));
    // Backward (no host synchronisation: the offsets are the forward's).
    cuda::unpermute_combine_backward(DType::bf16, dy.p, yp.p, choice_row.as<std::int64_t>(),
                                     weight.as<float>(), T, k, d, dyp.p, dweight.as<float>(), s);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[5], s));
    grouped.backward(s, DType::bf16, h.p, offsets_host, E, w2.p, dyp.p, dh.p, dw2.p, f, d, false);
    cuda::activation_backward(kAct, DType::bf16, hpre.p, dh.p, dhpre.p, R * f, s);
    grouped.backward(s, DType::bf16, xp.p, offsets_host, E, w1.p, dhpre.p, dxp.p, dw1.p, d, f,
                     false);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[6], s));
    cuda::permute_rows_backward(DType::bf16, dxp.p, choice_row.as<std::int64_t>(), T, k, d, dx.p,
                                false, s);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[7], s));
    cuda::router_backward(rule_for(k), gates.as<float>(), expert.as<std::int64_t>(),
                          slot.as<std::int64_t>(), dweight.as<float>(), T, E, k,
                          dlogits.as<float>(), s);
    cuda::cast_f32_to_bf16(dlogits.as<float>(), dlogits_b.as<std::uint16_t>(), T * E, s);
    cuda::gemm(blas, s, DType::bf16, DType::bf16, false, false, T, d, E, 1.0f, dlogits_b.p, E,
               wg.p, d, 1.0f, dx.p, d);
    cuda::gemm(blas, s, DType::bf16, DType::bf16, true, false, E, d, T, 1.0f, dlogits_b.p, E, x.p,
               d, 0.0f, dwg.p, d);
    TROUPE_CUDA_CHECK(cudaEventRecord(ev[8], s));
  }

  // {total, router, permute, gemms, combine} in ms for the step just run (synchronises).
  std::vector<float> phases() {
    TROUPE_CUDA_CHECK(cudaEventSynchronize(ev[8]));
    float t[8];
    for (int i = 0; i < 8; ++i) TROUPE_CUDA_CHECK(cudaEventElapsedTime(&t[i], ev[i], ev[i + 1]));
    return {t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7], t[0] + t[7], t[1] + t[6],
            t[2] + t[5], t[3] + t[4]};
  }
};

std::vector<float> download_bf16(const void* p, std::int64_t n) {
  std::vector<std::uint16_t> b(n);
  TROUPE_CUDA_CHECK(cudaMemcpy(b.data(), p, n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> v(n);
  for (std::int64_t i = 0; i < n; ++i) v[i] = bf16_bits_to_f32(b[i]);
  return v;
}

template <class T>
std::vector<T> download(const void* p, std::int64_t n) {
  std::vector<T> v(n);
  TROUPE_CUDA_CHECK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

double nmse(const std::vector<float>& ref, const std::vector<float>& got) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num += (double(ref[i]) - got[i]) * (double(ref[i]) - got[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::isfinite(num) ? num / std::max(den, 1e-30) : INFINITY;
}

std::vector<float> round_bf16(std::vector<float> v) {
  for (auto& e : v) e = bf16_bits_to_f32(f32_to_bf16_bits(e));
  return v;
}

// The CPU reference of the same layer on the GPU's bf16 inputs and the GPU's routing (the router
// itself is checked exactly in tests/gpu/router_test), in fp32 with the GPU's bf16 roundings of
// stored activations. Bound: normalised error ≤ 2^-8 (bf16 operands, fp32 accumulation).
bool validate(int streams) {
  const Config c{"validate", 256, 128, 96, 8, 2};
  Layer L(c, streams);
  L.step();
  TROUPE_CUDA_CHECK(cudaDeviceSynchronize());
  const std::int64_t T = c.T, d = c.d, f = c.f, E = c.E, k = c.k;
  const auto x = download_bf16(L.x.p, T * d), w1 = download_bf16(L.w1.p, E * f * d),
             w2 = download_bf16(L.w2.p, E * d * f), dy = download_bf16(L.dy.p, T * d);
  const auto offsets = download<std::int64_t>(L.row_offsets.p, E + 1);
  const auto row_token = download<std::int64_t>(L.row_token.p, offsets[E]);
  const auto choice_row = download<std::int64_t>(L.choice_row.p, T * k);
  const auto weight = download<float>(L.weight.p, T * k);
  const std::int64_t R = offsets[E];
  std::vector<float> xp(R * d), hpre(R * f), h(R * f), yp(R * d), y(T * d);
  cpu::permute_rows(x.data(), row_token.data(), R, d, xp.data());
  cpu::grouped_linear_forward(xp.data(), offsets.data(), E, w1.data(), nullptr, hpre.data(), d, f);
  hpre = round_bf16(hpre);
  cpu::gelu_tanh_forward(hpre.data(), h.data(), R * f);
  h = round_bf16(h);
  cpu::grouped_linear_forward(h.data(), offsets.data(), E, w2.data(), nullptr, yp.data(), f, d);
  yp = round_bf16(yp);
  cpu::unpermute_combine(yp.data(), choice_row.data(), weight.data(), T, k, d, y.data());
  std::vector<float> dyp(R * d), dweight(T * k), dh(R * f), dhpre(R * f), dxp(R * d),
      dw1(E * f * d, 0.0f), dw2(E * d * f, 0.0f), dx(T * d, 0.0f);
  cpu::unpermute_combine_backward(dy.data(), yp.data(), choice_row.data(), weight.data(), T, k, d,
                                  dyp.data(), dweight.data());
  dyp = round_bf16(dyp);
  cpu::grouped_linear_backward(h.data(), offsets.data(), E, w2.data(), dyp.data(), dh.data(),
                               dw2.data(), nullptr, f, d);
  dh = round_bf16(dh);
  cpu::gelu_tanh_backward(hpre.data(), dh.data(), dhpre.data(), R * f);
  dhpre = round_bf16(dhpre);
  cpu::grouped_linear_backward(xp.data(), offsets.data(), E, w1.data(), dhpre.data(), dxp.data(),
                               dw1.data(), nullptr, d, f);
  dxp = round_bf16(dxp);
  cpu::permute_rows_backward(dxp.data(), choice_row.data(), T, k, d, dx.data());
  const double bound = std::ldexp(1.0, -8);
  struct Check {
    const char* name;
    double err;
  } checks[] = {{"y", nmse(y, download_bf16(L.y.p, T * d))},
                {"dweight", nmse(dweight, download<float>(L.dweight.p, T * k))},
                {"dW2", nmse(dw2, download_bf16(L.dw2.p, E * d * f))},
                {"dW1", nmse(dw1, download_bf16(L.dw1.p, E * f * d))}};
  bool ok = true;
  for (const auto& ch : checks) {
    std::printf("validate %-8s normalised error %.3g (bound %.3g)\n", ch.name, ch.err, bound);
    ok = ok && ch.err <= bound;
  }
  // dx also carries the gate's gradient on the GPU; compare the expert part by removing it is
  // not possible here, so check the GPU dx against CPU dx + the gate term computed from GPU dlogits.
  const auto dlog = download_bf16(L.dlogits_b.p, T * E);
  const auto wg = download_bf16(L.wg.p, E * d);
  cpu::gemm(false, false, T, d, E, 1.0f, dlog.data(), E, wg.data(), d, 1.0f, dx.data(), d);
  const double edx = nmse(dx, download_bf16(L.dx.p, T * d));
  std::printf("validate %-8s normalised error %.3g (bound %.3g)\n", "dx", edx, bound);
  ok = ok && edx <= bound;
  std::printf("validation %s\n", ok ? "passed" : "FAILED");
  return ok;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

float dense_ceiling_tflops(int warmup, int iters) {
  const std::int64_t n = 8192;
  Buf a(n * n * 2), b(n * n * 2), c(n * n * 2);
  fill_normal(a.p, n * n, 1.0f, 11);
  fill_normal(b.p, n * n, 1.0f, 12);
  cuda::Blas blas(0);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < warmup + iters; ++i) {
    cudaEventRecord(e0, nullptr);
    cuda::gemm(blas, nullptr, DType::bf16, DType::bf16, false, false, n, n, n, 1.0f, a.p, n, b.p,
               n, 0.0f, c.p, n);
    cudaEventRecord(e1, nullptr);
    TROUPE_CUDA_CHECK(cudaEventSynchronize(e1));
    float t;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= warmup) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return static_cast<float>(2.0 * n * n * n / (median(ms) * 1e-3) / 1e12);
}

// The six expert GEMMs of one step through cublasGemmGroupedBatchedEx (one call per GEMM kind,
// one group per expert), in column-major terms of the same row-major products as GroupedGemm.
float grouped_batched_ms(Layer& L, int warmup, int iters) {
  const std::int64_t E = L.c.E, d = L.c.d, f = L.c.f;
  const std::int64_t* off = L.offsets_host;
  cublasHandle_t handle;
  TROUPE_CUBLAS_CHECK(cublasCreate(&handle));
  TROUPE_CUBLAS_CHECK(cublasSetStream(handle, L.s));
  Buf ws(64 << 20);
  cublasSetWorkspace(handle, ws.p, 64 << 20);
  // kind: {transa, transb, m, n, k, A, lda, B, ldb, C, ldc, beta} per expert (column-major)
  struct Kind {
    cublasOperation_t ta, tb;
    std::vector<int> m, n, k, lda, ldb, ldc;
    std::vector<const void*> A, B;
    std::vector<void*> C;
  };
  std::vector<Kind> kinds(6);
  auto p = [](const Buf& b, std::int64_t elems) { return static_cast<char*>(b.p) + elems * 2; };
  for (std::int64_t e = 0; e < E; ++e) {
    const int rows = static_cast<int>(off[e + 1] - off[e]);
    if (rows == 0) continue;
    const std::int64_t o = off[e];
    // Y[rows,out] = X[rows,in]·W[out,in]ᵀ  ->  Yᵀ = W·Xᵀ: (op T on W) m=out n=rows k=in
    auto fwd = [&](Kind& K, const Buf& X, const Buf& W, const Buf& Y, std::int64_t in, std::int64_t out) {
      K.ta = CUBLAS_OP_T; K.tb = CUBLAS_OP_N;
      K.m.push_back(out); K.n.push_back(rows); K.k.push_back(in);
      K.A.push_back(p(W, e * out * in)); K.lda.push_back(in);
      K.B.push_back(p(X, o * in)); K.ldb.push_back(in);
      K.C.push_back(p(Y, o * out)); K.ldc.push_back(out);
    };
    // dX[rows,in] = dY[rows,out]·W[out,in] -> dXᵀ = Wᵀ·dYᵀ: m=in n=rows k=out, W not transposed
    auto bwd_x = [&](Kind& K, const Buf& DY, const Buf& W, const Buf& DX, std::int64_t in, std::int64_t out) {
      K.ta = CUBLAS_OP_N; K.tb = CUBLAS_OP_N;
      K.m.push_back(in); K.n.push_back(rows); K.k.push_back(out);
      K.A.push_back(p(W, e * out * in)); K.lda.push_back(in);
      K.B.push_back(p(DY, o * out)); K.ldb.push_back(out);
      K.C.push_back(p(DX, o * in)); K.ldc.push_back(in);
    };
    // dW[out,in] = dYᵀ·X -> dWᵀ[in,out] = Xᵀ·dY: m=in n=out k=rows, B transposed
    auto bwd_w = [&](Kind& K, const Buf& X, const Buf& DY, const Buf& DW, std::int64_t in, std::int64_t out) {
      K.ta = CUBLAS_OP_N; K.tb = CUBLAS_OP_T;
      K.m.push_back(in); K.n.push_back(out); K.k.push_back(rows);
      K.A.push_back(p(X, o * in)); K.lda.push_back(in);
      K.B.push_back(p(DY, o * out)); K.ldb.push_back(out);
      K.C.push_back(p(DW, e * out * in)); K.ldc.push_back(in);
    };
    fwd(kinds[0], L.xp, L.w1, L.hpre, d, f);
    fwd(kinds[1], L.h, L.w2, L.yp, f, d);
    bwd_x(kinds[2], L.dyp, L.w2, L.dh, f, d);
    bwd_w(kinds[3], L.h, L.dyp, L.dw2, f, d);
    bwd_x(kinds[4], L.dhpre, L.w1, L.dxp, d, f);
    bwd_w(kinds[5], L.xp, L.dhpre, L.dw1, d, f);
  }
  const int groups = static_cast<int>(kinds[0].m.size());
  std::vector<Buf*> ptr_arrays;
  std::vector<float> alpha(groups, 1.0f), beta(groups, 0.0f);
  std::vector<int> one(groups, 1);
  std::vector<cublasOperation_t> ta, tb;
  std::vector<std::vector<void*>> dev_ptrs;
  struct Dev { Buf a, b, c; Dev(int g) : a(g * 8), b(g * 8), c(g * 8) {} };
  std::vector<std::unique_ptr<Dev>> devs;
  for (auto& K : kinds) {
    devs.push_back(std::make_unique<Dev>(groups));
    TROUPE_CUDA_CHECK(cudaMemcpy(devs.back()->a.p, K.A.data(), groups * 8, cudaMemcpyHostToDevice));
    TROUPE_CUDA_CHECK(cudaMemcpy(devs.back()->b.p, K.B.data(), groups * 8, cudaMemcpyHostToDevice));
    TROUPE_CUDA_CHECK(cudaMemcpy(devs.back()->c.p, K.C.data(), groups * 8, cudaMemcpyHostToDevice));
  }
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  float result = -1.0f;
  try {
    for (int it = 0; it < warmup + iters; ++it) {
      TROUPE_CUDA_CHECK(cudaEventRecord(e0, L.s));
      for (std::size_t i = 0; i < kinds.size(); ++i) {
        auto& K = kinds[i];
        std::vector<cublasOperation_t> tav(groups, K.ta), tbv(groups, K.tb);
        TROUPE_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(
            handle, tav.data(), tbv.data(), K.m.data(), K.n.data(), K.k.data(), alpha.data(),
            static_cast<const void* const*>(devs[i]->a.p), CUDA_R_16BF, K.lda.data(),
            static_cast<const void* const*>(devs[i]->b.p), CUDA_R_16BF, K.ldb.data(), beta.data(),
            static_cast<void* const*>(devs[i]->c.p), CUDA_R_16BF, K.ldc.data(), groups, one.data(),
            CUBLAS_COMPUTE_32F));
      }
      TROUPE_CUDA_CHECK(cudaEventRecord(e1, L.s));
      TROUPE_CUDA_CHECK(cudaEventSynchronize(e1));
      float t;
      cudaEventElapsedTime(&t, e0, e1);
      if (it >= warmup) ms.push_back(t);
    }
    result = median(ms);
  } catch (const std::exception& ex) {
    std::printf("cublasGemmGroupedBatchedEx failed: %s\n", ex.what());
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasDestroy(handle);
  return result;
}

// The six expert GEMMs alone through GroupedGemm (per-expert cuBLASLt calls over the layer's
// streams), using the routing of the layer's last step.
float loop_gemms_ms(Layer& L, int warmup, int iters) {
  const std::int64_t E = L.c.E, d = L.c.d, f = L.c.f;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int it = 0; it < warmup + iters; ++it) {
    TROUPE_CUDA_CHECK(cudaEventRecord(e0, L.s));
    L.grouped.forward(L.s, DType::bf16, L.xp.p, L.offsets_host, E, L.w1.p, L.hpre.p, d, f);
    L.grouped.forward(L.s, DType::bf16, L.h.p, L.offsets_host, E, L.w2.p, L.yp.p, f, d);
    L.grouped.backward(L.s, DType::bf16, L.h.p, L.offsets_host, E, L.w2.p, L.dyp.p, L.dh.p,
                       L.dw2.p, f, d, false);
    L.grouped.backward(L.s, DType::bf16, L.xp.p, L.offsets_host, E, L.w1.p, L.dhpre.p, L.dxp.p,
                       L.dw1.p, d, f, false);
    TROUPE_CUDA_CHECK(cudaEventRecord(e1, L.s));
    TROUPE_CUDA_CHECK(cudaEventSynchronize(e1));
    float t;
    cudaEventElapsedTime(&t, e0, e1);
    if (it >= warmup) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return median(ms);
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::puts("no CUDA device: skipping");
    return 77;
  }
  const char* json_path = argc > 1 ? argv[1] : "moe_layer_gpu_bench.json";
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  const int warmup = 5, iters = quick ? 5 : 20;
  std::printf("device: %s\n", cuda::device_description(0).c_str());
  if (!validate(4)) return 1;
  const float ceiling = dense_ceiling_tflops(warmup, iters);
  std::printf("dense 8192^3 bf16 GEMM (cuBLASLt): %.1f TFLOP/s\n", ceiling);

  const Config configs[] = {{"switch-top1", 8192, 1024, 4096, 16, 1},
                            {"mixtral-top2", 8192, 4096, 14336, 8, 2},
                            {"fine-top6", 16384, 2048, 1408, 64, 6}};
  const int stream_counts[] = {1, 2, 4, 8};
  std::string json = "{\n  \"device\": \"" + cuda::device_description(0) +
                     "\",\n  \"dense_8192_bf16_tflops\": " + std::to_string(ceiling) +
                     ",\n  \"iterations\": " + std::to_string(iters) + ",\n  \"configs\": [\n";
  std::string table;
  for (std::size_t ci = 0; ci < 3; ++ci) {
    const Config& c = configs[ci];
    const double flops = 3.0 * 2.0 * c.T * c.k * 2.0 * c.d * c.f;
    // Expert GEMMs alone per stream count (picks the layer's stream count), and the grouped API.
    float best_ms = 1e30f;
    int best_streams = 1;
    std::string gemm_json;
    for (int n : stream_counts) {
      Layer L(c, n);
      L.step();
      const float ms = loop_gemms_ms(L, warmup, iters);
      std::printf("%s: six expert GEMMs, per-expert cuBLASLt over %d stream(s): %.3f ms = %.1f%%\n",
                  c.name, n, ms, 100.0 * flops / (ms * 1e-3) / 1e12 / ceiling);
      gemm_json += (gemm_json.empty() ? "" : ", ") + std::string("\"") + std::to_string(n) +
                   "\": " + std::to_string(ms);
      if (ms < best_ms) best_ms = ms, best_streams = n;
    }
    Layer L(c, best_streams);
    std::vector<std::vector<float>> samples;
    for (int i = 0; i < warmup + iters; ++i) {
      L.step();
      auto p = L.phases();
      if (i >= warmup) samples.push_back(p);
    }
    std::vector<float> med(5);
    for (int j = 0; j < 5; ++j) {
      std::vector<float> col;
      for (auto& s : samples) col.push_back(s[j]);
      med[j] = median(col);
    }
    const auto counts = download<std::int64_t>(L.kept_counts.p, c.E);
    const auto [mn, mx] = std::minmax_element(counts.begin(), counts.end());
    const float gb_ms = grouped_batched_ms(L, warmup, iters);
    const double tflops = flops / (med[0] * 1e-3) / 1e12;
    std::printf("%s: rows per expert min %lld max %lld; layer fwd+bwd %.3f ms, %.1f expert TFLOP/s "
                "= %.1f%% of the dense ceiling; streams %d; host syncs per step %d\n",
                c.name, static_cast<long long>(*mn), static_cast<long long>(*mx), med[0], tflops,
                100.0 * tflops / ceiling, best_streams, L.host_syncs);
    std::printf("%s: phases (ms) router %.3f permute %.3f gemms+act %.3f combine %.3f; "
                "cublasGemmGroupedBatchedEx six GEMMs %.3f ms (%.1f%%)\n",
                c.name, med[1], med[2], med[3], med[4], gb_ms,
                gb_ms > 0 ? 100.0 * flops / (gb_ms * 1e-3) / 1e12 / ceiling : 0.0);
    char row[512];
    std::snprintf(row, sizeof(row),
                  "| %s | %.3f | %.1f | %.1f%% | %.3f | %.3f | %.3f | %.3f | %.3f (%d str) | %.3f | %d |\n",
                  c.name, med[0], tflops, 100.0 * tflops / ceiling, med[1], med[2], med[3], med[4],
                  best_ms, best_streams, gb_ms, L.host_syncs);
    table += row;
    json += std::string("    {\"name\": \"") + c.name + "\", \"T\": " + std::to_string(c.T) +
            ", \"d\": " + std::to_string(c.d) + ", \"f\": " + std::to_string(c.f) +
            ", \"E\": " + std::to_string(c.E) + ", \"k\": " + std::to_string(c.k) +
            ", \"mode\": \"dropless\", \"median_ms\": " + std::to_string(med[0]) +
            ", \"expert_tflops\": " + std::to_string(tflops) +
            ", \"fraction_of_ceiling\": " + std::to_string(tflops / ceiling) +
            ", \"phases_ms\": {\"router\": " + std::to_string(med[1]) +
            ", \"permute\": " + std::to_string(med[2]) + ", \"gemms_and_activation\": " +
            std::to_string(med[3]) + ", \"combine\": " + std::to_string(med[4]) +
            "}, \"streams\": " + std::to_string(best_streams) +
            ", \"expert_gemms_only_ms_by_streams\": {" + gemm_json +
            "}, \"grouped_batched_ex_ms\": " + std::to_string(gb_ms) +
            ", \"rows_per_expert_min\": " + std::to_string(*mn) +
            ", \"rows_per_expert_max\": " + std::to_string(*mx) +
            ", \"host_syncs_per_step\": " + std::to_string(L.host_syncs) + "}" +
            (ci + 1 < 3 ? ",\n" : "\n");
  }
  json += "  ]\n}\n";
  if (FILE* fp = std::fopen(json_path, "w")) {
    std::fputs(json.c_str(), fp);
    std::fclose(fp);
  }
  std::printf("\nceiling: dense 8192^3 bf16 = %.1f TFLOP/s (same run)\n", ceiling);
  std::printf("| config | ms | expert TFLOP/s | of ceiling | router | permute | gemms+act | combine "
              "| 6 GEMMs loop | 6 GEMMs GroupedBatchedEx | host syncs |\n|---|---|---|---|---|---|---|---|---|---|---|\n%s",
              table.c_str());
  return 0;
}
