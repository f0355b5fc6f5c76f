// Dispatch of the activation ops (see activation.hpp). All of them have the same argument shape,
// so one helper per direction checks the tensors and picks the kernel.
#include "kernels/ops/activation.hpp"

#include <cstdint>

#include "kernels/cpu/activation.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;

using CpuForward = void (*)(const float*, float*, std::int64_t, int);
using CpuBackward = void (*)(const float*, const float*, float*, std::int64_t, int);

void forward(const ExecContext& ctx, const char* op, CpuForward cpu_kernel, const Tensor& x,
             const Tensor& y) {
  detail::check(ctx, op, "x", x, x.dtype());
  detail::check(ctx, op, "y", y, x.dtype(), x.shape());
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu_kernel(x.data<float>(), y.data<float>(), x.numel(), detail::cpu_threads(ctx));
      return;
  }
}

void backward(const ExecContext& ctx, const char* op, CpuBackward cpu_kernel, const Tensor& x,
              const Tensor& dy, const Tensor& dx) {
  detail::check(ctx, op, "x", x, x.dtype());
  detail::check(ctx, op, "dy", dy, x.dtype(), x.shape());
  detail::check(ctx, op, "dx", dx, x.dtype(), x.shape());
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu_kernel(x.data<float>(), dy.data<float>(), dx.data<float>(), x.numel(),
                 detail::cpu_threads(ctx));
      return;
  }
}

}  // namespace

void relu_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y) {
  forward(ctx, "relu_forward", cpu::relu_forward, x, y);
}
void relu_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  backward(ctx, "relu_backward", cpu::relu_backward, x, dy, dx);
}
void gelu_tanh_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y) {
  forward(ctx, "gelu_tanh_forward", cpu::gelu_tanh_forward, x, y);
}
void gelu_tanh_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy,
                        const Tensor& dx) {
  backward(ctx, "gelu_tanh_backward", cpu::gelu_tanh_backward, x, dy, dx);
}
void gelu_erf_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y) {
  forward(ctx, "gelu_erf_forward", cpu::gelu_erf_forward, x, y);
}
void gelu_erf_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy,
                       const Tensor& dx) {
  backward(ctx, "gelu_erf_backward", cpu::gelu_erf_backward, x, dy, dx);
}
void silu_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y) {
  forward(ctx, "silu_forward", cpu::silu_forward, x, y);
}
void silu_backward(const ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  backward(ctx, "silu_backward", cpu::silu_backward, x, dy, dx);
}

}  // namespace troupe::ops
