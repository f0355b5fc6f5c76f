// Dispatch of the optimizer op (see optimizer.hpp).
#include "kernels/ops/optimizer.hpp"

#include "kernels/cpu/optimizer.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {

using detail::Backend;

void adam_step(const ExecContext& ctx, const Tensor& params, const Tensor& grads,
               const Tensor& exp_avg, const Tensor& exp_avg_sq, const AdamParams& hp,
               std::int64_t step, float grad_scale) {
  constexpr const char* op = "adam_step";
  detail::check(ctx, op, "params", params, params.dtype());
  detail::check(ctx, op, "grads", grads, params.dtype());
  // The state is fp32 whatever the parameters' dtype (a bf16 kernel keeps fp32 moments).
  detail::check(ctx, op, "exp_avg", exp_avg, DType::f32);
  detail::check(ctx, op, "exp_avg_sq", exp_avg_sq, DType::f32);
  for (const auto* t : {&grads, &exp_avg, &exp_avg_sq})
    if (t->numel() != params.numel())
      detail::fail(op, "params has " + std::to_string(params.numel()) +
                           " elements but grads or state has " + std::to_string(t->numel()));
  switch (detail::backend(ctx, op, params.dtype())) {
    case Backend::cpu_f32:
      cpu::adam_step(params.data<float>(), grads.data<float>(), exp_avg.data<float>(),
                     exp_avg_sq.data<float>(), params.numel(), hp, step, grad_scale);
      return;
  }
}

}  // namespace troupe::ops
