// Dispatch of the embedding ops (see embedding.hpp).
#include "kernels/ops/embedding.hpp"

#include "kernels/cpu/embedding.hpp"
#include "kernels/ops/dispatch.hpp"

namespace troupe::ops {

using detail::Backend;

void embedding_forward(const ExecContext& ctx, const Tensor& ids, const Tensor& table,
                       const Tensor& out) {
  constexpr const char* op = "embedding_forward";
  detail::check_rank(op, "table", table, 2);
  const std::int64_t count = ids.defined() ? ids.numel() : 0, dim = table.size(1);
  detail::check(ctx, op, "ids", ids, DType::i32);
  detail::check(ctx, op, "table", table, table.dtype());
  detail::check(ctx, op, "out", out, table.dtype(), {count, dim});
  switch (detail::backend(ctx, op, table.dtype())) {
    case Backend::cpu_f32:
      cpu::embedding_forward(ids.data<std::int32_t>(), table.data<float>(), out.data<float>(),
                             count, table.size(0), dim);
      return;
  }
}

void embedding_backward(const ExecContext& ctx, const Tensor& ids, const Tensor& dout,
                        const Tensor& dtable) {
  constexpr const char* op = "embedding_backward";
  detail::check_rank(op, "dtable", dtable, 2);
  const std::int64_t count = ids.defined() ? ids.numel() : 0, dim = dtable.size(1);
  detail::check(ctx, op, "ids", ids, DType::i32);
  detail::check(ctx, op, "dtable", dtable, dtable.dtype());
  detail::check(ctx, op, "dout", dout, dtable.dtype(), {count, dim});
  switch (detail::backend(ctx, op, dtable.dtype())) {
    case Backend::cpu_f32:
      cpu::embedding_backward(ids.data<std::int32_t>(), dout.data<float>(), dtable.data<float>(),
                              count, dim);
      return;
  }
}

}  // namespace troupe::ops
