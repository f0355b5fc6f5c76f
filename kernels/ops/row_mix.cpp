// Dispatch of the residual MoE mix ops (see row_mix.hpp).
#include "kernels/ops/row_mix.hpp"

#include "kernels/cpu/row_mix.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;

// Checks a [rows, cols] operand `x` and the [rows, 2] coefficients; returns rows.
std::int64_t check_mix(const ExecContext& ctx, const char* op, const Tensor& x,
                       const Tensor& coef) {
  detail::check(ctx, op, "x", x, x.dtype());
  detail::check_rank(op, "x", x, 2);
  detail::check(ctx, op, "coef", coef, x.dtype(), {x.size(0), 2});
  return x.size(0);
}

}  // namespace

void row_mix_forward(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& coef,
                     const Tensor& out) {
  constexpr const char* op = "row_mix_forward";
  const std::int64_t rows = check_mix(ctx, op, a, coef);
  detail::check(ctx, op, "b", b, a.dtype(), a.shape());
  detail::check(ctx, op, "out", out, a.dtype(), a.shape());
  switch (detail::backend(ctx, op, a.dtype())) {
    case Backend::cpu_f32:
      cpu::row_mix_forward(a.data<float>(), b.data<float>(), coef.data<float>(), out.data<float>(),
                           rows, a.size(1), detail::cpu_threads(ctx));
      return;
  }
}

void scale_rows_by_coefficient(const ExecContext& ctx, const Tensor& x, const Tensor& coef,
                               std::int64_t column, const Tensor& out) {
  constexpr const char* op = "scale_rows_by_coefficient";
  const std::int64_t rows = check_mix(ctx, op, x, coef);
  detail::check(ctx, op, "out", out, x.dtype(), x.shape());
  if (column != 0 && column != 1)
    detail::fail(op, "column is " + std::to_string(column) + ", expected 0 or 1");
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu::scale_rows_by_coefficient(x.data<float>(), coef.data<float>(), column, out.data<float>(),
                                     rows, x.size(1), detail::cpu_threads(ctx));
      return;
  }
}

void row_mix_coefficient_backward(const ExecContext& ctx, const Tensor& g, const Tensor& a,
                                  const Tensor& b, const Tensor& grad_coef) {
  constexpr const char* op = "row_mix_coefficient_backward";
  const std::int64_t rows = check_mix(ctx, op, g, grad_coef);
  detail::check(ctx, op, "a", a, g.dtype(), g.shape());
  detail::check(ctx, op, "b", b, g.dtype(), g.shape());
  switch (detail::backend(ctx, op, g.dtype())) {
    case Backend::cpu_f32:
      cpu::row_mix_coefficient_backward(g.data<float>(), a.data<float>(), b.data<float>(),
                                        grad_coef.data<float>(), rows, g.size(1),
                                        detail::cpu_threads(ctx));
      return;
  }
}

}  // namespace troupe::ops
