// A small harness for the GPU test binaries: no CUDA call happens before main, a machine without
// a GPU exits 77 (CTest: skipped), and each check prints what differed. Device buffers are plain
// cudaMalloc'd vectors with host copies in and out.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda_device.hpp"
#include "memory/dtype.hpp"

namespace gpu_test {

inline int& failures() {
  static int n = 0;
  return n;
}

#define GPU_CHECK(cond)                                               \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::printf("  FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      ++::gpu_test::failures();                                       \
    }                                                                 \
  } while (0)

#define GPU_CHECK_MSG(cond, ...)                                      \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::printf("  FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                                       \
      std::printf("\n");                                              \
      ++::gpu_test::failures();                                       \
    }                                                                 \
  } while (0)

using Case = std::pair<const char*, std::function<void()>>;

inline int run(const std::vector<Case>& cases) {
  if (troupe::cuda::device_count() == 0) {
    std::puts("no CUDA device: skipping");
    return 77;
  }
  int failed_cases = 0;
  for (const auto& [name, fn] : cases) {
    const int before = failures();
    try {
      fn();
    } catch (const std::exception& e) {
      std::printf("  FAILED: exception: %s\n", e.what());
      ++failures();
    }
    const bool ok = failures() == before;
    failed_cases += !ok;
    std::printf("%s %s\n", ok ? "ok    " : "FAILED", name);
  }
  std::printf("%d of %zu cases failed\n", failed_cases, cases.size());
  return failed_cases == 0 ? 0 : 1;
}

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    TROUPE_CUDA_CHECK(cudaMalloc(&ptr_, (n ? n : 1) * sizeof(T)));
    // Poison: an element a kernel should write but does not shows up as NaN / garbage.
    TROUPE_CUDA_CHECK(cudaMemset(ptr_, 0xff, (n ? n : 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return static_cast<T*>(ptr_); }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    TROUPE_CUDA_CHECK(
        cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    TROUPE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    TROUPE_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  void* ptr_ = nullptr;
  std::size_t n_;
};

inline std::vector<float> random_floats(std::size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::uint32_t bits(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// Counts elements whose bit patterns differ, printing the first few.
inline std::size_t bit_mismatches(const std::vector<float>& got, const std::vector<float>& want,
                                  const char* what) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (bits(got[i]) != bits(want[i])) {
      if (bad < 3)
        std::printf("    %s[%zu]: gpu %.9g (0x%08x) cpu %.9g (0x%08x)\n", what, i, got[i],
                    bits(got[i]), want[i], bits(want[i]));
      ++bad;
    }
  }
  return bad;
}

// mse(a, b) / mse(a, 0): the normalised error of ggml's test-backend-ops.
inline double normalized_mse(const std::vector<float>& ref, const std::vector<float>& got) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(ref[i]) - got[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (std::isnan(num)) return INFINITY;
  return den == 0.0 ? num : num / den;
}

// Normalised-mse bound for an fp32 reduction of length k (a GEMM's dot products, a row sum). A
// length-k float sum errs by at most k·ε·Σ|termᵢ| (ε = 2^-24) in any order (a tree's factor is only
// log2 k); for zero-mean random terms Σ|termᵢ| is about √k times the rms of the result, so each
// side has a relative rms error below k^1.5·ε, and the two sides' errors add: (2·k^1.5·ε)².
inline double reduction_bound(double k) {
  const double e = std::pow(k, 1.5) * std::ldexp(1.0, -24);
  return 4.0 * e * e;
}

// bf16 round trips through memory/dtype.hpp's scalar conversions (the CPU's rounding).
inline std::vector<std::uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<std::uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = troupe::f32_to_bf16_bits(v[i]);
  return out;
}
inline std::vector<float> from_bf16(const std::vector<std::uint16_t>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = troupe::bf16_bits_to_f32(v[i]);
  return out;
}
// v rounded to bf16 and back: what both sides compute on in a bf16 test.
inline std::vector<float> round_bf16(const std::vector<float>& v) {
  return from_bf16(to_bf16(v));
}

// Distance in units in the last place between two finite floats of the same sign region.
inline std::int64_t ulp_distance(float a, float b) {
  auto ordered = [](float x) {
    const std::int64_t i = static_cast<std::int32_t>(bits(x));
    return i < 0 ? static_cast<std::int64_t>(INT32_MIN) - i : i;
  };
  const std::int64_t d = ordered(a) - ordered(b);
  return d < 0 ? -d : d;
}

}  // namespace gpu_test
