// CPU benchmark of the convolution and max-pool kernels (kernels/cpu/conv.hpp) at the shapes of
// models/lenet_moe.cpp on 28×28 images: conv1 5×5 1→6 (28×28 → 24×24), pool 2, conv2 5×5 6→16
// (12×12 → 8×8), pool 2. The backward passes compute what the model asks for: conv1 only dW and
// dbias (its input is the image), conv2 also dx.
//
// Before timing it checks every kernel at these shapes, and the convolution also at an odd padded
// shape, against naive loops in double precision, and exits 1 on a mismatch (llm.c's dev/cuda
// convention). Run it single-threaded like the actor runtime does:
//
//   OPENBLAS_NUM_THREADS=1 troupe_bench_conv [--batch 32] [--iters 200] [--warmup 20]
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "kernels/cpu/conv.hpp"

namespace {

using troupe::cpu::Conv2dShape;

// A check failed: the program exits 1 (other errors, such as bad options, exit 2).
struct ValidationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::int64_t batch = 32;
  int iters = 200, warmup = 20;
};

std::vector<float> random_floats(std::int64_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& e : v) e = normal(rng);
  return v;
}

std::int64_t input_size(const Conv2dShape& s) {
  return s.batch * s.in_channels * s.height * s.width;
}
std::int64_t weight_size(const Conv2dShape& s) {
  return s.out_channels * s.in_channels * s.kernel * s.kernel;
}
std::int64_t output_size(const Conv2dShape& s) {
  return s.batch * s.out_channels * s.out_height() * s.out_width();
}

// A reference value with Σ|terms| of the sum that produced it and the number of terms, which
// bound the float32 rounding error of any summation order.
struct Reference {
  std::vector<double> value, magnitude;
  std::int64_t terms = 0;

  explicit Reference(std::int64_t n, std::int64_t terms_)
      : value(static_cast<std::size_t>(n)), magnitude(static_cast<std::size_t>(n)), terms(terms_) {}
  void add(std::int64_t i, double term) {
    value[static_cast<std::size_t>(i)] += term;
    magnitude[static_cast<std::size_t>(i)] += std::abs(term);
  }
};

// Calls f(y index, x index, w index) for every term y[n,o,i,j] += w[o,c,p,q] · x[n,c,i+p−pad,
// j+q−pad] of the direct convolution whose input lies inside the image.
void for_each_term(const Conv2dShape& s,
                   const std::function<void(std::int64_t, std::int64_t, std::int64_t)>& f) {
  const std::int64_t oh_n = s.out_height(), ow_n = s.out_width(), k = s.kernel;
  std::int64_t at = 0;
  for (std::int64_t n = 0; n < s.batch; ++n)
    for (std::int64_t o = 0; o < s.out_channels; ++o)
      for (std::int64_t i = 0; i < oh_n; ++i)
        for (std::int64_t j = 0; j < ow_n; ++j, ++at)
          for (std::int64_t c = 0; c < s.in_channels; ++c)
            for (std::int64_t p = 0; p < k; ++p)
              for (std::int64_t q = 0; q < k; ++q) {
                const std::int64_t r = i + p - s.padding, col = j + q - s.padding;
                if (r < 0 || r >= s.height || col < 0 || col >= s.width) continue;
                f(at, ((n * s.in_channels + c) * s.height + r) * s.width + col,
                  ((o * s.in_channels + c) * k + p) * k + q);
              }
}

// |got − ref| ≤ γ_n · Σ|terms| with γ_n = n·u / (1 − n·u), u = 2⁻²⁴: the float32 error bound of a
// sum of n products in any order (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
// One more term than the reference counted covers the bias or the value accumulated onto.
void check(const std::string& what, const std::vector<float>& got, const Reference& ref) {
  const double nu = static_cast<double>(ref.terms + 1) * std::ldexp(1.0, -24);
  const double gamma = nu / (1.0 - nu);
  bool nonzero = false;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(static_cast<double>(got[i]) - ref.value[i]);
    if (!(error <= gamma * ref.magnitude[i]))  // also catches NaN
      throw ValidationError(what + "[" + std::to_string(i) + "] = " + std::to_string(got[i]) +
                            ", reference " + std::to_string(ref.value[i]) + " (error bound " +
                            std::to_string(gamma * ref.magnitude[i]) + ")");
    nonzero = nonzero || got[i] != 0.0f;
  }
  if (!nonzero) throw ValidationError(what + " is all zeros");
}

// Forward (with bias) and backward (dx, and dW, dbias accumulated onto 0.5) against the direct
// convolution and its adjoint in double precision.
void validate_conv(const Conv2dShape& s, const std::string& name) {
  const std::vector<float> x = random_floats(input_size(s), 1),
                           w = random_floats(weight_size(s), 2),
                           b = random_floats(s.out_channels, 3),
                           dy = random_floats(output_size(s), 4);
  const std::int64_t ckk = s.in_channels * s.kernel * s.kernel;
  const std::int64_t pixels = s.out_height() * s.out_width();
  Reference y(output_size(s), ckk), dx(input_size(s), s.out_channels * s.kernel * s.kernel),
      dw(weight_size(s), s.batch * pixels), db(s.out_channels, s.batch * pixels);
  for (std::int64_t i = 0; i < output_size(s); ++i) y.add(i, b[(i / pixels) % s.out_channels]);
  for (std::int64_t o = 0; o < s.out_channels; ++o) db.add(o, 0.5);
  for (std::int64_t i = 0; i < weight_size(s); ++i) dw.add(i, 0.5);
  for (std::int64_t i = 0; i < output_size(s); ++i) db.add((i / pixels) % s.out_channels, dy[i]);
  for_each_term(s, [&](std::int64_t yi, std::int64_t xi, std::int64_t wi) {
    y.add(yi, double(w[wi]) * x[xi]);
    dx.add(xi, double(w[wi]) * dy[yi]);
    dw.add(wi, double(x[xi]) * dy[yi]);
  });

  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> workspace(static_cast<std::size_t>(troupe::cpu::conv2d_workspace_size(s)),
                               kNan);
  std::vector<float> got_y(y.value.size(), kNan), got_dx(dx.value.size(), kNan),
      got_dw(dw.value.size(), 0.5f), got_db(db.value.size(), 0.5f);
  troupe::cpu::conv2d_forward(s, x.data(), w.data(), b.data(), got_y.data(), workspace.data());
  troupe::cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), got_dx.data(), got_dw.data(),
                               got_db.data(), workspace.data());
  check(name + " y", got_y, y);
  check(name + " dx", got_dx, dx);
  check(name + " dw", got_dw, dw);
  check(name + " dbias", got_db, db);
}

struct PoolShape {
  std::int64_t batch, channels, height, width, window;
  std::int64_t input_size() const { return batch * channels * height * width; }
  std::int64_t output_size() const {
    return batch * channels * (height / window) * (width / window);
  }
};

// Max-pool against the window maximum with the first position holding it; exact (max selects an
// input value and the backward copies dy).
void validate_pool(const PoolShape& p, const std::string& name) {
  const std::vector<float> x = random_floats(p.input_size(), 5),
                           dy = random_floats(p.output_size(), 6);
  std::vector<float> y(static_cast<std::size_t>(p.output_size()));
  std::vector<std::int32_t> argmax(y.size());
  std::vector<float> dx(x.size());
  troupe::cpu::maxpool2d_forward(x.data(), y.data(), argmax.data(), p.batch, p.channels, p.height,
                                 p.width, p.window);
  troupe::cpu::maxpool2d_backward(dy.data(), argmax.data(), dx.data(), p.batch, p.channels,
                                  p.height, p.width, p.window);
  std::vector<float> ref_dx(x.size(), 0.0f);
  std::size_t out = 0;
  for (std::int64_t plane = 0; plane < p.batch * p.channels; ++plane)
    for (std::int64_t i = 0; i + p.window <= p.height; i += p.window)
      for (std::int64_t j = 0; j + p.window <= p.width; j += p.window, ++out) {
        std::int64_t best = -1;
        for (std::int64_t a = 0; a < p.window; ++a)
          for (std::int64_t c = 0; c < p.window; ++c) {
            const std::int64_t at = (plane * p.height + i + a) * p.width + j + c;
            if (best < 0 || x[at] > x[best]) best = at;
          }
        if (y[out] != x[best] || argmax[out] != best)
          throw ValidationError(name + " output " + std::to_string(out) + ": got " +
                                std::to_string(y[out]) + " at " + std::to_string(argmax[out]) +
                                ", reference " + std::to_string(x[best]) + " at " +
                                std::to_string(best));
        ref_dx[best] = dy[out];
      }
  if (dx != ref_dx) throw ValidationError(name + " dx differs from the reference");
}

// One convolution layer's buffers, allocated once as the model's Conv2d would per call.
struct ConvBuffers {
  std::vector<float> x, w, b, y, dy, dx, dw, db, workspace;
  explicit ConvBuffers(const Conv2dShape& s)
      : x(random_floats(input_size(s), 11)),
        w(random_floats(weight_size(s), 12)),
        b(random_floats(s.out_channels, 13)),
        y(static_cast<std::size_t>(output_size(s))),
        dy(random_floats(output_size(s), 14)),
        dx(x.size()),
        dw(w.size()),
        db(b.size()),
        workspace(static_cast<std::size_t>(troupe::cpu::conv2d_workspace_size(s))) {}
};

struct PoolBuffers {
  std::vector<float> x, y, dy, dx;
  std::vector<std::int32_t> argmax;
  explicit PoolBuffers(const PoolShape& p)
      : x(random_floats(p.input_size(), 21)),
        y(static_cast<std::size_t>(p.output_size())),
        dy(random_floats(p.output_size(), 22)),
        dx(x.size()),
        argmax(y.size()) {}
};

int run(const Options& opt) {
  troupe::bench::require_at_least("--batch", opt.batch, 1);
  troupe::bench::require_at_least("--iters", opt.iters, 1);
  troupe::bench::require_at_least("--warmup", opt.warmup, 0);
  const Conv2dShape conv1{opt.batch, 1, 28, 28, 6, 5}, conv2{opt.batch, 6, 12, 12, 16, 5};
  const PoolShape pool1{opt.batch, 6, 24, 24, 2}, pool2{opt.batch, 16, 8, 8, 2};

  const char* env_threads = std::getenv("OPENBLAS_NUM_THREADS");
  double load[3] = {-1, -1, -1};
  if (getloadavg(load, 3) != 3) load[0] = load[1] = load[2] = -1;
  std::printf("# OpenBLAS: %s, OPENBLAS_NUM_THREADS=%s, threads in use: %d\n",
              openblas_get_config(), env_threads ? env_threads : "(unset)",
              openblas_get_num_threads());
  std::printf("# load average at start: %.2f %.2f %.2f\n", load[0], load[1], load[2]);

  validate_conv(conv1, "conv1");
  validate_conv(conv2, "conv2");
  // Padding, a non-square image and sizes that fill no vector evenly.
  validate_conv({3, 3, 11, 7, 5, 3, 1}, "conv 3→5 k3 pad1 11×7");
  validate_conv({2, 2, 5, 9, 7, 5, 2}, "conv 2→7 k5 pad2 5×9");
  validate_pool(pool1, "pool1");
  validate_pool(pool2, "pool2");
  validate_pool({2, 3, 7, 9, 3}, "pool 3×3 on 7×9");
  std::printf("All results match. Starting benchmarks.\n");

  ConvBuffers c1(conv1), c2(conv2);
  PoolBuffers p1(pool1), p2(pool2);
  using namespace troupe::cpu;
  struct Row {
    const char* name;
    double ms, flops;
  };
  auto conv_flops = [](const Conv2dShape& s) {
    return 2.0 * double(output_size(s)) * double(s.in_channels * s.kernel * s.kernel);
  };
  const std::vector<Row> rows = {
      {"conv1 forward",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  conv2d_forward(conv1, c1.x.data(), c1.w.data(), c1.b.data(),
                                                 c1.y.data(), c1.workspace.data());
                                }),
       conv_flops(conv1)},
      {"conv1 backward (dW, db)",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  conv2d_backward(conv1, c1.x.data(), c1.w.data(), c1.dy.data(),
                                                  nullptr, c1.dw.data(), c1.db.data(),
                                                  c1.workspace.data());
                                }),
       conv_flops(conv1)},
      {"conv2 forward",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  conv2d_forward(conv2, c2.x.data(), c2.w.data(), c2.b.data(),
                                                 c2.y.data(), c2.workspace.data());
                                }),
       conv_flops(conv2)},
      {"conv2 backward (dx, dW, db)",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  conv2d_backward(conv2, c2.x.data(), c2.w.data(), c2.dy.data(),
                                                  c2.dx.data(), c2.dw.data(), c2.db.data(),
                                                  c2.workspace.data());
                                }),
       2 * conv_flops(conv2)},
      {"pool1 forward",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  maxpool2d_forward(p1.x.data(), p1.y.data(), p1.argmax.data(),
                                                    pool1.batch, pool1.channels, pool1.height,
                                                    pool1.width, pool1.window);
                                }),
       0},
      {"pool1 backward",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  maxpool2d_backward(p1.dy.data(), p1.argmax.data(), p1.dx.data(),
                                                     pool1.batch, pool1.channels, pool1.height,
                                                     pool1.width, pool1.window);
                                }),
       0},
      {"pool2 forward",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  maxpool2d_forward(p2.x.data(), p2.y.data(), p2.argmax.data(),
                                                    pool2.batch, pool2.channels, pool2.height,
                                                    pool2.width, pool2.window);
                                }),
       0},
      {"pool2 backward",
       troupe::bench::median_ms(opt.warmup, opt.iters,
                                [&] {
                                  maxpool2d_backward(p2.dy.data(), p2.argmax.data(), p2.dx.data(),
                                                     pool2.batch, pool2.channels, pool2.height,
                                                     pool2.width, pool2.window);
                                }),
       0},
  };

  std::printf("# batch %lld, median of %d calls after %d warm-up\n",
              static_cast<long long>(opt.batch), opt.iters, opt.warmup);
  std::printf("#%-28s %10s %9s\n", "kernel", "ms", "GFLOP/s");
  double total = 0.0;
  for (const Row& r : rows) {
    total += r.ms;
    if (r.flops > 0)
      std::printf(" %-28s %10.4f %9.2f\n", r.name, r.ms, r.flops / (r.ms * 1e6));
    else
      std::printf(" %-28s %10.4f %9s\n", r.name, r.ms, "-");
  }
  std::printf(" %-28s %10.4f\n", "sum (one micro-batch)", total);
  if (getloadavg(load, 3) == 3)
    std::printf("# load average at end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Validates, then times the LeNet convolutions and max-pools on the CPU"};
  app.option_defaults()->always_capture_default();
  app.add_option("--batch", opt.batch, "images per call (the micro-batch)");
  app.add_option("--iters", opt.iters, "timed calls per kernel");
  app.add_option("--warmup", opt.warmup, "untimed calls first");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const ValidationError& e) {
    std::fprintf(stderr, "validation FAILED: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
