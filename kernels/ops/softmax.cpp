// Dispatch of the softmax ops (see softmax.hpp).
#include "kernels/ops/softmax.hpp"

#include "kernels/cpu/softmax.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {

using detail::Backend;

void softmax_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y) {
  constexpr const char* op = "softmax_forward";
  detail::check_rank(op, "x", x, 2);
  detail::check(ctx, op, "x", x, x.dtype());
  detail::check(ctx, op, "y", y, x.dtype(), x.shape());
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu::softmax_forward(x.data<float>(), y.data<float>(), x.size(0), x.size(1));
      return;
  }
}

void softmax_backward(const ExecContext& ctx, const Tensor& y, const Tensor& dy, const Tensor& dx) {
  constexpr const char* op = "softmax_backward";
  detail::check_rank(op, "y", y, 2);
  detail::check(ctx, op, "y", y, y.dtype());
  detail::check(ctx, op, "dy", dy, y.dtype(), y.shape());
  detail::check(ctx, op, "dx", dx, y.dtype(), y.shape());
  switch (detail::backend(ctx, op, y.dtype())) {
    case Backend::cpu_f32:
      cpu::softmax_backward(y.data<float>(), dy.data<float>(), dx.data<float>(), y.size(0),
                            y.size(1));
      return;
  }
}

}  // namespace troupe::ops
