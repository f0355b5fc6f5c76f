// Dispatch of the convolution and pooling ops (see conv.hpp).
#include "kernels/ops/conv.hpp"

#include "kernels/cpu/conv.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;
using detail::optional_data;

cpu::Conv2dShape conv_shape(const char* op, const Tensor& x, const Tensor& w,
                            std::int64_t padding) {
  detail::check_rank(op, "x", x, 4);
  detail::check_rank(op, "w", w, 4);
  if (w.size(1) != x.size(1) || w.size(2) != w.size(3))
    detail::fail(op, "w " + shape_string(w.shape()) + " is not [OC, C, K, K] for x " +
                         shape_string(x.shape()));
  return cpu::Conv2dShape{x.size(0), x.size(1), x.size(2), x.size(3),
                          w.size(0), w.size(2), padding};
}

}  // namespace

void conv2d_forward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y, std::int64_t padding) {
  constexpr const char* op = "conv2d_forward";
  const cpu::Conv2dShape s = conv_shape(op, x, w, padding);
  const DType dt = x.dtype();
  detail::check(ctx, op, "x", x, dt);
  detail::check(ctx, op, "w", w, dt);
  detail::check_optional(ctx, op, "bias", bias, dt, {s.out_channels});
  detail::check(ctx, op, "y", y, dt, {s.batch, s.out_channels, s.out_height(), s.out_width()});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32: {
      const Tensor workspace =
          Tensor::empty({cpu::conv2d_workspace_size(s)}, DType::f32, ctx.output_allocator());
      cpu::conv2d_forward(s, x.data<float>(), w.data<float>(), optional_data<float>(bias),
                          y.data<float>(), workspace.data<float>());
      return;
    }
  }
}

void conv2d_backward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& dy,
                     const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                     std::int64_t padding) {
  constexpr const char* op = "conv2d_backward";
  const cpu::Conv2dShape s = conv_shape(op, x, w, padding);
  const DType dt = x.dtype();
  detail::check(ctx, op, "x", x, dt);
  detail::check(ctx, op, "w", w, dt);
  detail::check(ctx, op, "dy", dy, dt, {s.batch, s.out_channels, s.out_height(), s.out_width()});
  detail::check_optional(ctx, op, "dx", dx, dt, x.shape());
  detail::check_optional(ctx, op, "dw", dw, dt, w.shape());
  detail::check_optional(ctx, op, "dbias", dbias, dt, {s.out_channels});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32: {
      const Tensor workspace =
          Tensor::empty({cpu::conv2d_workspace_size(s)}, DType::f32, ctx.output_allocator());
      cpu::conv2d_backward(s, x.data<float>(), w.data<float>(), dy.data<float>(),
                           optional_data<float>(dx), optional_data<float>(dw),
                           optional_data<float>(dbias), workspace.data<float>());
      return;
    }
  }
}

void maxpool2d_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y,
                       const Tensor& argmax, std::int64_t window) {
  constexpr const char* op = "maxpool2d_forward";
  detail::check_rank(op, "x", x, 4);
  if (window < 1) detail::fail(op, "window = " + std::to_string(window) + ", must be >= 1");
  const Shape out{x.size(0), x.size(1), x.size(2) / window, x.size(3) / window};
  detail::check(ctx, op, "x", x, x.dtype());
  detail::check(ctx, op, "y", y, x.dtype(), out);
  detail::check(ctx, op, "argmax", argmax, DType::i32, out);
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu::maxpool2d_forward(x.data<float>(), y.data<float>(), argmax.data<std::int32_t>(),
                             x.size(0), x.size(1), x.size(2), x.size(3), window);
      return;
  }
}

void maxpool2d_backward(const ExecContext& ctx, const Tensor& dy, const Tensor& argmax,
                        const Tensor& dx, std::int64_t window) {
  constexpr const char* op = "maxpool2d_backward";
  detail::check_rank(op, "dx", dx, 4);
  if (window < 1) detail::fail(op, "window = " + std::to_string(window) + ", must be >= 1");
  const Shape out{dx.size(0), dx.size(1), dx.size(2) / window, dx.size(3) / window};
  detail::check(ctx, op, "dx", dx, dx.dtype());
  detail::check(ctx, op, "dy", dy, dx.dtype(), out);
  detail::check(ctx, op, "argmax", argmax, DType::i32, out);
  switch (detail::backend(ctx, op, dx.dtype())) {
    case Backend::cpu_f32:
      cpu::maxpool2d_backward(dy.data<float>(), argmax.data<std::int32_t>(), dx.data<float>(),
                              dx.size(0), dx.size(1), dx.size(2), dx.size(3), window);
      return;
  }
}

}  // namespace troupe::ops
