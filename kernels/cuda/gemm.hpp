// CUDA GEMMs through cuBLASLt, declared without CUDA headers: the plain GEMM (row-major, the
// contract of kernels/cpu/gemm.hpp's cpu::gemm) in fp32 or bf16 with fp32 accumulation, and the grouped
// linear layer of the experts over variable-size groups, forward and backward (weight gradients
// too), issued as one cuBLASLt call per group, round-robin over a tunable number of streams.
//
// Why per-group calls and not cublasGemmGroupedBatchedEx: on an H200 the grouped API reached
// 31–37% of the dense bf16 ceiling against 45–87% for a plain per-expert loop (../shared/GPU.md);
// bench/moe_layer_gpu_bench.cu measures both. Spreading small groups over several streams lets
// their GEMMs share the machine instead of running one after another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "memory/dtype.hpp"

namespace troupe::cuda {

// A cuBLASLt handle, its workspace, and a cache of matmul descriptors and chosen algorithms keyed
// by shape, types and pointer alignment (so a repeated shape costs one cublasLtMatmul call). Use
// one Blas per stream at a time: the workspace is not shared between concurrent GEMMs.
class Blas {
 public:
  explicit Blas(int device, std::size_t workspace_bytes = std::size_t{32} << 20);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  int device() const { return device_; }
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  int device_;
  std::unique_ptr<Impl> impl_;
};

// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, row-major with row strides lda/ldb/ldc.
// `in` is A's and B's dtype (f32 or bf16), `out` C's (f32, or bf16 for bf16 inputs). Accumulation
// is fp32 in both cases (fp32 inputs use full fp32 arithmetic, never TF32). k = 0 scales C by beta.
void gemm(Blas& blas, void* stream, DType in, DType out, bool trans_a, bool trans_b, std::int64_t m,
          std::int64_t n, std::int64_t k, float alpha, const void* a, std::int64_t lda,
          const void* b, std::int64_t ldb, float beta, void* c, std::int64_t ldc);

// `batch` independent GEMMs of that shape in one cuBLASLt call; GEMM i reads a + i·stride_a and
// b + i·stride_b and writes c + i·stride_c (strides in elements). Used for attention's per-head
// products, which are strided views of one qkv tensor.
void gemm_strided_batched(Blas& blas, void* stream, DType in, DType out, bool trans_a, bool trans_b,
                          std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                          const void* a, std::int64_t lda, std::int64_t stride_a, const void* b,
                          std::int64_t ldb, std::int64_t stride_b, float beta, void* c,
                          std::int64_t ldc, std::int64_t stride_c, std::int64_t batch);

// The experts' grouped linear layer (cpu::grouped_linear_forward / _backward without bias), for
// `dtype` f32 or bf16 everywhere. `offsets` (groups + 1 entries, host memory) splits the rows of x.
// Work is enqueued on `stream`'s order: helper streams wait for what `stream` enqueued before the
// call, and `stream` waits for every helper before anything enqueued after it. Never blocks the
// host.
class GroupedGemm {
 public:
  // `streams` ≥ 1 helper streams (1: everything runs on the caller's stream).
  GroupedGemm(int device, int streams);
  ~GroupedGemm();
  GroupedGemm(const GroupedGemm&) = delete;
  GroupedGemm& operator=(const GroupedGemm&) = delete;
  int streams() const;

  // y[rows_g, out] = x_g[rows_g, in] · w_gᵀ, w_g = w + g·out·in ([out, in]).
  void forward(void* stream, DType dtype, const void* x, const std::int64_t* offsets,
               std::int64_t groups, const void* w, void* y, std::int64_t in, std::int64_t out);
  // dx = dy · w (overwritten; skipped when dx is null); dw_g = dy_gᵀ · x_g, added to dw when
  // accumulate (a group with no rows leaves its dw alone, as on the CPU) or overwriting it (a group
  // with no rows gets zeros).
  void backward(void* stream, DType dtype, const void* x, const std::int64_t* offsets,
                std::int64_t groups, const void* w, const void* dy, void* dx, void* dw,
                std::int64_t in, std::int64_t out, bool accumulate);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::cuda
