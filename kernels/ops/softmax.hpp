// Ops for the row-wise softmax over the last axis of a [rows, cols] matrix and its backward
// (kernels/cpu/softmax.hpp has the numerics). Outputs are overwritten; dx may be dy.
#pragma once

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

void softmax_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y);
// y is the forward output.
void softmax_backward(const ExecContext& ctx, const Tensor& y, const Tensor& dy, const Tensor& dx);

}  // namespace troupe::ops
