// Ops for the 2-D convolution (stride 1, zero padding) and max-pooling, NCHW, of the LeNet-style
// CNN (kernels/cpu/conv.hpp has the algorithm). The convolution's scratch comes from
// ctx.output_allocator(), so a caller never sizes it.
#pragma once

#include <cstdint>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// x [N, C, H, W], w [OC, C, K, K], bias [OC] (or undefined), y [N, OC, OH, OW] overwritten with
// OH = H + 2·padding − K + 1 (OW likewise).
void conv2d_forward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y, std::int64_t padding = 0);
// dx overwritten; dw, dbias accumulated (+=); each is skipped when undefined.
void conv2d_backward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& dy,
                     const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                     std::int64_t padding = 0);

// Max-pool, square window and stride `window`: y [N, C, H/window, W/window] overwritten, argmax
// (i32, y's shape) records the flat index into x of each maximum for the backward.
void maxpool2d_forward(const ExecContext& ctx, const Tensor& x, const Tensor& y,
                       const Tensor& argmax, std::int64_t window);
// dx [N, C, H, W] overwritten: zero except at the recorded maxima.
void maxpool2d_backward(const ExecContext& ctx, const Tensor& dy, const Tensor& argmax,
                        const Tensor& dx, std::int64_t window);

}  // namespace troupe::ops
