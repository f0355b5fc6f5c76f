// cuBLASLt GEMMs and the grouped expert GEMMs against the OpenBLAS CPU twins. Tolerance is the
// normalised error mse(a, b) / mse(a, 0):
//   - fp32: ≤ 4·(K^1.5·2^-24)². A length-K fp32 dot product errs by at most K·ε·Σ|aᵢbᵢ| (ε = 2^-24);
//     for zero-mean random inputs Σ|aᵢbᵢ| is about √K times the rms of the result, so the relative
//     rms error is below K^1.5·ε for each side; the factor 4 covers both sides' errors adding.
//   - bf16 (inputs rounded to bf16 on both sides first, fp32 accumulation, bf16 output): ≤ 2^-8;
//     the output's own rounding alone gives about 2^-18, so this catches any layout mistake.
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cpu/gemm.hpp"
#include "memory/dtype.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

double fp32_bound(std::int64_t k) {
  const double e = std::pow(static_cast<double>(k), 1.5) * std::ldexp(1.0, -24);
  return 4.0 * e * e;
}

std::vector<std::uint16_t> to_bf16(const std::vector<float>& v, std::vector<float>* rounded) {
  std::vector<std::uint16_t> out(v.size());
  if (rounded) rounded->resize(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    out[i] = f32_to_bf16_bits(v[i]);
    if (rounded) (*rounded)[i] = bf16_bits_to_f32(out[i]);
  }
  return out;
}

std::vector<float> from_bf16(const std::vector<std::uint16_t>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = bf16_bits_to_f32(v[i]);
  return out;
}

void plain_gemm_all_transposes() {
  cuda::Blas blas(0);
  std::mt19937_64 rng(3);
  const std::int64_t m = 67, n = 45, k = 129;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      const std::int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 5;
      const auto a = gpu_test::random_floats((ta ? k : m) * lda, rng);
      const auto b = gpu_test::random_floats((tb ? n : k) * ldb, rng);
      auto c = gpu_test::random_floats(m * ldc, rng);
      // fp32, beta = 0.5
      DeviceBuffer<float> da(a), db(b), dc(c);
      cuda::gemm(blas, nullptr, DType::f32, DType::f32, ta, tb, m, n, k, 1.5f, da.get(), lda,
                 db.get(), ldb, 0.5f, dc.get(), ldc);
      std::vector<float> want = c;
      cpu::gemm(ta, tb, m, n, k, 1.5f, a.data(), lda, b.data(), ldb, 0.5f, want.data(), ldc);
      const double err = gpu_test::normalized_mse(want, dc.download());
      GPU_CHECK_MSG(err <= fp32_bound(k), "fp32 ta=%d tb=%d: %g > %g", ta, tb, err, fp32_bound(k));
      // bf16 in, bf16 out and bf16 in, fp32 out
      std::vector<float> ar, br;
      DeviceBuffer<std::uint16_t> dab(to_bf16(a, &ar)), dbb(to_bf16(b, &br)), dcb(m * ldc);
      cuda::gemm(blas, nullptr, DType::bf16, DType::bf16, ta, tb, m, n, k, 1.0f, dab.get(), lda,
                 dbb.get(), ldb, 0.0f, dcb.get(), ldc);
      DeviceBuffer<float> dcf(m * ldc);
      cuda::gemm(blas, nullptr, DType::bf16, DType::f32, ta, tb, m, n, k, 1.0f, dab.get(), lda,
                 dbb.get(), ldb, 0.0f, dcf.get(), ldc);
      std::vector<float> ref(m * ldc, 0.0f);
      cpu::gemm(ta, tb, m, n, k, 1.0f, ar.data(), lda, br.data(), ldb, 0.0f, ref.data(), ldc);
      // compare only the m×n part (the ld padding is never written)
      std::vector<float> want_part, got_b, got_f;
      const auto cb = from_bf16(dcb.download());
      const auto cf = dcf.download();
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          want_part.push_back(ref[i * ldc + j]);
          got_b.push_back(cb[i * ldc + j]);
          got_f.push_back(cf[i * ldc + j]);
        }
      const double eb = gpu_test::normalized_mse(want_part, got_b);
      const double ef = gpu_test::normalized_mse(want_part, got_f);
      GPU_CHECK_MSG(eb <= std::ldexp(1.0, -8), "bf16 ta=%d tb=%d: %g", ta, tb, eb);
      GPU_CHECK_MSG(ef <= fp32_bound(k), "bf16->f32 ta=%d tb=%d: %g", ta, tb, ef);
    }
  }
}

void grouped_matches(DType dtype, int streams, bool accumulate) {
  std::mt19937_64 rng(17 + streams);
  const std::int64_t in = 72, out = 40;
  const std::vector<std::int64_t> sizes = {5, 0, 33, 1, 64, 0, 17};  // empty groups included
  const std::int64_t groups = static_cast<std::int64_t>(sizes.size());
  std::vector<std::int64_t> offsets = {0};
  for (auto s : sizes) offsets.push_back(offsets.back() + s);
  const std::int64_t rows = offsets.back();
  auto x = gpu_test::random_floats(rows * in, rng), w = gpu_test::random_floats(groups * out * in, rng);
  auto dy = gpu_test::random_floats(rows * out, rng), dw0 = gpu_test::random_floats(groups * out * in, rng);
  const bool bf = dtype == DType::bf16;
  std::vector<float> xr = x, wr = w, dyr = dy;
  if (bf) {
    to_bf16(x, &xr);
    to_bf16(w, &wr);
    to_bf16(dy, &dyr);
    to_bf16(dw0, &dw0);
  }
  std::vector<float> y(rows * out), dx(rows * in), dw = accumulate ? dw0 : std::vector<float>(groups * out * in, 0.0f);
  cpu::grouped_linear_forward(xr.data(), offsets.data(), groups, wr.data(), nullptr, y.data(), in, out);
  cpu::grouped_linear_backward(xr.data(), offsets.data(), groups, wr.data(), dyr.data(), dx.data(),
                               dw.data(), nullptr, in, out);
  cuda::GroupedGemm grouped(0, streams);
  auto upload = [&](const std::vector<float>& v) -> std::unique_ptr<void, void (*)(void*)> {
    void* p = nullptr;
    TROUPE_CUDA_CHECK(cudaMalloc(&p, v.size() * 4));
    if (bf) {
      const auto b = to_bf16(v, nullptr);
      TROUPE_CUDA_CHECK(cudaMemcpy(p, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
    } else {
      TROUPE_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    }
    return {p, [](void* q) { cudaFree(q); }};
  };
  auto download = [&](const void* p, std::size_t n) {
    TROUPE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> v(n);
    if (bf) {
      std::vector<std::uint16_t> b(n);
      TROUPE_CUDA_CHECK(cudaMemcpy(b.data(), p, n * 2, cudaMemcpyDeviceToHost));
      v = from_bf16(b);
    } else {
      TROUPE_CUDA_CHECK(cudaMemcpy(v.data(), p, n * 4, cudaMemcpyDeviceToHost));
    }
    return v;
  };
  auto dx_dev = upload(x), dw_dev = upload(w), ddy = upload(dy), dgw = upload(dw0);
  auto dyout = upload(std::vector<float>(rows * out, NAN)), ddx = upload(std::vector<float>(rows * in, NAN));
  void* s = nullptr;
  TROUPE_CUDA_CHECK(cudaStreamCreate(reinterpret_cast<cudaStream_t*>(&s)));
  grouped.forward(s, dtype, dx_dev.get(), offsets.data(), groups, dw_dev.get(), dyout.get(), in, out);
  grouped.backward(s, dtype, dx_dev.get(), offsets.data(), groups, dw_dev.get(), ddy.get(),
                   ddx.get(), dgw.get(), in, out, accumulate);
  const double bound_y = bf ? std::ldexp(1.0, -8) : fp32_bound(in);
  const double bound_dx = bf ? std::ldexp(1.0, -8) : fp32_bound(out);
  const double bound_dw = bf ? std::ldexp(1.0, -8) : fp32_bound(64);
  const double ey = gpu_test::normalized_mse(y, download(dyout.get(), y.size()));
  const double edx = gpu_test::normalized_mse(dx, download(ddx.get(), dx.size()));
  const double edw = gpu_test::normalized_mse(dw, download(dgw.get(), dw.size()));
  GPU_CHECK_MSG(ey <= bound_y, "forward %g", ey);
  GPU_CHECK_MSG(edx <= bound_dx, "dx %g", edx);
  GPU_CHECK_MSG(edw <= bound_dw, "dw %g", edw);
  cudaStreamDestroy(static_cast<cudaStream_t>(s));
}

}  // namespace

int main() {
  return gpu_test::run({
      {"gemm: fp32 and bf16, every transpose, padded strides", plain_gemm_all_transposes},
      {"grouped: fp32, 1 stream, dw accumulated", [] { grouped_matches(DType::f32, 1, true); }},
      {"grouped: fp32, 3 streams, dw overwritten", [] { grouped_matches(DType::f32, 3, false); }},
      {"grouped: bf16, 4 streams, dw overwritten", [] { grouped_matches(DType::bf16, 4, false); }},
      {"grouped: bf16, 2 streams, dw accumulated", [] { grouped_matches(DType::bf16, 2, true); }},
  });
}
