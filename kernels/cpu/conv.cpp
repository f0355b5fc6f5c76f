// CPU convolution and max-pooling (see conv.hpp).
//
// A stride-1 convolution is a matrix product over taps t = (c, kh, kw) and output pixels:
// y[o, px] = b[o] + Σ_t w[o, t] · x[t + px], dW[o, t] += Σ_px dy[o, px] · x[t + px] and
// dx[t + px] += Σ_o w[o, t] · dy[o, px], where t + px is the input a tap of a pixel reads. LeNet's
// products per image ([6 × 25] · [25 × 576], [16 × 150] · [150 × 64]) are too small for BLAS:
// with im2col and one sgemm per image, packing, call overhead and the column matrix's round trip
// through memory dominated. Here they are register-blocked loops (conv_blocks.inc): a block of
// output rows times a few vectors of pixels, or for dW of rows times taps, accumulates in
// registers over the whole reduction, and the input is read in place: neighbouring pixels of an
// output row read neighbouring inputs, so a vector of them is one load. The column matrix is
// never built, the loops run over the whole batch at once, and dW is summed over the batch in
// registers and written once. A padded convolution copies one image at a time into the workspace
// with its zero border and runs the same loops on it (dx likewise, cropped afterwards).
#include "kernels/cpu/conv.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

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

// All bits set where `condition` holds: the selects below are done on the bits, because GCC
// compiles `condition ? b : a` on floats here into a compare and a branch, which is mispredicted
// on about half of the windows (measured: 5× slower than these masks on ReLU outputs).
std::uint32_t mask_of(bool condition) {
  return 0u - static_cast<std::uint32_t>(condition);
}

float pick(std::uint32_t mask, float if_clear, float if_set) {
  return std::bit_cast<float>((std::bit_cast<std::uint32_t>(if_clear) & ~mask) |
                              (std::bit_cast<std::uint32_t>(if_set) & mask));
}

// maxpool2d_forward for the CNN's 2×2 window, branch-free: which element of a window is largest
// is as good as random. Each pair is compared first, then the two winners; comparisons are
// strict, so the first maximum in row-major order wins ties. The argmax offset within the window
// (0, 1, width or width + 1) is built from the same masks; indices fit in int32 (checked by the
// caller), so it is computed in 32-bit arithmetic. `rows` counts output rows over all planes.
void maxpool2x2_forward(const float* x, float* y, std::int32_t* argmax, std::int64_t rows,
                        std::int64_t height, std::int64_t width) {
  const std::int64_t oh_n = height / 2, ow_n = width / 2;
  const auto width32 = static_cast<std::uint32_t>(width);
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t plane = row / oh_n;
    const std::int64_t top = (plane * height + (row - plane * oh_n) * 2) * width;
    const float* upper_row = x + top;
    const float* lower_row = upper_row + width;
    float* best = y + row * ow_n;
    std::int32_t* best_at = argmax + row * ow_n;
    const auto top32 = static_cast<std::uint32_t>(top);
    for (std::int64_t ow = 0; ow < ow_n; ++ow) {
      const float a = upper_row[2 * ow], b = upper_row[2 * ow + 1];
      const float c = lower_row[2 * ow], d = lower_row[2 * ow + 1];
      const std::uint32_t upper_right = mask_of(b > a), lower_right = mask_of(d > c);
      const float upper = pick(upper_right, a, b), lower = pick(lower_right, c, d);
      const std::uint32_t below = mask_of(lower > upper);
      best[ow] = pick(below, upper, lower);
      // A set mask is 2^32 − 1, so `0 − mask` is 1 and `width − mask` is width + 1.
      const std::uint32_t offset =
          (below & (width32 - lower_right)) | (~below & (0u - upper_right));
      best_at[ow] = static_cast<std::int32_t>(top32 + 2u * static_cast<std::uint32_t>(ow) + offset);
    }
  }
}

// ---- Geometry of the products ---------------------------------------------------------------

// A three-level index (i0, i1, i2), i2 innermost, and its offset Σ i_k · stride[k].
struct Nest {
  std::int64_t extent[3], stride[3];
  std::int64_t size() const { return extent[0] * extent[1] * extent[2]; }
  std::int64_t offset(std::int64_t i) const {
    return i / (extent[1] * extent[2]) * stride[0] + i / extent[2] % extent[1] * stride[1] +
           i % extent[2] * stride[2];
  }
};

// A Nest's offsets in order, without the divisions of Nest::offset.
class NestWalk {
 public:
  explicit NestWalk(const Nest& nest) : nest_(nest) {}
  std::int64_t offset() const { return offset_; }
  void next() {
    offset_ += nest_.stride[2];
    if (++i_[2] < nest_.extent[2]) return;
    offset_ += nest_.stride[1] - i_[2] * nest_.stride[2];
    i_[2] = 0;
    if (++i_[1] < nest_.extent[1]) return;
    offset_ += nest_.stride[0] - i_[1] * nest_.stride[1];
    i_[1] = 0;
    ++i_[0];
  }

 private:
  const Nest& nest_;
  std::int64_t i_[3] = {0, 0, 0}, offset_ = 0;
};

// The pixels a product runs over, extent (image, row, column), with a pixel's stride in the
// source operand and in the output plane. Innermost strides are 1: consecutive columns, one
// vector.
struct Pixels {
  std::int64_t extent[3], source_stride[3], plane_stride[3];
};

// out[out_rows.offset(r) + px's plane offset] (+)= init[r] + Σ_d a[r·a_row + d·a_depth] ·
// source[depth.offset(d) + px's source offset] for every row r and pixel px.
struct Product {
  const float* a;
  std::int64_t a_row, a_depth;
  const float* source;
  Nest depth;
  Pixels pixels;
  const float* init;  // per row; null: 0
  float* out;
  Nest out_rows;
  bool accumulate;  // out += the product (init unused) rather than out = init + product
};

// dw[r·dw_row + t] += Σ_px dy[r·dy_row + px's plane offset] · source[taps.offset(t) + px's
// source offset] for r < rows, t < taps.size() and every pixel px.
struct Gradient {
  const float* dy;
  std::int64_t dy_row;
  const float* source;
  Nest taps;
  Pixels pixels;
  float* dw;
  std::int64_t dw_row, rows;
};

// The loops, twice: the project compiles for baseline x86-64 (SSE2: 4 floats a register, no fused
// multiply-add), while x86-64-v3 (AVX2 and FMA, Haswell and later) does twice the lanes and fuses
// the multiply-adds: measured about three times faster on LeNet's shapes. One binary serves both
// CPUs, as OpenBLAS's DYNAMIC_ARCH does.
namespace baseline {
constexpr int kVectorBytes = 16;
#include "kernels/cpu/conv_blocks.inc"
}  // namespace baseline

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
namespace avx2 {
constexpr int kVectorBytes = 32;
#include "kernels/cpu/conv_blocks.inc"
}  // namespace avx2
#pragma GCC pop_options

bool use_avx2() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3") != 0;
  }();
  return supported;
}
#else  // other compilers and CPUs: the baseline build only
namespace avx2 = baseline;
constexpr bool use_avx2() {
  return false;
}
#endif

void product(const Product& p) {
  use_avx2() ? avx2::product(p) : baseline::product(p);
}

void gradient(const Gradient& g) {
  use_avx2() ? avx2::gradient(g) : baseline::gradient(g);
}

float sum(const float* p, std::int64_t n) {
  return use_avx2() ? avx2::sum(p, n) : baseline::sum(p, n);
}

// ---- The convolution without padding, over the whole batch ------------------------------------

// Tap (c, kh, kw) reads c·H·W + kh·W + kw past the input of its pixel's top left corner.
Nest taps(const Conv2dShape& s) {
  return {{s.in_channels, s.kernel, s.kernel}, {s.height * s.width, s.width, 1}};
}

// Row r of an image's [rows, pixels] plane stack (y, dy).
Nest planes(std::int64_t rows, std::int64_t pixels) {
  return {{1, 1, rows}, {0, 0, pixels}};
}

// Every output pixel: its top left input in x (source) and its place in y or dy (plane).
Pixels pixels(const Conv2dShape& s) {
  const std::int64_t oh = s.out_height(), ow = s.out_width();
  return {{s.batch, oh, ow},
          {s.in_channels * s.height * s.width, s.width, 1},
          {s.out_channels * oh * ow, ow, 1}};
}

// The same pixels with the roles swapped: read from dy, written into x's layout.
Pixels pixels_into_input(const Conv2dShape& s) {
  const Pixels p = pixels(s);
  return {{p.extent[0], p.extent[1], p.extent[2]},
          {p.plane_stride[0], p.plane_stride[1], p.plane_stride[2]},
          {p.source_stride[0], p.source_stride[1], p.source_stride[2]}};
}

std::int64_t taps_per_output(const Conv2dShape& s) {
  return s.in_channels * s.kernel * s.kernel;
}

void forward_valid(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                   float* y) {
  const std::int64_t ckk = taps_per_output(s);
  product({w, ckk, 1, x, taps(s), pixels(s), bias, y,
           planes(s.out_channels, s.out_height() * s.out_width()), false});
}

void weight_gradient_valid(const Conv2dShape& s, const float* x, const float* dy, float* dw) {
  gradient({dy, s.out_height() * s.out_width(), x, taps(s), pixels(s), dw, taps_per_output(s),
            s.out_channels});
}

// dx += Σ_o wᵀ · dy: each tap's sums are added where the tap read its input.
void input_gradient_valid(const Conv2dShape& s, const float* w, const float* dy, float* dx) {
  product({w, 1, taps_per_output(s), dy, planes(s.out_channels, s.out_height() * s.out_width()),
           pixels_into_input(s), nullptr, dx, taps(s), true});
}

// ---- Padding: one image at a time, through the workspace -------------------------------------

// The shape of one image with its zero border made part of it.
Conv2dShape padded_image(const Conv2dShape& s) {
  return {
      1, s.in_channels, s.height + 2 * s.padding, s.width + 2 * s.padding, s.out_channels, s.kernel,
      0};
}

// Copies image x into `padded` (the padded_image layout) with a zero border.
void pad(const Conv2dShape& s, const float* x, float* padded) {
  const std::int64_t hp = s.height + 2 * s.padding, wp = s.width + 2 * s.padding;
  std::fill(padded, padded + s.in_channels * hp * wp, 0.0f);
  for (std::int64_t c = 0; c < s.in_channels; ++c)
    for (std::int64_t h = 0; h < s.height; ++h) {
      const float* row = x + (c * s.height + h) * s.width;
      std::copy(row, row + s.width, padded + (c * hp + h + s.padding) * wp + s.padding);
    }
}

// The inverse: the inside of `padded` into image x; the border is dropped.
void crop(const Conv2dShape& s, const float* padded, float* x) {
  const std::int64_t hp = s.height + 2 * s.padding, wp = s.width + 2 * s.padding;
  for (std::int64_t c = 0; c < s.in_channels; ++c)
    for (std::int64_t h = 0; h < s.height; ++h) {
      const float* row = padded + (c * hp + h + s.padding) * wp + s.padding;
      std::copy(row, row + s.width, x + (c * s.height + h) * s.width);
    }
}

}  // namespace

// A padded image, C·(H + 2p)·(W + 2p) floats, is all the workspace holds. The size stays that of
// one image's column matrix, which bounds it: with L = H + 2p ≥ K, K·(L − K + 1) − L =
// (K − 1)(L − K) ≥ 0, so K·OH ≥ H + 2p, and likewise K·OW ≥ W + 2p.
std::int64_t conv2d_workspace_size(const Conv2dShape& s) {
  check_conv_shape("conv2d_workspace_size", s);
  return taps_per_output(s) * s.out_height() * s.out_width();
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
  if (s.padding == 0) return forward_valid(s, x, w, bias, y);
  const Conv2dShape image = padded_image(s);
  for (std::int64_t n = 0; n < s.batch; ++n) {
    pad(s, x + n * s.in_channels * s.height * s.width, workspace);
    forward_valid(image, workspace, w, bias,
                  y + n * s.out_channels * s.out_height() * s.out_width());
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
  const std::int64_t pixels = s.out_height() * s.out_width();
  const std::int64_t in_image = s.in_channels * s.height * s.width;
  const std::int64_t out_image = s.out_channels * pixels;
  if (dbias)
    for (std::int64_t n = 0; n < s.batch; ++n)
      for (std::int64_t oc = 0; oc < s.out_channels; ++oc)
        dbias[oc] += sum(dy + n * out_image + oc * pixels, pixels);
  if (s.padding == 0) {
    if (dw) weight_gradient_valid(s, x, dy, dw);
    if (dx) {
      std::fill(dx, dx + s.batch * in_image, 0.0f);
      input_gradient_valid(s, w, dy, dx);
    }
    return;
  }
  const Conv2dShape image = padded_image(s);
  const std::int64_t padded = image.in_channels * image.height * image.width;
  for (std::int64_t n = 0; n < s.batch; ++n) {
    const float* dyn = dy + n * out_image;
    if (dw) {
      pad(s, x + n * in_image, workspace);
      weight_gradient_valid(image, workspace, dyn, dw);
    }
    if (dx) {  // the workspace is free again once dW has read the padded image
      std::fill(workspace, workspace + padded, 0.0f);
      input_gradient_valid(image, w, dyn, workspace);
      crop(s, workspace, dx + n * in_image);
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
  if (window == 2) return maxpool2x2_forward(x, y, argmax, batch * channels * oh_n, height, width);
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
