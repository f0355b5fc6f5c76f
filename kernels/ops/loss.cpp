// Dispatch of the loss ops (see loss.hpp).
#include "kernels/ops/loss.hpp"

#include <stdexcept>

#include "kernels/cpu/loss.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;

// Checks logits-like [rows, classes] and targets (i32, rows elements, any shape).
void check_pair(const ExecContext& ctx, const char* op, const char* name, const Tensor& m,
                const Tensor& targets) {
  detail::check_rank(op, name, m, 2);
  detail::check(ctx, op, name, m, m.dtype());
  detail::check(ctx, op, "targets", targets, DType::i32);
  if (targets.numel() != m.size(0))
    detail::fail(op, "targets hold " + std::to_string(targets.numel()) + " elements for " +
                         std::to_string(m.size(0)) + " rows");
}

}  // namespace

float cross_entropy_forward(const ExecContext& ctx, const Tensor& logits, const Tensor& targets,
                            const Tensor& probs) {
  constexpr const char* op = "cross_entropy_forward";
  check_pair(ctx, op, "logits", logits, targets);
  detail::check(ctx, op, "probs", probs, logits.dtype(), logits.shape());
  switch (detail::backend(ctx, op, logits.dtype())) {
    case Backend::cpu_f32:
      return cpu::cross_entropy_forward(logits.data<float>(), targets.data<std::int32_t>(),
                                        probs.data<float>(), logits.size(0), logits.size(1));
  }
  throw std::logic_error("cross_entropy_forward: unhandled backend");
}

void cross_entropy_backward(const ExecContext& ctx, const Tensor& probs, const Tensor& targets,
                            const Tensor& dlogits, float scale) {
  constexpr const char* op = "cross_entropy_backward";
  check_pair(ctx, op, "probs", probs, targets);
  detail::check(ctx, op, "dlogits", dlogits, probs.dtype(), probs.shape());
  switch (detail::backend(ctx, op, probs.dtype())) {
    case Backend::cpu_f32:
      cpu::cross_entropy_backward(probs.data<float>(), targets.data<std::int32_t>(),
                                  dlogits.data<float>(), probs.size(0), probs.size(1), scale);
      return;
  }
}

std::int64_t count_correct(const ExecContext& ctx, const Tensor& logits, const Tensor& targets) {
  constexpr const char* op = "count_correct";
  check_pair(ctx, op, "logits", logits, targets);
  switch (detail::backend(ctx, op, logits.dtype())) {
    case Backend::cpu_f32:
      return cpu::count_correct(logits.data<float>(), targets.data<std::int32_t>(), logits.size(0),
                                logits.size(1));
  }
  throw std::logic_error("count_correct: unhandled backend");
}

}  // namespace troupe::ops
