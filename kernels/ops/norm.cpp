// Dispatch of the normalisation ops (see norm.hpp).
#include "kernels/ops/norm.hpp"

#include "kernels/cpu/norm.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {

using detail::Backend;

void layernorm_forward(const ExecContext& ctx, const Tensor& x, const Tensor& gamma,
                       const Tensor& beta, const Tensor& y, const Tensor& mean, const Tensor& rstd,
                       float eps) {
  constexpr const char* op = "layernorm_forward";
  detail::check_rank(op, "x", x, 2);
  const DType dt = x.dtype();
  const std::int64_t rows = x.size(0), cols = x.size(1);
  detail::check(ctx, op, "x", x, dt);
  detail::check(ctx, op, "gamma", gamma, dt, {cols});
  detail::check(ctx, op, "beta", beta, dt, {cols});
  detail::check(ctx, op, "y", y, dt, x.shape());
  detail::check(ctx, op, "mean", mean, DType::f32, {rows});
  detail::check(ctx, op, "rstd", rstd, DType::f32, {rows});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::layernorm_forward(x.data<float>(), gamma.data<float>(), beta.data<float>(),
                             y.data<float>(), mean.data<float>(), rstd.data<float>(), rows, cols,
                             eps);
      return;
  }
}

void layernorm_backward(const ExecContext& ctx, const Tensor& x, const Tensor& gamma,
                        const Tensor& mean, const Tensor& rstd, const Tensor& dy, const Tensor& dx,
                        const Tensor& dgamma, const Tensor& dbeta) {
  constexpr const char* op = "layernorm_backward";
  detail::check_rank(op, "x", x, 2);
  const DType dt = x.dtype();
  const std::int64_t rows = x.size(0), cols = x.size(1);
  detail::check(ctx, op, "x", x, dt);
  detail::check(ctx, op, "gamma", gamma, dt, {cols});
  detail::check(ctx, op, "mean", mean, DType::f32, {rows});
  detail::check(ctx, op, "rstd", rstd, DType::f32, {rows});
  detail::check(ctx, op, "dy", dy, dt, x.shape());
  detail::check(ctx, op, "dx", dx, dt, x.shape());
  detail::check(ctx, op, "dgamma", dgamma, dt, {cols});
  detail::check(ctx, op, "dbeta", dbeta, dt, {cols});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::layernorm_backward(x.data<float>(), gamma.data<float>(), mean.data<float>(),
                              rstd.data<float>(), dy.data<float>(), dx.data<float>(),
                              dgamma.data<float>(), dbeta.data<float>(), rows, cols);
      return;
  }
}

}  // namespace troupe::ops
