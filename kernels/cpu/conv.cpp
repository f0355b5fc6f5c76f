// CPU convolution and max-pooling (see conv.hpp). Each image is lowered to its column matrix
// (im2col) so the convolution becomes one sgemm per image: y = W · col, dW += dy · colᵀ and
// dcol = Wᵀ · dy, which col2im scatters back onto dx. The column matrix of one image is small
// (LeNet's second layer: 150 × 100 floats), so per-image GEMMs keep the workspace in cache.
#include "kernels/conv.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/gemm.hpp"

namespace troupe::cpu {
namespace {

[[noreturn]] void fail(const char* function, const std::string& what) {
  throw std::invalid_argument(std::string(function) + ": " + what);
}

void require_at_least(const char* function, const char* name, std::int64_t value,
                      std::int64_t minimum) {
  if (value < minimum)
    fail(function, std::string(name) + " = " + std::to_string(value) +
                       ", must be >= " + std::to_string(minimum));
}

void require_pointer(const char* function, const char* name, const void* pointer) {
  if (pointer == nullptr) fail(function, std::string(name) + " is null");
}

void check_conv_shape(const char* function, const Conv2dShape& s) {
  require_at_least(function, "batch", s.batch, 0);
  require_at_least(function, "in_channels", s.in_channels, 1);
  require_at_least(function, "height", s.height, 1);
  require_at_least(function, "width", s.width, 1);
  require_at_least(function, "out_channels", s.out_channels, 1);
  require_at_least(function, "kernel", s.kernel, 1);
  require_at_least(function, "padding", s.padding, 0);
  if (s.out_height() < 1 || s.out_width() < 1)
    fail(function, "kernel = " + std::to_string(s.kernel) + " exceeds the padded input " +
                       std::to_string(s.height + 2 * s.padding) + " x " +
                       std::to_string(s.width + 2 * s.padding) + " (height " +
                       std::to_string(s.height) + ", width " + std::to_string(s.width) +
                       ", padding " + std::to_string(s.padding) + " on each side)");
}

// The output columns [begin, end) whose input column (output column + offset) lies inside the
// image; the rest read zero padding.
struct Span {
  std::int64_t begin, end;
};

Span inside_columns(std::int64_t offset, std::int64_t width, std::int64_t out_width) {
  const std::int64_t begin = std::clamp<std::int64_t>(-offset, 0, out_width);
  return {begin, std::clamp<std::int64_t>(width - offset, begin, out_width)};
}

// Calls f(col_row, inside, x_row, span) for every row segment of one image's column matrix:
// col_row is the offset of an OW-long segment of the column matrix; when the segment's input row
// lies inside the image (`inside`), x_row is the offset of the input element its output column 0
// would read (it may be negative or belong to the previous row, so only columns in `span` may be
// dereferenced). im2col and col2im walk the same pairs in opposite directions.
template <class F>
void for_each_segment(const Conv2dShape& s, F&& f) {
  const std::int64_t k = s.kernel, pad = s.padding, oh_n = s.out_height(), ow_n = s.out_width();
  std::int64_t col_row = 0;
  for (std::int64_t c = 0; c < s.in_channels; ++c)
    for (std::int64_t kh = 0; kh < k; ++kh)
      for (std::int64_t kw = 0; kw < k; ++kw) {
        const Span span = inside_columns(kw - pad, s.width, ow_n);
        for (std::int64_t oh = 0; oh < oh_n; ++oh, col_row += ow_n) {
          const std::int64_t ih = oh + kh - pad;
          const bool inside = ih >= 0 && ih < s.height;
          f(col_row, inside, (c * s.height + ih) * s.width + kw - pad, span);
        }
      }
}

void im2col(const Conv2dShape& s, const float* x, float* col) {
  const std::int64_t ow_n = s.out_width();
  for_each_segment(s, [&](std::int64_t col_row, bool inside, std::int64_t x_row, Span span) {
    float* dst = col + col_row;
    if (!inside) {
      std::fill(dst, dst + ow_n, 0.0f);
      return;
    }
    std::fill(dst, dst + span.begin, 0.0f);
    if (span.begin < span.end)  // an empty span may sit before the start of x
      std::copy(x + x_row + span.begin, x + x_row + span.end, dst + span.begin);
    std::fill(dst + span.end, dst + ow_n, 0.0f);
  });
}

// Adds the column matrix back onto x (which the caller has zeroed); padding entries are dropped.
void col2im(const Conv2dShape& s, const float* col, float* x) {
  for_each_segment(s, [&](std::int64_t col_row, bool inside, std::int64_t x_row, Span span) {
    if (!inside) return;
    for (std::int64_t ow = span.begin; ow < span.end; ++ow) x[x_row + ow] += col[col_row + ow];
  });
}

void check_pool_shape(const char* function, std::int64_t batch, std::int64_t channels,
                      std::int64_t height, std::int64_t width, std::int64_t window) {
  require_at_least(function, "batch", batch, 0);
  require_at_least(function, "channels", channels, 1);
  require_at_least(function, "window", window, 1);
  require_at_least(function, "height", height, window);
  require_at_least(function, "width", width, window);
  if (batch * channels * height * width > std::numeric_limits<std::int32_t>::max())
    fail(function, "input has " + std::to_string(batch * channels * height * width) +
                       " elements; int32 argmax indices allow at most " +
                       std::to_string(std::numeric_limits<std::int32_t>::max()));
}

}  // namespace

std::int64_t conv2d_workspace_size(const Conv2dShape& s) {
  check_conv_shape("conv2d_workspace_size", s);
  return s.in_channels * s.kernel * s.kernel * s.out_height() * s.out_width();
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    float* y, float* workspace) {
  const char* function = "conv2d_forward";
  check_conv_shape(function, s);
  if (s.batch == 0) return;
  require_pointer(function, "x", x);
  require_pointer(function, "w", w);
  require_pointer(function, "y", y);
  require_pointer(function, "workspace", workspace);
  const std::int64_t ckk = s.in_channels * s.kernel * s.kernel;
  const std::int64_t pixels = s.out_height() * s.out_width();
  const std::int64_t image = s.in_channels * s.height * s.width;
  for (std::int64_t n = 0; n < s.batch; ++n) {
    float* yn = y + n * s.out_channels * pixels;
    im2col(s, x + n * image, workspace);
    if (bias)
      for (std::int64_t oc = 0; oc < s.out_channels; ++oc)
        std::fill(yn + oc * pixels, yn + (oc + 1) * pixels, bias[oc]);
    gemm(false, false, s.out_channels, pixels, ckk, 1.0f, w, ckk, workspace, pixels,
         bias ? 1.0f : 0.0f, yn, pixels);
  }
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy,
                     float* dx, float* dw, float* dbias, float* workspace) {
  const char* function = "conv2d_backward";
  check_conv_shape(function, s);
  if (s.batch == 0) return;
  require_pointer(function, "dy", dy);
  if (dw) require_pointer(function, "x", x);
  if (dx) require_pointer(function, "w", w);
  if (dw || dx) require_pointer(function, "workspace", workspace);
  const std::int64_t ckk = s.in_channels * s.kernel * s.kernel;
  const std::int64_t pixels = s.out_height() * s.out_width();
  const std::int64_t image = s.in_channels * s.height * s.width;
  for (std::int64_t n = 0; n < s.batch; ++n) {
    const float* dyn = dy + n * s.out_channels * pixels;
    if (dbias)
      for (std::int64_t oc = 0; oc < s.out_channels; ++oc) {
        float sum = 0.0f;
        for (std::int64_t p = 0; p < pixels; ++p) sum += dyn[oc * pixels + p];
        dbias[oc] += sum;
      }
    if (dw) {
      im2col(s, x + n * image, workspace);
      gemm(false, true, s.out_channels, ckk, pixels, 1.0f, dyn, pixels, workspace, pixels, 1.0f, dw,
           ckk);
    }
    if (dx) {  // the workspace is free again once dW has consumed the columns
      gemm(true, false, ckk, pixels, s.out_channels, 1.0f, w, ckk, dyn, pixels, 0.0f, workspace,
           pixels);
      float* dxn = dx + n * image;
      std::fill(dxn, dxn + image, 0.0f);
      col2im(s, workspace, dxn);
    }
  }
}

void maxpool2d_forward(const float* x, float* y, std::int32_t* argmax, std::int64_t batch,
                       std::int64_t channels, std::int64_t height, std::int64_t width,
                       std::int64_t window) {
  const char* function = "maxpool2d_forward";
  check_pool_shape(function, batch, channels, height, width, window);
  if (batch == 0) return;
  require_pointer(function, "x", x);
  require_pointer(function, "y", y);
  require_pointer(function, "argmax", argmax);
  const std::int64_t oh_n = height / window, ow_n = width / window;
  std::int64_t out = 0;
  for (std::int64_t plane = 0; plane < batch * channels; ++plane) {
    const std::int64_t base = plane * height * width;
    for (std::int64_t oh = 0; oh < oh_n; ++oh)
      for (std::int64_t ow = 0; ow < ow_n; ++ow, ++out) {
        const std::int64_t corner = base + oh * window * width + ow * window;
        std::int64_t best = corner;
        for (std::int64_t i = 0; i < window; ++i)
          for (std::int64_t j = 0; j < window; ++j) {
            const std::int64_t at = corner + i * width + j;
            if (x[at] > x[best]) best = at;  // strict: the first maximum wins ties
          }
        y[out] = x[best];
        argmax[out] = static_cast<std::int32_t>(best);
      }
  }
}

void maxpool2d_backward(const float* dy, const std::int32_t* argmax, float* dx, std::int64_t batch,
                        std::int64_t channels, std::int64_t height, std::int64_t width,
                        std::int64_t window) {
  const char* function = "maxpool2d_backward";
  check_pool_shape(function, batch, channels, height, width, window);
  if (batch == 0) return;
  require_pointer(function, "dy", dy);
  require_pointer(function, "argmax", argmax);
  require_pointer(function, "dx", dx);
  const std::int64_t total = batch * channels * height * width;
  const std::int64_t outputs = batch * channels * (height / window) * (width / window);
  std::fill(dx, dx + total, 0.0f);
  for (std::int64_t o = 0; o < outputs; ++o) {
    const std::int64_t at = argmax[o];
    if (at < 0 || at >= total)
      throw std::out_of_range(std::string(function) + ": argmax[" + std::to_string(o) +
                              "] = " + std::to_string(at) + " lies outside the input (0 .. " +
                              std::to_string(total - 1) + ")");
    dx[at] += dy[o];
  }
}

}  // namespace troupe::cpu
