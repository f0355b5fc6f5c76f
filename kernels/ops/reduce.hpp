// Ops for the reductions and element-wise helpers training needs (kernels/cpu/reduce.hpp). Sums
// accumulate in double, so a result does not depend on how a buffer is split into chunks.
#pragma once

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// Σ x², the gradient-clipping norm's building block.
double squared_l2_norm(const ExecContext& ctx, const Tensor& x);
// x *= factor, in place.
void scale(const ExecContext& ctx, const Tensor& x, float factor);
// y += alpha · x (same element count).
void axpy(const ExecContext& ctx, float alpha, const Tensor& x, const Tensor& y);
// out = a + b (same shapes; out overwritten).
void add(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& out);
// out = a · b element-wise (same shapes; out may be a or b).
void mul(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& out);
// y += a · b element-wise (same shapes).
void mul_add(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& y);

}  // namespace troupe::ops
