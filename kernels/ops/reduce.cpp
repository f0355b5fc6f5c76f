// Dispatch of the reduction ops (see reduce.hpp).
#include "kernels/ops/reduce.hpp"

#include <stdexcept>

#include "kernels/cpu/reduce.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {

using detail::Backend;

double squared_l2_norm(const ExecContext& ctx, const Tensor& x) {
  constexpr const char* op = "squared_l2_norm";
  detail::check(ctx, op, "x", x, x.dtype());
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      return cpu::squared_l2_norm(x.data<float>(), x.numel());
  }
  throw std::logic_error("squared_l2_norm: unhandled backend");
}

void scale(const ExecContext& ctx, const Tensor& x, float factor) {
  constexpr const char* op = "scale";
  detail::check(ctx, op, "x", x, x.dtype());
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu::scale(x.data<float>(), factor, x.numel());
      return;
  }
}

void axpy(const ExecContext& ctx, float alpha, const Tensor& x, const Tensor& y) {
  constexpr const char* op = "axpy";
  detail::check(ctx, op, "y", y, y.dtype());
  detail::check(ctx, op, "x", x, y.dtype());
  if (x.numel() != y.numel())
    detail::fail(
        op, "x has " + std::to_string(x.numel()) + " elements, y " + std::to_string(y.numel()));
  switch (detail::backend(ctx, op, y.dtype())) {
    case Backend::cpu_f32:
      cpu::axpy(alpha, x.data<float>(), y.data<float>(), y.numel());
      return;
  }
}

void add(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& out) {
  constexpr const char* op = "add";
  detail::check(ctx, op, "a", a, a.dtype());
  detail::check(ctx, op, "b", b, a.dtype(), a.shape());
  detail::check(ctx, op, "out", out, a.dtype(), a.shape());
  switch (detail::backend(ctx, op, a.dtype())) {
    case Backend::cpu_f32:
      cpu::add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
      return;
  }
}

void mul(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& out) {
  constexpr const char* op = "mul";
  detail::check(ctx, op, "a", a, a.dtype());
  detail::check(ctx, op, "b", b, a.dtype(), a.shape());
  detail::check(ctx, op, "out", out, a.dtype(), a.shape());
  switch (detail::backend(ctx, op, a.dtype())) {
    case Backend::cpu_f32:
      cpu::mul(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
      return;
  }
}

void mul_add(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& y) {
  constexpr const char* op = "mul_add";
  detail::check(ctx, op, "y", y, y.dtype());
  detail::check(ctx, op, "a", a, y.dtype(), y.shape());
  detail::check(ctx, op, "b", b, y.dtype(), y.shape());
  switch (detail::backend(ctx, op, y.dtype())) {
    case Backend::cpu_f32:
      cpu::mul_add(a.data<float>(), b.data<float>(), y.data<float>(), y.numel());
      return;
  }
}

}  // namespace troupe::ops
