// Dispatch of the linear ops (see gemm.hpp).
#include "kernels/ops/gemm.hpp"

#include "kernels/cpu/gemm.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {

using detail::Backend;
using detail::optional_data;

void set_cpu_gemm_threads(int threads) {
  cpu::set_blas_threads(threads);
}

void linear_forward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y) {
  constexpr const char* op = "linear_forward";
  detail::check_rank(op, "w", w, 2);
  detail::check_rank(op, "x", x, 2);
  const DType dt = w.dtype();
  const std::int64_t rows = x.size(0), in = w.size(1), out = w.size(0);
  detail::check(ctx, op, "w", w, dt);
  detail::check(ctx, op, "x", x, dt, {rows, in});
  detail::check_optional(ctx, op, "bias", bias, dt, {out});
  detail::check(ctx, op, "y", y, dt, {rows, out});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::linear_forward(x.data<float>(), w.data<float>(), optional_data<float>(bias),
                          y.data<float>(), rows, in, out);
      return;
  }
}

void linear_backward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& dy,
                     const Tensor& dx, const Tensor& dw, const Tensor& dbias) {
  constexpr const char* op = "linear_backward";
  detail::check_rank(op, "w", w, 2);
  detail::check_rank(op, "x", x, 2);
  const DType dt = w.dtype();
  const std::int64_t rows = x.size(0), in = w.size(1), out = w.size(0);
  detail::check(ctx, op, "w", w, dt);
  detail::check(ctx, op, "x", x, dt, {rows, in});
  detail::check(ctx, op, "dy", dy, dt, {rows, out});
  detail::check_optional(ctx, op, "dx", dx, dt, {rows, in});
  detail::check(ctx, op, "dw", dw, dt, {out, in});
  detail::check_optional(ctx, op, "dbias", dbias, dt, {out});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::linear_backward(x.data<float>(), w.data<float>(), dy.data<float>(),
                           optional_data<float>(dx), dw.data<float>(), optional_data<float>(dbias),
                           rows, in, out);
      return;
  }
}

namespace {

// Checks offsets (0 … n, non-decreasing, groups + 1 entries) and returns the group count.
std::int64_t check_offsets(const char* op, std::span<const std::int64_t> offsets,
                           std::int64_t groups, std::int64_t n) {
  if (static_cast<std::int64_t>(offsets.size()) != groups + 1 || offsets.front() != 0 ||
      offsets.back() != n)
    detail::fail(op, "offsets must have groups + 1 = " + std::to_string(groups + 1) +
                         " entries from 0 to rows = " + std::to_string(n) + ", got " +
                         std::to_string(offsets.size()) + " entries");
  for (std::size_t g = 1; g < offsets.size(); ++g)
    if (offsets[g] < offsets[g - 1])
      detail::fail(op, "offsets decrease at index " + std::to_string(g));
  return groups;
}

}  // namespace

void grouped_linear_forward(const ExecContext& ctx, const Tensor& x,
                            std::span<const std::int64_t> offsets, const Tensor& w,
                            const Tensor& bias, const Tensor& y) {
  constexpr const char* op = "grouped_linear_forward";
  detail::check_rank(op, "w", w, 3);
  detail::check_rank(op, "x", x, 2);
  const DType dt = w.dtype();
  const std::int64_t groups = w.size(0), out = w.size(1), in = w.size(2), n = x.size(0);
  detail::check(ctx, op, "w", w, dt);
  detail::check(ctx, op, "x", x, dt, {n, in});
  detail::check_optional(ctx, op, "bias", bias, dt, {groups, out});
  detail::check(ctx, op, "y", y, dt, {n, out});
  check_offsets(op, offsets, groups, n);
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::grouped_linear_forward(x.data<float>(), offsets.data(), groups, w.data<float>(),
                                  optional_data<float>(bias), y.data<float>(), in, out);
      return;
  }
}

void grouped_linear_backward(const ExecContext& ctx, const Tensor& x,
                             std::span<const std::int64_t> offsets, const Tensor& w,
                             const Tensor& dy, const Tensor& dx, const Tensor& dw,
                             const Tensor& dbias) {
  constexpr const char* op = "grouped_linear_backward";
  detail::check_rank(op, "w", w, 3);
  detail::check_rank(op, "x", x, 2);
  const DType dt = w.dtype();
  const std::int64_t groups = w.size(0), out = w.size(1), in = w.size(2), n = x.size(0);
  detail::check(ctx, op, "w", w, dt);
  detail::check(ctx, op, "x", x, dt, {n, in});
  detail::check(ctx, op, "dy", dy, dt, {n, out});
  detail::check_optional(ctx, op, "dx", dx, dt, {n, in});
  detail::check(ctx, op, "dw", dw, dt, {groups, out, in});
  detail::check_optional(ctx, op, "dbias", dbias, dt, {groups, out});
  check_offsets(op, offsets, groups, n);
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::grouped_linear_backward(x.data<float>(), offsets.data(), groups, w.data<float>(),
                                   dy.data<float>(), optional_data<float>(dx), dw.data<float>(),
                                   optional_data<float>(dbias), in, out);
      return;
  }
}

}  // namespace troupe::ops
