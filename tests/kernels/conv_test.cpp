// conv2d (im2col + GEMM) and maxpool2d CPU kernels against direct loops in double precision;
// conv backward against central finite differences of the direct convolution.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/conv.hpp"

using namespace troupe::cpu;

namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// Integer values in [lo, hi]. Every test below keeps products and partial sums as integers far
// below 2^24, so fp32 arithmetic in any summation order is exact and results can be compared
// with == against the double reference (tolerance 0).
std::vector<float> small_ints(std::size_t n, unsigned seed, int lo = -3, int hi = 3) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& e : v) e = static_cast<float>(dist(rng));
  return v;
}

std::vector<double> to_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// Direct convolution: y[n,o,i,j] = b[o] + Σ_{c,p,q} w[o,c,p,q] · x[n,c,i+p−pad,j+q−pad], with x
// read as zero outside the image. An empty bias means no bias.
std::vector<double> direct_conv(const Conv2dShape& s, const std::vector<double>& x,
                                const std::vector<double>& w, const std::vector<double>& b) {
  const std::int64_t oh_n = s.out_height(), ow_n = s.out_width(), k = s.kernel;
  std::vector<double> y(static_cast<std::size_t>(s.batch * s.out_channels * oh_n * ow_n));
  std::size_t at = 0;
  for (std::int64_t n = 0; n < s.batch; ++n)
    for (std::int64_t o = 0; o < s.out_channels; ++o)
      for (std::int64_t i = 0; i < oh_n; ++i)
        for (std::int64_t j = 0; j < ow_n; ++j, ++at) {
          double sum = b.empty() ? 0.0 : b[o];
          for (std::int64_t c = 0; c < s.in_channels; ++c)
            for (std::int64_t p = 0; p < k; ++p)
              for (std::int64_t q = 0; q < k; ++q) {
                const std::int64_t r = i + p - s.padding, col = j + q - s.padding;
                if (r < 0 || r >= s.height || col < 0 || col >= s.width) continue;
                sum += w[((o * s.in_channels + c) * k + p) * k + q] *
                       x[((n * s.in_channels + c) * s.height + r) * s.width + col];
              }
          y[at] = sum;
        }
  return y;
}

// Shapes with odd sizes, non-square images, both paddings the CNN uses, a 1×1 kernel, a kernel
// wider than the image that only fits thanks to the padding, and a one-column image where some
// kernel columns see nothing but padding.
std::vector<Conv2dShape> test_shapes() {
  return {
      {2, 3, 7, 6, 4, 3, 0}, {2, 2, 5, 7, 3, 5, 2}, {2, 1, 3, 3, 2, 5, 2},
      {1, 3, 4, 5, 5, 1, 0}, {2, 2, 4, 1, 3, 5, 2},
  };
}

struct ConvTensors {
  std::vector<float> x, w, b;
};

ConvTensors make_tensors(const Conv2dShape& s, unsigned seed) {
  return {small_ints(static_cast<std::size_t>(s.batch * s.in_channels * s.height * s.width), seed),
          small_ints(static_cast<std::size_t>(s.out_channels * s.in_channels * s.kernel * s.kernel),
                     seed + 1),
          small_ints(static_cast<std::size_t>(s.out_channels), seed + 2)};
}

std::int64_t output_size(const Conv2dShape& s) {
  return s.batch * s.out_channels * s.out_height() * s.out_width();
}

}  // namespace

TEST_CASE("conv2d_forward matches the direct convolution exactly on integer data") {
  unsigned seed = 10;
  for (const Conv2dShape& s : test_shapes()) {
    for (bool with_bias : {true, false}) {
      CAPTURE(s.in_channels, s.height, s.width, s.out_channels, s.kernel, s.padding, with_bias);
      const ConvTensors t = make_tensors(s, seed += 3);
      std::vector<float> y(static_cast<std::size_t>(output_size(s)), kNan);
      // NaN in the workspace would leak into y if im2col skipped writing any padding entry.
      std::vector<float> workspace(static_cast<std::size_t>(conv2d_workspace_size(s)), kNan);
      conv2d_forward(s, t.x.data(), t.w.data(), with_bias ? t.b.data() : nullptr, y.data(),
                     workspace.data());
      const std::vector<double> ref = direct_conv(
          s, to_double(t.x), to_double(t.w), with_bias ? to_double(t.b) : std::vector<double>{});
      REQUIRE(y.size() == ref.size());
      bool nonzero = false;
      for (std::size_t i = 0; i < ref.size(); ++i) {
        CHECK(static_cast<double>(y[i]) == ref[i]);  // exact: see small_ints
        nonzero = nonzero || ref[i] != 0.0;
      }
      CHECK(nonzero);
    }
  }
}

TEST_CASE("conv2d_workspace_size is one image's column matrix") {
  // LeNet's two layers: 1·5·5 × 28·28 with padding 2, then 6·5·5 × 10·10.
  CHECK(conv2d_workspace_size({64, 1, 28, 28, 6, 5, 2}) == 25 * 784);
  CHECK(conv2d_workspace_size({64, 6, 14, 14, 16, 5, 0}) == 150 * 100);
}

TEST_CASE("conv2d_backward matches central finite differences of the direct convolution") {
  unsigned seed = 100;
  for (const Conv2dShape& s : test_shapes()) {
    CAPTURE(s.in_channels, s.height, s.width, s.out_channels, s.kernel, s.padding);
    const ConvTensors t = make_tensors(s, seed += 4);
    const std::vector<float> dy = small_ints(static_cast<std::size_t>(output_size(s)), seed + 3);
    std::vector<double> x = to_double(t.x), w = to_double(t.w), b = to_double(t.b);

    // L = Σ dy ⊙ conv(x, w, b) is linear in each argument, so the central difference has no
    // truncation error; with step 0.5 every value involved is a small dyadic rational, exact in
    // double, and the fp32 kernel is exact on integer data (see small_ints): tolerance 0.
    const double step = 0.5;
    auto loss = [&] {
      const std::vector<double> y = direct_conv(s, x, w, b);
      double sum = 0.0;
      for (std::size_t i = 0; i < y.size(); ++i) sum += dy[i] * y[i];
      return sum;
    };
    auto finite_differences = [&](std::vector<double>& param) {
      std::vector<double> grad(param.size());
      for (std::size_t i = 0; i < param.size(); ++i) {
        const double saved = param[i];
        param[i] = saved + step;
        const double up = loss();
        param[i] = saved - step;
        const double down = loss();
        param[i] = saved;
        grad[i] = (up - down) / (2 * step);
      }
      return grad;
    };
    const std::vector<double> ref_dx = finite_differences(x);
    const std::vector<double> ref_dw = finite_differences(w);
    const std::vector<double> ref_db = finite_differences(b);

    std::vector<float> workspace(static_cast<std::size_t>(conv2d_workspace_size(s)), kNan);
    {  // dx overwritten, dw and dbias accumulated
      std::vector<float> dx(t.x.size(), kNan), dw(t.w.size(), 1.0f), db(t.b.size(), 2.0f);
      conv2d_backward(s, t.x.data(), t.w.data(), dy.data(), dx.data(), dw.data(), db.data(),
                      workspace.data());
      for (std::size_t i = 0; i < dx.size(); ++i) CHECK(static_cast<double>(dx[i]) == ref_dx[i]);
      for (std::size_t i = 0; i < dw.size(); ++i)
        CHECK(static_cast<double>(dw[i]) == 1.0 + ref_dw[i]);
      for (std::size_t i = 0; i < db.size(); ++i)
        CHECK(static_cast<double>(db[i]) == 2.0 + ref_db[i]);
    }
    {  // null gradients are skipped, and what they alone need (x, w, workspace) may be null
      std::vector<float> dx(t.x.size(), kNan), db(t.b.size(), 0.0f);
      conv2d_backward(s, nullptr, t.w.data(), dy.data(), dx.data(), nullptr, nullptr,
                      workspace.data());
      for (std::size_t i = 0; i < dx.size(); ++i) CHECK(static_cast<double>(dx[i]) == ref_dx[i]);
      conv2d_backward(s, nullptr, nullptr, dy.data(), nullptr, nullptr, db.data(), nullptr);
      for (std::size_t i = 0; i < db.size(); ++i) CHECK(static_cast<double>(db[i]) == ref_db[i]);
    }
  }
}

TEST_CASE("conv2d rejects bad shapes and missing buffers") {
  std::vector<float> buf(1024, 0.0f);
  float* p = buf.data();
  // kernel 5 on a 3×3 image without padding has no valid output position
  CHECK_THROWS_AS(conv2d_workspace_size({1, 1, 3, 3, 1, 5, 0}), std::invalid_argument);
  CHECK_THROWS_AS(conv2d_forward({1, 1, 3, 3, 1, 5, 0}, p, p, p, p, p), std::invalid_argument);
  CHECK_THROWS_AS(conv2d_forward({1, 1, 8, 8, 1, 3, -1}, p, p, p, p, p), std::invalid_argument);
  CHECK_THROWS_AS(conv2d_forward({1, 0, 8, 8, 1, 3, 0}, p, p, p, p, p), std::invalid_argument);
  CHECK_THROWS_AS(conv2d_forward({-1, 1, 8, 8, 1, 3, 0}, p, p, p, p, p), std::invalid_argument);
  CHECK_THROWS_AS(conv2d_forward({1, 1, 8, 8, 1, 3, 0}, p, p, p, p, nullptr),
                  std::invalid_argument);
  CHECK_THROWS_AS(conv2d_backward({1, 1, 8, 8, 1, 3, 0}, nullptr, p, p, p, p, p, p),
                  std::invalid_argument);  // dw needs x
  CHECK_THROWS_WITH(conv2d_forward({1, 1, 3, 3, 1, 5, 0}, p, p, p, p, p),
                    Catch::Contains("conv2d_forward") && Catch::Contains("kernel = 5"));
  // An empty batch is valid and touches nothing.
  CHECK_NOTHROW(conv2d_forward({0, 1, 8, 8, 1, 3, 0}, nullptr, nullptr, nullptr, nullptr, nullptr));
}

namespace {

// Reference max-pool: the window maximum first, then the first position (row-major) holding it.
struct PoolRef {
  std::vector<float> y;
  std::vector<std::int64_t> argmax;
};

PoolRef direct_maxpool(const std::vector<float>& x, std::int64_t planes, std::int64_t h,
                       std::int64_t w, std::int64_t k) {
  PoolRef r;
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t i = 0; i + k <= h; i += k)
      for (std::int64_t j = 0; j + k <= w; j += k) {
        float best = -std::numeric_limits<float>::infinity();
        for (std::int64_t a = 0; a < k; ++a)
          for (std::int64_t b = 0; b < k; ++b)
            best = std::max(best, x[(p * h + i + a) * w + j + b]);
        std::int64_t first = -1;
        for (std::int64_t a = 0; a < k && first < 0; ++a)
          for (std::int64_t b = 0; b < k && first < 0; ++b)
            if (x[(p * h + i + a) * w + j + b] == best) first = (p * h + i + a) * w + j + b;
        r.y.push_back(best);
        r.argmax.push_back(first);
      }
  return r;
}

}  // namespace

TEST_CASE("maxpool2d on a hand-worked 3×5 image: ties, trailing row and column") {
  // Window 2 covers rows 0–1 and columns 0–3; row 2 and column 4 (the 9s, the 8s) are ignored.
  const std::vector<float> x = {1, 5, 2, 2, 9,  //
                                3, 5, 0, 2, 9,  //
                                8, 8, 8, 8, 8};
  std::vector<float> y(2, kNan);
  std::vector<std::int32_t> argmax(2, -7);
  maxpool2d_forward(x.data(), y.data(), argmax.data(), 1, 1, 3, 5, 2);
  CHECK(y == std::vector<float>{5, 2});
  CHECK(argmax == std::vector<std::int32_t>{1, 2});  // first 5 (not index 6), first 2 (not 3, 8)
  const std::vector<float> dy = {10, 20};
  std::vector<float> dx(x.size(), kNan);
  maxpool2d_backward(dy.data(), argmax.data(), dx.data(), 1, 1, 3, 5, 2);
  CHECK(dx == std::vector<float>{0, 10, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("maxpool2d matches the direct reference with many ties and odd sizes") {
  struct Case {
    std::int64_t n, c, h, w, k;
  };
  unsigned seed = 500;
  for (const Case& cs : {Case{2, 3, 7, 5, 2}, Case{1, 2, 9, 11, 3}, Case{2, 1, 4, 6, 1}}) {
    CAPTURE(cs.n, cs.c, cs.h, cs.w, cs.k);
    const std::int64_t planes = cs.n * cs.c;
    // Values in {0, 1, 2} make ties in almost every window.
    const std::vector<float> x =
        small_ints(static_cast<std::size_t>(planes * cs.h * cs.w), ++seed, 0, 2);
    const PoolRef ref = direct_maxpool(x, planes, cs.h, cs.w, cs.k);
    std::vector<float> y(ref.y.size(), kNan);
    std::vector<std::int32_t> argmax(ref.y.size(), -7);
    maxpool2d_forward(x.data(), y.data(), argmax.data(), cs.n, cs.c, cs.h, cs.w, cs.k);
    for (std::size_t i = 0; i < y.size(); ++i) {
      CHECK(y[i] == ref.y[i]);  // max selects an input value, so the match is exact
      CHECK(argmax[i] == ref.argmax[i]);
    }
    // Backward: dx is dy at each window's first maximum and zero elsewhere, trailing rows and
    // columns included.
    const std::vector<float> dy = small_ints(y.size(), ++seed, 1, 9);
    std::vector<float> ref_dx(x.size(), 0.0f);
    for (std::size_t i = 0; i < dy.size(); ++i)
      ref_dx[static_cast<std::size_t>(ref.argmax[i])] = dy[i];
    std::vector<float> dx(x.size(), kNan);
    maxpool2d_backward(dy.data(), argmax.data(), dx.data(), cs.n, cs.c, cs.h, cs.w, cs.k);
    CHECK(dx == ref_dx);
  }
}

TEST_CASE("maxpool2d rejects bad windows and corrupt argmax") {
  std::vector<float> x(12, 0.0f), y(12, 0.0f);
  std::vector<std::int32_t> argmax(12, 0);
  CHECK_THROWS_AS(maxpool2d_forward(x.data(), y.data(), argmax.data(), 1, 1, 3, 4, 0),
                  std::invalid_argument);
  CHECK_THROWS_AS(maxpool2d_forward(x.data(), y.data(), argmax.data(), 1, 1, 3, 4, 4),
                  std::invalid_argument);  // window taller than the image
  CHECK_THROWS_AS(maxpool2d_forward(x.data(), y.data(), nullptr, 1, 1, 3, 4, 2),
                  std::invalid_argument);
  CHECK_THROWS_AS(maxpool2d_forward(x.data(), y.data(), argmax.data(), 70000, 1, 200, 200, 2),
                  std::invalid_argument);  // 2.8e9 elements overflow int32 argmax
  argmax[1] = 12;                          // one past the 1×1×3×4 input
  CHECK_THROWS_AS(maxpool2d_backward(y.data(), argmax.data(), x.data(), 1, 1, 3, 4, 2),
                  std::out_of_range);
}
