// Dispatch of the gating ops (see gating.hpp).
#include "kernels/ops/gating.hpp"

#include "kernels/cpu/gating.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;

void check_size(const char* op, const char* name, std::size_t size, std::int64_t expected) {
  if (static_cast<std::int64_t>(size) != expected)
    detail::fail(op, std::string(name) + " has " + std::to_string(size) + " entries, expected " +
                         std::to_string(expected));
}

// Checks logits [S, E] and every output for k choices per token; returns the cpu kernel's view.
cpu::GatingOutput check_output(const ExecContext& ctx, const char* op, const Tensor& logits,
                               std::int64_t k, const GatingResult& out) {
  detail::check_rank(op, "logits", logits, 2);
  detail::check(ctx, op, "logits", logits, logits.dtype());
  const std::int64_t S = logits.size(0), E = logits.size(1);
  detail::check(ctx, op, "gates", out.gates, DType::f32, logits.shape());
  check_size(op, "expert", out.expert.size(), S * k);
  check_size(op, "weight", out.weight.size(), S * k);
  check_size(op, "slot", out.slot.size(), S * k);
  check_size(op, "exp_counts", out.exp_counts.size(), E);
  check_size(op, "kept_counts", out.kept_counts.size(), E);
  if (out.l_aux == nullptr) detail::fail(op, "l_aux is null");
  return cpu::GatingOutput{
      out.gates.data<float>(), out.expert.data(),      out.weight.data(), out.slot.data(),
      out.exp_counts.data(),   out.kept_counts.data(), out.l_aux};
}

const float* optional(std::span<const float> s) {
  return s.empty() ? nullptr : s.data();
}

}  // namespace

std::int64_t gating_capacity(std::int64_t tokens, std::int64_t experts, std::int64_t k,
                             double capacity_factor, std::int64_t min_capacity) {
  return cpu::gating_capacity(tokens, experts, k, capacity_factor, min_capacity);
}

void top1_gating(const ExecContext& ctx, const Tensor& logits, std::span<const float> gumbel,
                 std::span<const float> priority, std::int64_t capacity, const GatingResult& out) {
  constexpr const char* op = "top1_gating";
  const cpu::GatingOutput o = check_output(ctx, op, logits, 1, out);
  if (!gumbel.empty()) check_size(op, "gumbel", gumbel.size(), logits.numel());
  if (!priority.empty()) check_size(op, "priority", priority.size(), logits.size(0));
  switch (detail::backend(ctx, op, logits.dtype())) {
    case Backend::cpu_f32:
      cpu::top1_gating(logits.data<float>(), optional(gumbel), optional(priority), logits.size(0),
                       logits.size(1), capacity, o);
      return;
  }
}

void top2_gating(const ExecContext& ctx, const Tensor& logits, std::span<const float> gumbel,
                 std::int64_t capacity, const GatingResult& out) {
  constexpr const char* op = "top2_gating";
  const cpu::GatingOutput o = check_output(ctx, op, logits, 2, out);
  if (!gumbel.empty()) check_size(op, "gumbel", gumbel.size(), logits.numel());
  switch (detail::backend(ctx, op, logits.dtype())) {
    case Backend::cpu_f32:
      cpu::top2_gating(logits.data<float>(), optional(gumbel), logits.size(0), logits.size(1),
                       capacity, o);
      return;
  }
}

void topk_gating(const ExecContext& ctx, const Tensor& logits, std::int64_t k,
                 std::int64_t capacity, bool keep_highest_logits, const GatingResult& out) {
  constexpr const char* op = "topk_gating";
  const cpu::GatingOutput o = check_output(ctx, op, logits, k, out);
  switch (detail::backend(ctx, op, logits.dtype())) {
    case Backend::cpu_f32:
      cpu::topk_gating(logits.data<float>(), logits.size(0), logits.size(1), k, capacity,
                       keep_highest_logits, o);
      return;
  }
}

void gating_backward(const ExecContext& ctx, const GatingLoss& loss, const Tensor& gates,
                     std::span<const std::int64_t> expert, std::span<const std::int64_t> slot,
                     const Tensor& grad_weight, float grad_l_aux, std::int64_t k,
                     const Tensor& grad_logits) {
  constexpr const char* op = "gating_backward";
  detail::check_rank(op, "gates", gates, 2);
  const std::int64_t S = gates.size(0), E = gates.size(1);
  detail::check(ctx, op, "gates", gates, gates.dtype());
  detail::check(ctx, op, "grad_weight", grad_weight, gates.dtype());
  check_size(op, "grad_weight", static_cast<std::size_t>(grad_weight.numel()), S * k);
  check_size(op, "expert", expert.size(), S * k);
  check_size(op, "slot", slot.size(), S * k);
  detail::check(ctx, op, "grad_logits", grad_logits, gates.dtype(), gates.shape());
  switch (detail::backend(ctx, op, gates.dtype())) {
    case Backend::cpu_f32:
      cpu::gating_backward(loss, gates.data<float>(), expert.data(), slot.data(),
                           grad_weight.data<float>(), grad_l_aux, S, E, k,
                           grad_logits.data<float>());
      return;
  }
}

}  // namespace troupe::ops
