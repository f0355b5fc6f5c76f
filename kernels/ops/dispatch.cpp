// Kernel selection and argument checks shared by the ops (see dispatch.hpp).
#include "kernels/ops/dispatch.hpp"

#include <stdexcept>

#include "kernels/cpu/intra_op_pool.hpp"

namespace troupe::ops::detail {

int cpu_threads(const ExecContext& ctx) {
  return ctx.cpu_threads > 0 ? ctx.cpu_threads : cpu::intra_op_threads();
}

void fail(std::string_view op, const std::string& message) {
  throw std::invalid_argument(std::string(op) + ": " + message);
}

Backend backend(const ExecContext& ctx, std::string_view op, DType dtype) {
  switch (ctx.device.kind) {
    case DeviceKind::cpu:
    case DeviceKind::pinned_host:
      if (dtype == DType::f32) return Backend::cpu_f32;
      fail(op, "dtype " + std::string(dtype_name(dtype)) + " not supported on cpu");
    case DeviceKind::cuda:
      break;
  }
  throw std::invalid_argument("no CUDA kernel for " + std::string(op) + " in this build");
}

namespace {

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " " + shape_string(t.shape()) + " on " +
         to_string(t.device()) + (t.desc().is_contiguous() ? "" : " (not contiguous)");
}

}  // namespace

void check(const ExecContext& ctx, std::string_view op, std::string_view name, const Tensor& t,
           DType dtype) {
  if (!t.defined()) fail(op, std::string(name) + " is undefined");
  const bool same_device = ctx.on_cpu() ? t.device().is_host() : t.device() == ctx.device;
  if (t.dtype() != dtype || !same_device || !t.desc().is_contiguous())
    fail(op, std::string(name) + " is " + describe(t) + ", expected a contiguous " +
                 std::string(dtype_name(dtype)) + " tensor on " + to_string(ctx.device));
}

void check(const ExecContext& ctx, std::string_view op, std::string_view name, const Tensor& t,
           DType dtype, const Shape& shape) {
  check(ctx, op, name, t, dtype);
  if (t.shape() != shape)
    fail(op, std::string(name) + " is " + describe(t) + ", expected shape " + shape_string(shape));
}

void check_optional(const ExecContext& ctx, std::string_view op, std::string_view name,
                    const Tensor& t, DType dtype, const Shape& shape) {
  if (t.defined()) check(ctx, op, name, t, dtype, shape);
}

void check_rank(std::string_view op, std::string_view name, const Tensor& t, std::int64_t rank) {
  if (!t.defined()) fail(op, std::string(name) + " is undefined");
  if (t.dim() != rank)
    fail(op, std::string(name) + " has shape " + shape_string(t.shape()) + ", expected " +
                 std::to_string(rank) + " axes");
}

}  // namespace troupe::ops::detail
