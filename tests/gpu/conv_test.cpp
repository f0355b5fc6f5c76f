// Max-pooling and (with cuDNN) conv2d on the GPU against the CPU twins (kernels/cpu/conv.hpp),
// fp32. Tolerances:
//   - maxpool forward (y and argmax) and backward: bit for bit (comparisons and one addition to
//     zero per input). Inputs are small integers, so tied maxima are common.
//   - conv2d: each output is a reduction, of length C·K·K (+ bias) for y, OC·K·K for dx and
//     N·OH·OW for dw and dbias: normalised mse within gpu_test::reduction_bound of that length
//     (k·ε, derived in gpu_test.hpp). cuDNN is held to plain fp32 math, so TF32 would fail this.
//   - bf16 (inputs rounded to bf16 on both sides first; the CPU twin runs in fp32 on the rounded
//     values):
//       - maxpool: still bit for bit (it compares and copies values that bf16 holds exactly, and
//         adds each gradient to zero), stronger than the bf16 bound;
//       - conv2d: normalised mse ≤ 2^-8, the bound for bf16. cuDNN computes in fp32 from
//         the same bf16 values, so the difference is the one bf16 rounding of each output
//         (relative 2^-9, about 2^-18 normalised; y with a bias and dw / dbias accumulated round
//         twice) plus the fp32 reduction error above.
//     If cuDNN lists no deterministic bf16 algorithm for a shape (conv.hpp: the call throws), the
//     case prints "bf16 conv2d unsupported" with cuDNN's reason and fails: the header promises
//     deterministic bf16 convolutions on sm_90, and this is where that promise is checked.
// Without cuDNN in the build the conv2d cases say so and pass (nothing to compare).
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cpu/conv.hpp"
#include "kernels/cuda/conv.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

void maxpool(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t window) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(n * c * h * w + window));
  std::vector<float> x(n * c * h * w);
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 5) - 2);  // many ties
  const std::int64_t outputs = n * c * (h / window) * (w / window);
  auto dy = gpu_test::random_floats(outputs, rng);
  if (outputs > 0) dy[0] = -0.0f;  // the CPU's 0 + (−0) is +0
  std::vector<float> y(outputs), dx(x.size());
  std::vector<std::int32_t> argmax(outputs);
  cpu::maxpool2d_forward(x.data(), y.data(), argmax.data(), n, c, h, w, window);
  cpu::maxpool2d_backward(dy.data(), argmax.data(), dx.data(), n, c, h, w, window);
  DeviceBuffer<float> d_x(x), d_y(outputs), d_dy(dy), d_dx(x.size());
  DeviceBuffer<std::int32_t> d_argmax(outputs);
  cuda::maxpool2d_forward(d_x.get(), d_y.get(), d_argmax.get(), n, c, h, w, window, nullptr);
  cuda::maxpool2d_backward(d_dy.get(), d_argmax.get(), d_dx.get(), n, c, h, w, window, nullptr);
  if (outputs > 0) {
    GPU_CHECK(gpu_test::bit_mismatches(d_y.download(), y, "y") == 0);
    GPU_CHECK(d_argmax.download() == argmax);
  }
  GPU_CHECK(gpu_test::bit_mismatches(d_dx.download(), dx, "dx") == 0);
}

void conv(const cpu::Conv2dShape& s, bool with_bias) {
  if (!cuda::conv2d_available()) {
    std::puts("  (built without cuDNN: TROUPE_CUDNN=OFF; nothing to compare)");
    return;
  }
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.batch + s.in_channels * 10 + s.kernel));
  const std::int64_t oh = s.out_height(), ow = s.out_width();
  const auto x = gpu_test::random_floats(s.batch * s.in_channels * s.height * s.width, rng);
  const auto w = gpu_test::random_floats(s.out_channels * s.in_channels * s.kernel * s.kernel, rng);
  const auto bias = gpu_test::random_floats(s.out_channels, rng);
  const auto dy = gpu_test::random_floats(s.batch * s.out_channels * oh * ow, rng);
  const auto dw0 = gpu_test::random_floats(w.size(), rng),
             db0 = gpu_test::random_floats(bias.size(), rng);
  std::vector<float> y(dy.size()), dx(x.size()), dw = dw0, db = db0;
  std::vector<float> workspace(cpu::conv2d_workspace_size(s));
  cpu::conv2d_forward(s, x.data(), w.data(), with_bias ? bias.data() : nullptr, y.data(),
                      workspace.data());
  cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                       with_bias ? db.data() : nullptr, workspace.data());
  cuda::Dnn dnn(0);
  DeviceBuffer<float> d_x(x), d_w(w), d_bias(bias), d_dy(dy), d_y(y.size()), d_dx(x.size()),
      d_dw(dw0), d_db(db0);
  cuda::conv2d_forward(dnn, s, d_x.get(), d_w.get(), with_bias ? d_bias.get() : nullptr, d_y.get(),
                       nullptr);
  cuda::conv2d_backward(dnn, s, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(), d_dw.get(),
                        with_bias ? d_db.get() : nullptr, nullptr);
  const double taps = static_cast<double>(s.kernel * s.kernel);
  const double pixels = static_cast<double>(s.batch * oh * ow);
  const struct {
    const char* what;
    const std::vector<float>& want;
    std::vector<float> got;
    double bound;
  } checks[] = {
      {"y", y, d_y.download(), gpu_test::reduction_bound(s.in_channels * taps + 1)},
      {"dx", dx, d_dx.download(), gpu_test::reduction_bound(s.out_channels * taps)},
      {"dw", dw, d_dw.download(), gpu_test::reduction_bound(pixels)},
      {"dbias", db, d_db.download(), gpu_test::reduction_bound(pixels)},
  };
  for (const auto& c : checks) {
    const double err = gpu_test::normalized_mse(c.want, c.got);
    GPU_CHECK_MSG(err <= c.bound, "%s: %g > %g", c.what, err, c.bound);
  }
}

void maxpool_bf16(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                  std::int64_t window) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(n * c * h * w + window + 1));
  std::vector<float> x(n * c * h * w);
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 5) - 2) * 0.3f;  // ties
  x = gpu_test::round_bf16(x);
  const std::int64_t outputs = n * c * (h / window) * (w / window);
  auto dy = gpu_test::round_bf16(gpu_test::random_floats(outputs, rng));
  if (outputs > 0) dy[0] = -0.0f;
  std::vector<float> y(outputs), dx(x.size());
  std::vector<std::int32_t> argmax(outputs);
  cpu::maxpool2d_forward(x.data(), y.data(), argmax.data(), n, c, h, w, window);
  cpu::maxpool2d_backward(dy.data(), argmax.data(), dx.data(), n, c, h, w, window);
  DeviceBuffer<std::uint16_t> d_x(gpu_test::to_bf16(x)), d_y(outputs), d_dy(gpu_test::to_bf16(dy)),
      d_dx(x.size());
  DeviceBuffer<std::int32_t> d_argmax(outputs);
  cuda::maxpool2d_forward(DType::bf16, d_x.get(), d_y.get(), d_argmax.get(), n, c, h, w, window,
                          nullptr);
  cuda::maxpool2d_backward(DType::bf16, d_dy.get(), d_argmax.get(), d_dx.get(), n, c, h, w, window,
                           nullptr);
  if (outputs > 0) {
    GPU_CHECK(gpu_test::bit_mismatches(gpu_test::from_bf16(d_y.download()), y, "y") == 0);
    GPU_CHECK(d_argmax.download() == argmax);
  }
  GPU_CHECK(gpu_test::bit_mismatches(gpu_test::from_bf16(d_dx.download()), dx, "dx") == 0);
}

void conv_bf16(const cpu::Conv2dShape& s, bool with_bias) {
  if (!cuda::conv2d_available()) {
    std::puts("  (built without cuDNN: TROUPE_CUDNN=OFF; nothing to compare)");
    return;
  }
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.batch + s.in_channels * 10 + s.kernel + 5));
  const std::int64_t oh = s.out_height(), ow = s.out_width();
  using gpu_test::round_bf16;
  const auto x =
      round_bf16(gpu_test::random_floats(s.batch * s.in_channels * s.height * s.width, rng));
  const auto w = round_bf16(
      gpu_test::random_floats(s.out_channels * s.in_channels * s.kernel * s.kernel, rng));
  const auto bias = round_bf16(gpu_test::random_floats(s.out_channels, rng));
  const auto dy = round_bf16(gpu_test::random_floats(s.batch * s.out_channels * oh * ow, rng));
  const auto dw0 = round_bf16(gpu_test::random_floats(w.size(), rng)),
             db0 = round_bf16(gpu_test::random_floats(bias.size(), rng));
  std::vector<float> y(dy.size()), dx(x.size()), dw = dw0, db = db0;
  std::vector<float> workspace(cpu::conv2d_workspace_size(s));
  cpu::conv2d_forward(s, x.data(), w.data(), with_bias ? bias.data() : nullptr, y.data(),
                      workspace.data());
  cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                       with_bias ? db.data() : nullptr, workspace.data());
  cuda::Dnn dnn(0);
  using gpu_test::to_bf16;
  DeviceBuffer<std::uint16_t> d_x(to_bf16(x)), d_w(to_bf16(w)), d_bias(to_bf16(bias)),
      d_dy(to_bf16(dy)), d_y(y.size()), d_dx(x.size()), d_dw(to_bf16(dw0)), d_db(to_bf16(db0));
  try {
    cuda::conv2d_forward(dnn, DType::bf16, s, d_x.get(), d_w.get(),
                         with_bias ? d_bias.get() : nullptr, d_y.get(), nullptr);
    cuda::conv2d_backward(dnn, DType::bf16, s, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(),
                          d_dw.get(), with_bias ? d_db.get() : nullptr, nullptr);
  } catch (const std::runtime_error& e) {
    GPU_CHECK_MSG(false, "bf16 conv2d unsupported: %s", e.what());
    return;
  }
  const double bound = std::ldexp(1.0, -8);
  const struct {
    const char* what;
    const std::vector<float>& want;
    std::vector<float> got;
  } checks[] = {
      {"y", y, gpu_test::from_bf16(d_y.download())},
      {"dx", dx, gpu_test::from_bf16(d_dx.download())},
      {"dw", dw, gpu_test::from_bf16(d_dw.download())},
      {"dbias", db, gpu_test::from_bf16(d_db.download())},
  };
  for (const auto& c : checks) {
    const double err = gpu_test::normalized_mse(c.want, c.got);
    GPU_CHECK_MSG(err <= bound, "bf16 %s: %g > %g", c.what, err, bound);
    std::printf("    bf16 %s: normalised error %.3g (bound %.3g)\n", c.what, err, bound);
  }
}

}  // namespace

int main() {
  return gpu_test::run({
      {"maxpool 2x2, odd trailing row and column", [] { maxpool(3, 5, 9, 11, 2); }},
      {"maxpool 3x3", [] { maxpool(2, 3, 10, 7, 3); }},
      {"maxpool 1x1", [] { maxpool(1, 2, 3, 4, 1); }},
      {"maxpool empty batch", [] { maxpool(0, 2, 4, 4, 2); }},
      {"maxpool bf16 2x2, odd trailing row and column", [] { maxpool_bf16(3, 5, 9, 11, 2); }},
      {"maxpool bf16 3x3", [] { maxpool_bf16(2, 3, 10, 7, 3); }},
      {"maxpool bf16 empty batch", [] { maxpool_bf16(0, 2, 4, 4, 2); }},
      {"conv2d LeNet C1: 1→6, 5x5, padding 2",
       [] {
         conv({4, 1, 28, 28, 6, 5, 2}, true);
       }},
      {"conv2d LeNet C3: 6→16, 5x5",
       [] {
         conv({4, 6, 14, 14, 16, 5, 0}, true);
       }},
      {"conv2d odd: 3→5, 3x3 on 7x9, padding 1, no bias",
       [] {
         conv({3, 3, 7, 9, 5, 3, 1}, false);
       }},
      {"conv2d bf16 LeNet C1: 1→6, 5x5, padding 2",
       [] {
         conv_bf16({4, 1, 28, 28, 6, 5, 2}, true);
       }},
      {"conv2d bf16 LeNet C3: 6→16, 5x5",
       [] {
         conv_bf16({4, 6, 14, 14, 16, 5, 0}, true);
       }},
      {"conv2d bf16 odd: 3→5, 3x3 on 7x9, padding 1, no bias",
       [] {
         conv_bf16({3, 3, 7, 9, 5, 3, 1}, false);
       }},
  });
}
