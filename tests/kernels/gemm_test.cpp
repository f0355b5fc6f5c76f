// GEMM family against naive double-precision loops. Inputs are small integers, so every product
// and partial sum is exact in fp32 and results must match bit for bit whatever order BLAS sums in.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/gemm.hpp"

using namespace troupe;
using test::random_integers;

namespace {

constexpr float kSentinel = 1234.0f;  // marks padding / buffers a kernel must leave alone

// C = alpha·op(A)·op(B) + beta·C over strided row-major storage, in double.
std::vector<float> naive_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                              std::int64_t k, double alpha, const std::vector<float>& a,
                              std::int64_t lda, const std::vector<float>& b, std::int64_t ldb,
                              double beta, std::vector<float> c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const double bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += av * bv;
      }
      const double old = beta == 0.0 ? 0.0 : beta * c[i * ldc + j];
      c[i * ldc + j] = static_cast<float>(alpha * acc + old);
    }
  }
  return c;
}

// y[rows, out] = x · wᵀ (+ bias) for one block of rows, in double.
std::vector<double> naive_linear(const float* x, const float* w, const float* bias,
                                 std::int64_t rows, std::int64_t in, std::int64_t out) {
  std::vector<double> y(rows * out);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (std::int64_t i = 0; i < in; ++i) acc += double(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = acc;
    }
  }
  return y;
}

bool any_nonzero(const std::vector<float>& v) {
  for (float x : v)
    if (x != 0.0f) return true;
  return false;
}

}  // namespace

TEST_CASE("gemm matches naive loops for every transpose combination and padded strides") {
  struct Size {
    std::int64_t m, n, k;
  };
  // The small shape stays in OpenBLAS's small-matrix path; the larger one crosses its blocking.
  for (Size s : {Size{7, 5, 9}, Size{67, 33, 129}}) {
    for (bool trans_a : {false, true}) {
      for (bool trans_b : {false, true}) {
        DYNAMIC_SECTION("m=" << s.m << " n=" << s.n << " k=" << s.k << " trans_a=" << trans_a
                             << " trans_b=" << trans_b) {
          const std::int64_t a_rows = trans_a ? s.k : s.m, a_cols = trans_a ? s.m : s.k;
          const std::int64_t b_rows = trans_b ? s.n : s.k, b_cols = trans_b ? s.k : s.n;
          const std::int64_t lda = a_cols + 3, ldb = b_cols + 2, ldc = s.n + 1;
          const auto a = random_integers(a_rows * lda, -3, 3, 1);
          const auto b = random_integers(b_rows * ldb, -3, 3, 2);
          std::vector<float> c = random_integers(s.m * ldc, -5, 5, 3);
          for (std::int64_t i = 0; i < s.m; ++i) c[i * ldc + s.n] = kSentinel;
          const auto expected =
              naive_gemm(trans_a, trans_b, s.m, s.n, s.k, 2.0, a, lda, b, ldb, -1.0, c, ldc);
          cpu::gemm(trans_a, trans_b, s.m, s.n, s.k, 2.0f, a.data(), lda, b.data(), ldb, -1.0f,
                    c.data(), ldc);
          CHECK(c == expected);  // padding column included: it must still hold the sentinel
          CHECK(any_nonzero(c));
        }
      }
    }
  }
}

TEST_CASE("gemm with beta = 0 never reads C, and k = 0 scales C by beta") {
  const std::int64_t m = 3, n = 4, k = 5;
  const auto a = random_integers(m * k, -3, 3, 4);
  const auto b = random_integers(k * n, -3, 3, 5);
  std::vector<float> c(m * n, NAN);  // freshly allocated buffers hold garbage
  const auto expected = naive_gemm(false, false, m, n, k, 1.0, a, k, b, n, 0.0, c, n);
  cpu::gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
  CHECK(c == expected);

  std::vector<float> scaled = random_integers(m * n, -5, 5, 6);
  std::vector<float> doubled = scaled;
  for (float& v : doubled) v *= 2.0f;
  cpu::gemm(false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, 2.0f, scaled.data(), n);
  CHECK(scaled == doubled);
  std::vector<float> zeroed(m * n, NAN);
  cpu::gemm(false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, 0.0f, zeroed.data(), n);
  CHECK(zeroed == std::vector<float>(m * n, 0.0f));
  cpu::gemm(false, false, 0, n, k, 1.0f, nullptr, k, nullptr, n, 0.0f, nullptr, n);  // no-op
}

TEST_CASE("linear_forward computes x·wᵀ + bias and overwrites y") {
  const std::int64_t rows = 5, in = 7, out = 3;
  const auto x = random_integers(rows * in, -4, 4, 7);
  const auto w = random_integers(out * in, -4, 4, 8);
  const auto bias = random_integers(out, -9, 9, 9);
  for (bool with_bias : {true, false}) {
    DYNAMIC_SECTION("bias " << with_bias) {
      const float* b = with_bias ? bias.data() : nullptr;
      std::vector<float> y(rows * out, NAN);
      cpu::linear_forward(x.data(), w.data(), b, y.data(), rows, in, out);
      const auto expected = naive_linear(x.data(), w.data(), b, rows, in, out);
      CHECK(y == std::vector<float>(expected.begin(), expected.end()));
      CHECK(any_nonzero(y));
    }
  }
}

TEST_CASE("linear_backward overwrites dx and accumulates dw and dbias") {
  const std::int64_t rows = 5, in = 7, out = 3;
  const auto x = random_integers(rows * in, -4, 4, 10);
  const auto w = random_integers(out * in, -4, 4, 11);
  const auto dy = random_integers(rows * out, -4, 4, 12);
  const auto dw0 = random_integers(out * in, -9, 9, 13);
  const auto dbias0 = random_integers(out, -9, 9, 14);

  std::vector<float> dx_expected(rows * in), dw_expected = dw0, dbias_expected = dbias0;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < in; ++i) {
      double acc = 0.0;
      for (std::int64_t o = 0; o < out; ++o) acc += double(dy[r * out + o]) * w[o * in + i];
      dx_expected[r * in + i] = static_cast<float>(acc);
    }
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t i = 0; i < in; ++i) {
      double acc = dw0[o * in + i];
      for (std::int64_t r = 0; r < rows; ++r) acc += double(dy[r * out + o]) * x[r * in + i];
      dw_expected[o * in + i] = static_cast<float>(acc);
    }
    double acc = dbias0[o];
    for (std::int64_t r = 0; r < rows; ++r) acc += dy[r * out + o];
    dbias_expected[o] = static_cast<float>(acc);
  }

  SECTION("all gradients") {
    std::vector<float> dx(rows * in, NAN), dw = dw0, dbias = dbias0;
    cpu::linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), dbias.data(), rows,
                         in, out);
    CHECK(dx == dx_expected);
    CHECK(dw == dw_expected);
    CHECK(dbias == dbias_expected);
  }
  SECTION("null dx and dbias are skipped") {
    std::vector<float> dw = dw0;
    cpu::linear_backward(x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr, rows, in, out);
    CHECK(dw == dw_expected);
  }
  SECTION("zero rows touch nothing") {
    std::vector<float> dw = dw0, dbias = dbias0;
    cpu::linear_backward(nullptr, w.data(), nullptr, nullptr, dw.data(), dbias.data(), 0, in, out);
    CHECK(dw == dw0);
    CHECK(dbias == dbias0);
  }
}

TEST_CASE("grouped_linear matches one linear layer per group, including an empty group") {
  const std::int64_t in = 5, out = 3, groups = 4;
  const std::vector<std::int64_t> offsets = {0, 3, 3, 8, 9};  // group 1 has zero rows
  const std::int64_t rows = offsets.back();
  const auto x = random_integers(rows * in, -4, 4, 15);
  const auto w = random_integers(groups * out * in, -4, 4, 16);
  const auto bias = random_integers(groups * out, -9, 9, 17);
  const auto dy = random_integers(rows * out, -4, 4, 18);
  const auto dw0 = random_integers(groups * out * in, -9, 9, 19);
  const auto dbias0 = random_integers(groups * out, -9, 9, 20);

  std::vector<float> y_expected(rows * out), dx_expected(rows * in);
  std::vector<float> dw_expected = dw0, dbias_expected = dbias0;
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t begin = offsets[g], count = offsets[g + 1] - begin;
    const float* wg = w.data() + g * out * in;
    const auto yg = naive_linear(x.data() + begin * in, wg, bias.data() + g * out, count, in, out);
    for (std::int64_t i = 0; i < count * out; ++i) y_expected[begin * out + i] = float(yg[i]);
    for (std::int64_t r = begin; r < begin + count; ++r) {
      for (std::int64_t i = 0; i < in; ++i) {
        double acc = 0.0;
        for (std::int64_t o = 0; o < out; ++o) acc += double(dy[r * out + o]) * wg[o * in + i];
        dx_expected[r * in + i] = float(acc);
      }
      for (std::int64_t o = 0; o < out; ++o) {
        for (std::int64_t i = 0; i < in; ++i)
          dw_expected[(g * out + o) * in + i] += dy[r * out + o] * x[r * in + i];
        dbias_expected[g * out + o] += dy[r * out + o];
      }
    }
  }

  std::vector<float> y(rows * out, NAN);
  cpu::grouped_linear_forward(x.data(), offsets.data(), groups, w.data(), bias.data(), y.data(), in,
                              out);
  CHECK(y == y_expected);
  CHECK(any_nonzero(y));

  SECTION("all gradients") {
    std::vector<float> dx(rows * in, NAN), dw = dw0, dbias = dbias0;
    cpu::grouped_linear_backward(x.data(), offsets.data(), groups, w.data(), dy.data(), dx.data(),
                                 dw.data(), dbias.data(), in, out);
    CHECK(dx == dx_expected);
    CHECK(dw == dw_expected);
    CHECK(dbias == dbias_expected);
    // The empty group's gradients are exactly what they were.
    CHECK(std::vector<float>(dw.begin() + out * in, dw.begin() + 2 * out * in) ==
          std::vector<float>(dw0.begin() + out * in, dw0.begin() + 2 * out * in));
    CHECK(std::vector<float>(dbias.begin() + out, dbias.begin() + 2 * out) ==
          std::vector<float>(dbias0.begin() + out, dbias0.begin() + 2 * out));
  }
  SECTION("null dx and dbias are skipped") {
    std::vector<float> dw = dw0;
    cpu::grouped_linear_backward(x.data(), offsets.data(), groups, w.data(), dy.data(), nullptr,
                                 dw.data(), nullptr, in, out);
    CHECK(dw == dw_expected);
  }
}
