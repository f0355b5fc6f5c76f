// CPU GEMM family on OpenBLAS (see gemm.hpp). The grouped version loops over groups: each group
// is one sgemm, which is what a grouped GEMM kernel computes; the CUDA twin launches them as one.
#include "kernels/cpu/gemm.hpp"

#include <cblas.h>

namespace troupe::cpu {

void set_blas_threads(int threads) {
  openblas_set_num_threads(threads);
}

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C alone when k == 0 only if beta == 1; make the contract explicit
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void linear_forward(const float* x, const float* w, const float* bias, float* y, std::int64_t rows,
                    std::int64_t in, std::int64_t out) {
  if (rows == 0) return;
  if (bias) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t o = 0; o < out; ++o) y[r * out + o] = bias[o];
  }
  gemm(false, true, rows, out, in, 1.0f, x, in, w, in, bias ? 1.0f : 0.0f, y, out);
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* dbias, std::int64_t rows, std::int64_t in, std::int64_t out) {
  if (rows == 0) return;
  if (dx) gemm(false, false, rows, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  if (dw) gemm(true, false, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (dbias) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t o = 0; o < out; ++o) dbias[o] += dy[r * out + o];
  }
}

void grouped_linear_forward(const float* x, const std::int64_t* offsets, std::int64_t groups,
                            const float* w, const float* bias, float* y, std::int64_t in,
                            std::int64_t out) {
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t begin = offsets[g], rows = offsets[g + 1] - offsets[g];
    linear_forward(x + begin * in, w + g * out * in, bias ? bias + g * out : nullptr,
                   y + begin * out, rows, in, out);
  }
}

void grouped_linear_backward(const float* x, const std::int64_t* offsets, std::int64_t groups,
                             const float* w, const float* dy, float* dx, float* dw, float* dbias,
                             std::int64_t in, std::int64_t out) {
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t begin = offsets[g], rows = offsets[g + 1] - offsets[g];
    linear_backward(x + begin * in, w + g * out * in, dy + begin * out,
                    dx ? dx + begin * in : nullptr, dw + g * out * in,
                    dbias ? dbias + g * out : nullptr, rows, in, out);
  }
}

}  // namespace troupe::cpu
