// 2-D convolution (stride 1, optional zero padding) and max-pooling, NCHW, for the LeNet-style CNN.
// The convolution reads x in place (no column matrix, see kernels/cpu/conv.cpp). `workspace`,
// conv2d_workspace_size() floats (C·K·K·OH·OW, one image's im2col column matrix), is required
// wherever it was with im2col; it holds one zero-padded image when padding > 0 and is untouched
// otherwise, so nothing is allocated per call.
// Bad shapes (non-positive sizes, negative padding, a kernel larger than the padded input) and
// missing required pointers throw std::invalid_argument naming the field.
#pragma once

#include <cstdint>

namespace troupe::cpu {

struct Conv2dShape {
  std::int64_t batch, in_channels, height, width;  // input [N, C, H, W]
  std::int64_t out_channels, kernel;               // weight [OC, C, K, K], bias [OC]
  std::int64_t padding = 0;
  std::int64_t out_height() const { return height + 2 * padding - kernel + 1; }
  std::int64_t out_width() const { return width + 2 * padding - kernel + 1; }
};

std::int64_t conv2d_workspace_size(const Conv2dShape& s);
// y [N, OC, OH, OW]; bias may be null (no bias).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    float* y, float* workspace);
// dx overwritten; dw, dbias accumulated (+=); each of the three is skipped when null.
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy,
                     float* dx, float* dw, float* dbias, float* workspace);

// Max-pool with a square window of `window` and stride `window` (no padding; trailing rows and
// columns that do not fill a window are ignored). argmax [N, C, H/window, W/window] records the
// flat index into the whole x tensor of each maximum (on ties the first in row-major order within
// the window) for the backward. Requires 1 <= window <= min(height, width) and
// N·C·H·W <= INT32_MAX; otherwise std::invalid_argument.
void maxpool2d_forward(const float* x, float* y, std::int32_t* argmax, std::int64_t batch,
                       std::int64_t channels, std::int64_t height, std::int64_t width,
                       std::int64_t window);
// dx overwritten: zero except at the recorded maxima. An argmax entry outside x throws
// std::out_of_range.
void maxpool2d_backward(const float* dy, const std::int32_t* argmax, float* dx, std::int64_t batch,
                        std::int64_t channels, std::int64_t height, std::int64_t width,
                        std::int64_t window);

}  // namespace troupe::cpu
