// CPU kernels of the residual MoE mix (see row_mix.hpp).
#include "kernels/cpu/row_mix.hpp"

#include "kernels/cpu/intra_op_pool.hpp"

namespace troupe::cpu {
namespace {

// Rows per chunk below which waking another thread costs more than it saves.
constexpr std::int64_t kRowGrain = 16;

template <class Body>
void for_each_row(std::int64_t rows, int threads, const Body& body) {
  parallel_for(rows, kRowGrain, threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) body(r);
  });
}

}  // namespace

void row_mix_forward(const float* a, const float* b, const float* coef, float* out,
                     std::int64_t rows, std::int64_t cols, int threads) {
  for_each_row(rows, threads, [&](std::int64_t r) {
    const float c0 = coef[2 * r], c1 = coef[2 * r + 1];
    const float* ar = a + r * cols;
    const float* br = b + r * cols;
    float* o = out + r * cols;
    for (std::int64_t i = 0; i < cols; ++i) o[i] = ar[i] * c0 + br[i] * c1;
  });
}

void scale_rows_by_coefficient(const float* x, const float* coef, std::int64_t column, float* out,
                               std::int64_t rows, std::int64_t cols, int threads) {
  for_each_row(rows, threads, [&](std::int64_t r) {
    const float c = coef[2 * r + column];
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    for (std::int64_t i = 0; i < cols; ++i) o[i] = xr[i] * c;
  });
}

void row_mix_coefficient_backward(const float* g, const float* a, const float* b, float* grad_coef,
                                  std::int64_t rows, std::int64_t cols, int threads) {
  for_each_row(rows, threads, [&](std::int64_t r) {
    const float* gr = g + r * cols;
    const float* ar = a + r * cols;
    const float* br = b + r * cols;
    float dot_a = 0.0f, dot_b = 0.0f;
    for (std::int64_t i = 0; i < cols; ++i) {
      dot_a += gr[i] * ar[i];
      dot_b += gr[i] * br[i];
    }
    grad_coef[2 * r] = dot_a;
    grad_coef[2 * r + 1] = dot_b;
  });
}

}  // namespace troupe::cpu
