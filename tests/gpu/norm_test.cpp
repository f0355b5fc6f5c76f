// LayerNorm and RMSNorm on the GPU against the CPU twins (kernels/cpu/norm.hpp), fp32 and bf16.
// Tolerances:
//   - y, dx, mean, rstd come after a row reduction of length cols: normalised mse within
//     gpu_test::reduction_bound(cols) (derived there from k·ε). The row sums are in double on both
//     sides, so in practice they agree to the last bit; the bound is what is guaranteed.
//   - dgamma, dbeta: bit for bit. Given the same saved mean and rstd both sides add the same fp32
//     terms in row order.
//   - bf16 (x and dy rounded to bf16 on both sides first, y and dx stored in bf16): 2^-8; dgamma
//   and
//     dbeta still bit for bit, since the rounded inputs are exactly representable in fp32.
// Shapes: one column, odd widths below and above the 256-thread block, rows with |mean| ≫ std.
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cuda/norm.hpp"
#include "kernels/cpu/norm.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

struct Shape {
  std::int64_t rows, cols;
};
constexpr Shape kShapes[] = {{5, 1}, {37, 7}, {23, 1000}, {9, 4099}, {0, 16}};

std::vector<float> inputs(const Shape& s, std::mt19937_64& rng) {
  auto x = gpu_test::random_floats(s.rows * s.cols, rng);
  // Every third row sits on a large offset: two-pass statistics must keep it accurate.
  for (std::int64_t r = 0; r < s.rows; r += 3)
    for (std::int64_t c = 0; c < s.cols; ++c)
      x[r * s.cols + c] = 1000.0f + 0.01f * x[r * s.cols + c];
  return x;
}

// Device copy of fp32 host data in `dtype` (bf16: rounded), and the way back.
struct Typed {
  DType dtype;
  std::vector<float> host;  // what the CPU computes on
  DeviceBuffer<float> f32;
  DeviceBuffer<std::uint16_t> bf16;
  Typed(DType d, const std::vector<float>& v)
      : dtype(d),
        host(d == DType::bf16 ? gpu_test::round_bf16(v) : v),
        f32(d == DType::f32 ? v : std::vector<float>(1)),
        bf16(d == DType::bf16 ? gpu_test::to_bf16(v) : std::vector<std::uint16_t>(1)) {}
  explicit Typed(DType d, std::size_t n) : Typed(d, std::vector<float>(n, 0.0f)) {}
  void* get() const { return dtype == DType::f32 ? static_cast<void*>(f32.get()) : bf16.get(); }
  std::vector<float> download() const {
    return dtype == DType::f32 ? f32.download() : gpu_test::from_bf16(bf16.download());
  }
};

double bound(DType dtype, std::int64_t cols) {
  return dtype == DType::bf16 ? std::ldexp(1.0, -8) : gpu_test::reduction_bound(cols);
}

void check_close(const char* what, DType dtype, const Shape& s, const std::vector<float>& want,
                 const std::vector<float>& got, double limit) {
  const double err = gpu_test::normalized_mse(want, got);
  GPU_CHECK_MSG(err <= limit, "%s %s rows=%lld cols=%lld: %g > %g", what,
                std::string(dtype_name(dtype)).c_str(), static_cast<long long>(s.rows),
                static_cast<long long>(s.cols), err, limit);
}

void layernorm(DType dtype) {
  std::mt19937_64 rng(11);
  for (const Shape& s : kShapes) {
    const std::size_t n = s.rows * s.cols;
    const auto gamma = gpu_test::random_floats(s.cols, rng),
               beta = gpu_test::random_floats(s.cols, rng);
    const auto dgamma0 = gpu_test::random_floats(s.cols, rng),
               dbeta0 = gpu_test::random_floats(s.cols, rng);
    Typed x(dtype, inputs(s, rng)), dy(dtype, gpu_test::random_floats(n, rng));
    std::vector<float> y(n), mean(s.rows), rstd(s.rows), dx(n), dgamma = dgamma0, dbeta = dbeta0;
    cpu::layernorm_forward(x.host.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                           rstd.data(), s.rows, s.cols, 1e-5f);
    cpu::layernorm_backward(x.host.data(), gamma.data(), mean.data(), rstd.data(), dy.host.data(),
                            dx.data(), dgamma.data(), dbeta.data(), s.rows, s.cols);
    DeviceBuffer<float> d_gamma(gamma), d_beta(beta), d_mean(s.rows), d_rstd(s.rows);
    DeviceBuffer<float> d_dgamma(dgamma0), d_dbeta(dbeta0);
    Typed d_y(dtype, n), d_dx(dtype, n);
    cuda::layernorm_forward(dtype, x.get(), d_gamma.get(), d_beta.get(), d_y.get(), d_mean.get(),
                            d_rstd.get(), s.rows, s.cols, 1e-5f, nullptr);
    check_close("layernorm y", dtype, s, y, d_y.download(), bound(dtype, s.cols));
    check_close("layernorm mean", dtype, s, mean, d_mean.download(),
                gpu_test::reduction_bound(s.cols));
    check_close("layernorm rstd", dtype, s, rstd, d_rstd.download(),
                gpu_test::reduction_bound(s.cols));
    // The backward gets the CPU's statistics, so dgamma / dbeta can be compared bit for bit.
    d_mean.upload(mean);
    d_rstd.upload(rstd);
    cuda::layernorm_backward(dtype, x.get(), d_gamma.get(), d_mean.get(), d_rstd.get(), dy.get(),
                             d_dx.get(), d_dgamma.get(), d_dbeta.get(), s.rows, s.cols, nullptr);
    check_close("layernorm dx", dtype, s, dx, d_dx.download(), bound(dtype, s.cols));
    GPU_CHECK(gpu_test::bit_mismatches(d_dgamma.download(), dgamma, "dgamma") == 0);
    GPU_CHECK(gpu_test::bit_mismatches(d_dbeta.download(), dbeta, "dbeta") == 0);
  }
}

void rmsnorm(DType dtype) {
  std::mt19937_64 rng(12);
  for (const Shape& s : kShapes) {
    const std::size_t n = s.rows * s.cols;
    const auto gamma = gpu_test::random_floats(s.cols, rng);
    const auto dgamma0 = gpu_test::random_floats(s.cols, rng);
    Typed x(dtype, inputs(s, rng)), dy(dtype, gpu_test::random_floats(n, rng));
    std::vector<float> y(n), rstd(s.rows), dx(n), dgamma = dgamma0;
    cpu::rmsnorm_forward(x.host.data(), gamma.data(), y.data(), rstd.data(), s.rows, s.cols, 1e-6f);
    cpu::rmsnorm_backward(x.host.data(), gamma.data(), rstd.data(), dy.host.data(), dx.data(),
                          dgamma.data(), s.rows, s.cols);
    DeviceBuffer<float> d_gamma(gamma), d_rstd(s.rows), d_dgamma(dgamma0);
    Typed d_y(dtype, n), d_dx(dtype, n);
    cuda::rmsnorm_forward(dtype, x.get(), d_gamma.get(), d_y.get(), d_rstd.get(), s.rows, s.cols,
                          1e-6f, nullptr);
    check_close("rmsnorm y", dtype, s, y, d_y.download(), bound(dtype, s.cols));
    check_close("rmsnorm rstd", dtype, s, rstd, d_rstd.download(),
                gpu_test::reduction_bound(s.cols));
    d_rstd.upload(rstd);
    cuda::rmsnorm_backward(dtype, x.get(), d_gamma.get(), d_rstd.get(), dy.get(), d_dx.get(),
                           d_dgamma.get(), s.rows, s.cols, nullptr);
    check_close("rmsnorm dx", dtype, s, dx, d_dx.download(), bound(dtype, s.cols));
    GPU_CHECK(gpu_test::bit_mismatches(d_dgamma.download(), dgamma, "dgamma") == 0);
  }
}

void bad_shape_throws() {
  bool threw = false;
  try {
    cuda::layernorm_forward(DType::f32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 3, 0,
                            1e-5f, nullptr);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  GPU_CHECK(threw);
}

}  // namespace

int main() {
  return gpu_test::run({
      {"layernorm fp32: forward within the reduction bound, dgamma/dbeta bit-exact",
       [] { layernorm(DType::f32); }},
      {"layernorm bf16", [] { layernorm(DType::bf16); }},
      {"rmsnorm fp32: forward within the reduction bound, dgamma bit-exact",
       [] { rmsnorm(DType::f32); }},
      {"rmsnorm bf16", [] { rmsnorm(DType::bf16); }},
      {"norm: cols < 1 with rows > 0 throws", bad_shape_throws},
  });
}
