// Ops for softmax cross-entropy over class logits [rows, classes] with i32 targets [rows]
// (kernels/cpu/loss.hpp has the numerics). A target outside [0, classes) throws std::out_of_range
// before anything is written.
#pragma once

#include <cstdint>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// Mean loss over rows; writes probs [rows, classes] for the backward.
float cross_entropy_forward(const ExecContext& ctx, const Tensor& logits, const Tensor& targets,
                            const Tensor& probs);
// dlogits = (probs − onehot(target)) · scale (overwritten); scale = dloss / rows for the mean.
void cross_entropy_backward(const ExecContext& ctx, const Tensor& probs, const Tensor& targets,
                            const Tensor& dlogits, float scale);
// Rows whose argmax (lowest index on ties) equals the target.
std::int64_t count_correct(const ExecContext& ctx, const Tensor& logits, const Tensor& targets);

}  // namespace troupe::ops
