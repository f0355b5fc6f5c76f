// Dispatch of the permutation ops (see permute.hpp).
#include "kernels/ops/permute.hpp"

#include "kernels/cpu/permute.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;

// tokens = choice_row.size() / k, after checking k divides it.
std::int64_t tokens_of(const char* op, std::span<const std::int64_t> choice_row, std::int64_t k) {
  const auto n = static_cast<std::int64_t>(choice_row.size());
  if (k < 1 || n % k != 0)
    detail::fail(op, "choice_row has " + std::to_string(n) +
                         " entries, not a multiple of k = " + std::to_string(k));
  return n / k;
}

}  // namespace

void permute_rows(const ExecContext& ctx, const Tensor& x, std::span<const std::int64_t> row_token,
                  const Tensor& out) {
  constexpr const char* op = "permute_rows";
  detail::check_rank(op, "x", x, 2);
  const auto rows = static_cast<std::int64_t>(row_token.size());
  detail::check(ctx, op, "x", x, x.dtype());
  detail::check(ctx, op, "out", out, x.dtype(), {rows, x.size(1)});
  switch (detail::backend(ctx, op, x.dtype())) {
    case Backend::cpu_f32:
      cpu::permute_rows(x.data<float>(), row_token.data(), rows, x.size(1), out.data<float>(),
                        detail::cpu_threads(ctx));
      return;
  }
}

void permute_rows_backward(const ExecContext& ctx, const Tensor& grad_rows,
                           std::span<const std::int64_t> choice_row, std::int64_t k,
                           const Tensor& grad_x) {
  constexpr const char* op = "permute_rows_backward";
  const std::int64_t tokens = tokens_of(op, choice_row, k);
  detail::check_rank(op, "grad_x", grad_x, 2);
  const std::int64_t width = grad_x.size(1);
  detail::check(ctx, op, "grad_x", grad_x, grad_x.dtype(), {tokens, width});
  detail::check(ctx, op, "grad_rows", grad_rows, grad_x.dtype());
  if (grad_rows.dim() != 2 || grad_rows.size(1) != width)
    detail::fail(op, "grad_rows is " + shape_string(grad_rows.shape()) + ", expected [rows, " +
                         std::to_string(width) + "]");
  switch (detail::backend(ctx, op, grad_x.dtype())) {
    case Backend::cpu_f32:
      cpu::permute_rows_backward(grad_rows.data<float>(), choice_row.data(), tokens, k, width,
                                 grad_x.data<float>(), detail::cpu_threads(ctx));
      return;
  }
}

void unpermute_combine(const ExecContext& ctx, const Tensor& rows,
                       std::span<const std::int64_t> choice_row, std::span<const float> weight,
                       std::int64_t k, const Tensor& out) {
  constexpr const char* op = "unpermute_combine";
  const std::int64_t tokens = tokens_of(op, choice_row, k);
  if (weight.size() != choice_row.size()) detail::fail(op, "weight and choice_row differ in size");
  detail::check_rank(op, "rows", rows, 2);
  detail::check(ctx, op, "rows", rows, rows.dtype());
  detail::check(ctx, op, "out", out, rows.dtype(), {tokens, rows.size(1)});
  switch (detail::backend(ctx, op, rows.dtype())) {
    case Backend::cpu_f32:
      cpu::unpermute_combine(rows.data<float>(), choice_row.data(), weight.data(), tokens, k,
                             rows.size(1), out.data<float>(), detail::cpu_threads(ctx));
      return;
  }
}

void unpermute_combine_backward(const ExecContext& ctx, const Tensor& grad_out, const Tensor& rows,
                                std::span<const std::int64_t> choice_row,
                                std::span<const float> weight, std::int64_t k,
                                const Tensor& grad_rows, const Tensor& grad_weight) {
  constexpr const char* op = "unpermute_combine_backward";
  const std::int64_t tokens = tokens_of(op, choice_row, k);
  if (weight.size() != choice_row.size()) detail::fail(op, "weight and choice_row differ in size");
  detail::check_rank(op, "rows", rows, 2);
  const DType dt = rows.dtype();
  detail::check(ctx, op, "rows", rows, dt);
  detail::check(ctx, op, "grad_out", grad_out, dt, {tokens, rows.size(1)});
  detail::check(ctx, op, "grad_rows", grad_rows, dt, rows.shape());
  detail::check(ctx, op, "grad_weight", grad_weight, DType::f32, {tokens * k});
  switch (detail::backend(ctx, op, dt)) {
    case Backend::cpu_f32:
      cpu::unpermute_combine_backward(grad_out.data<float>(), rows.data<float>(), choice_row.data(),
                                      weight.data(), tokens, k, rows.size(1),
                                      grad_rows.data<float>(), grad_weight.data<float>(),
                                      detail::cpu_threads(ctx));
      return;
  }
}

}  // namespace troupe::ops
