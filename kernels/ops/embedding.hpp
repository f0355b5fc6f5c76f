// Ops for the token embedding lookup and its scatter-add backward (kernels/cpu/embedding.hpp).
// ids are i32 of any shape; count = ids.numel().
#pragma once

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// out [count, dim] = table [vocab, dim] rows; an id outside [0, vocab) throws std::out_of_range.
void embedding_forward(const ExecContext& ctx, const Tensor& ids, const Tensor& table,
                       const Tensor& out);
// dtable[ids[i], :] += dout[i, :] in index order (deterministic).
void embedding_backward(const ExecContext& ctx, const Tensor& ids, const Tensor& dout,
                        const Tensor& dtable);

}  // namespace troupe::ops
