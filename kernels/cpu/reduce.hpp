// Reductions used by training: sums, maxima, squared L2 norms (gradient clipping), and the
// element-wise helpers that go with them. Sums accumulate in double so that the result does not
// depend on how the caller splits a buffer into chunks of a few thousand elements.
//
// Each reduction has a backward that overwrites dx with ∂(dout · forward) / ∂x; dout has the type
// of the forward's result, so a double-valued reduction passes its gradient on in double and dx is
// rounded to fp32 once.
#pragma once

#include <cstdint>

namespace troupe::cpu {

double sum(const float* x, std::int64_t n);
// dx[i] = dout.
void sum_backward(double dout, float* dx, std::int64_t n);

float max(const float* x, std::int64_t n);  // n < 1 throws std::invalid_argument
// The whole gradient goes to the element max() returns, the first of equal maxima (lowest index),
// as PyTorch's max(dim) does; every other dx[i] is 0. n < 1 throws std::invalid_argument.
void max_backward(const float* x, float dout, float* dx, std::int64_t n);

double squared_l2_norm(const float* x, std::int64_t n);
// dx[i] = 2 · x[i] · dout.
void squared_l2_norm_backward(const float* x, double dout, float* dx, std::int64_t n);

// Column sums of a rows × cols matrix added into out: out[c] += Σ_r x[r, c] (fp32), the bias
// gradient of a linear layer.
void sum_rows(const float* x, float* out, std::int64_t rows, std::int64_t cols);
// dx[r, c] = dout[c] for dout [cols] and dx [rows, cols]: the column gradient, broadcast to rows.
void sum_rows_backward(const float* dout, float* dx, std::int64_t rows, std::int64_t cols);
void scale(float* x, float factor, std::int64_t n);
// y += alpha · x
void axpy(float alpha, const float* x, float* y, std::int64_t n);
// out = a + b
void add(const float* a, const float* b, float* out, std::int64_t n);
// out = a · b (element-wise; out may alias a or b)
void mul(const float* a, const float* b, float* out, std::int64_t n);
// y += a · b (element-wise): a product's gradient added into an accumulating gradient
void mul_add(const float* a, const float* b, float* y, std::int64_t n);

}  // namespace troupe::cpu
