// Matrix products: plain GEMM, the dense linear layer, and the grouped linear layer the experts
// use.
//
// All matrices are row-major. Launchers take raw pointers and sizes (llm.c's convention); the CPU
// versions here go through OpenBLAS. Parameter gradients accumulate (`+=`) so micro-batches can
// add into one buffer; activation gradients overwrite (`=`).
#pragma once

#include <cstdint>

namespace troupe::cpu {

// Threads OpenBLAS may use inside one GEMM. The actor runtime runs several GEMMs at once on
// different actors, so it sets 1 unless the user chose OPENBLAS_NUM_THREADS.
void set_blas_threads(int threads);

// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, with op(X) = X or Xᵀ.
// lda / ldb / ldc are the row strides of A, B, C as stored.
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc);

// y[rows, out] = x[rows, in] · wᵀ + bias; w is [out, in] (PyTorch's Linear layout), bias may be
// null.
void linear_forward(const float* x, const float* w, const float* bias, float* y, std::int64_t rows,
                    std::int64_t in, std::int64_t out);

// dx = dy · w (overwrites; skipped when dx is null), dw += dyᵀ · x, dbias += Σ_rows dy (skipped
// when null).
void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* dbias, std::int64_t rows, std::int64_t in, std::int64_t out);

// Grouped linear layer over variable-size groups of rows (the local experts of an MoE layer):
// rows [offsets[g], offsets[g+1]) of x are multiplied by group g's weight w[g] ([out, in]) and
// bias b[g] ([out], may be null). offsets has groups + 1 entries, offsets[0] = 0. Groups with
// zero rows are skipped; their weight gradients stay untouched.
void grouped_linear_forward(const float* x, const std::int64_t* offsets, std::int64_t groups,
                            const float* w, const float* bias, float* y, std::int64_t in,
                            std::int64_t out);
void grouped_linear_backward(const float* x, const std::int64_t* offsets, std::int64_t groups,
                             const float* w, const float* dy, float* dx, float* dw, float* dbias,
                             std::int64_t in, std::int64_t out);

}  // namespace troupe::cpu
