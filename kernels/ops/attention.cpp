// Dispatch of the attention ops (see attention.hpp).
#include "kernels/ops/attention.hpp"

#include "kernels/cpu/attention.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {
namespace {

using detail::Backend;

// The channel count C of qkv [batch·seq, 3C], after checking it.
std::int64_t channels(const char* op, std::int64_t batch, std::int64_t seq, const Tensor& qkv) {
  detail::check_rank(op, "qkv", qkv, 2);
  if (qkv.size(0) != batch * seq || qkv.size(1) % 3 != 0)
    detail::fail(op, "qkv is " + shape_string(qkv.shape()) +
                         ", expected [batch·seq = " + std::to_string(batch * seq) + ", 3·C]");
  return qkv.size(1) / 3;
}

}  // namespace

void attention_forward(const ExecContext& ctx, std::int64_t batch, std::int64_t seq,
                       std::int64_t heads, const Tensor& qkv, const Tensor& out,
                       const Tensor& att) {
  constexpr const char* op = "attention_forward";
  const std::int64_t c = channels(op, batch, seq, qkv);
  detail::check(ctx, op, "qkv", qkv, qkv.dtype());
  detail::check(ctx, op, "out", out, qkv.dtype(), {batch * seq, c});
  detail::check(ctx, op, "att", att, qkv.dtype(), {batch, heads, seq, seq});
  switch (detail::backend(ctx, op, qkv.dtype())) {
    case Backend::cpu_f32:
      cpu::attention_forward(cpu::AttentionShape{batch, seq, c, heads}, qkv.data<float>(),
                             out.data<float>(), att.data<float>());
      return;
  }
}

void attention_backward(const ExecContext& ctx, std::int64_t batch, std::int64_t seq,
                        std::int64_t heads, const Tensor& qkv, const Tensor& att,
                        const Tensor& dout, const Tensor& dqkv) {
  constexpr const char* op = "attention_backward";
  const std::int64_t c = channels(op, batch, seq, qkv);
  detail::check(ctx, op, "qkv", qkv, qkv.dtype());
  detail::check(ctx, op, "att", att, qkv.dtype(), {batch, heads, seq, seq});
  detail::check(ctx, op, "dout", dout, qkv.dtype(), {batch * seq, c});
  detail::check(ctx, op, "dqkv", dqkv, qkv.dtype(), qkv.shape());
  switch (detail::backend(ctx, op, qkv.dtype())) {
    case Backend::cpu_f32:
      cpu::attention_backward(cpu::AttentionShape{batch, seq, c, heads}, qkv.data<float>(),
                              att.data<float>(), dout.data<float>(), dqkv.data<float>());
      return;
  }
}

}  // namespace troupe::ops
