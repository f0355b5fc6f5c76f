// Embedding lookup copies table rows exactly; the backward scatter-adds, accumulating repeated ids,
// and matches central differences of the lookup; bad ids throw before anything is written.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/embedding.hpp"

using namespace troupe;

namespace {

constexpr std::int64_t kVocab = 7, kDim = 5;

}  // namespace

TEST_CASE("embedding_forward copies the rows named by ids") {
  const std::vector<std::int32_t> ids = {3, 0, 6, 3, 1};
  const auto count = static_cast<std::int64_t>(ids.size());
  const auto table = test::random_floats(kVocab * kDim, -1.0f, 1.0f, 1);
  std::vector<float> out(count * kDim, NAN);
  cpu::embedding_forward(ids.data(), table.data(), out.data(), count, kVocab, kDim);
  for (std::int64_t i = 0; i < count; ++i)
    for (std::int64_t c = 0; c < kDim; ++c) CHECK(out[i * kDim + c] == table[ids[i] * kDim + c]);
}

TEST_CASE("embedding_forward throws std::out_of_range on a bad id and writes nothing") {
  const auto table = test::random_floats(kVocab * kDim, -1.0f, 1.0f, 2);
  for (std::int32_t bad : {-1, static_cast<std::int32_t>(kVocab)}) {
    const std::vector<std::int32_t> ids = {0, bad};
    std::vector<float> out(2 * kDim, 7.0f);
    CHECK_THROWS_AS(cpu::embedding_forward(ids.data(), table.data(), out.data(), 2, kVocab, kDim),
                    std::out_of_range);
    CHECK(out == std::vector<float>(2 * kDim, 7.0f));
  }
}

TEST_CASE("embedding_backward accumulates repeated ids and matches central differences") {
  const std::vector<std::int32_t> ids = {2, 5, 2, 0, 2};  // id 2 three times; 1, 3, 4, 6 unused
  const auto count = static_cast<std::int64_t>(ids.size());
  const auto table = test::random_floats(kVocab * kDim, -1.0f, 1.0f, 3);
  const auto dout = test::random_floats(count * kDim, -1.0f, 1.0f, 4);
  const auto dtable0 = test::random_floats(kVocab * kDim, -1.0f, 1.0f, 5);

  std::vector<float> dtable = dtable0;
  cpu::embedding_backward(ids.data(), dout.data(), dtable.data(), count, kDim);

  // Hand-derived: row 2 gets dout rows 0, 2 and 4 added, in that order.
  for (std::int64_t c = 0; c < kDim; ++c) {
    CHECK(dtable[2 * kDim + c] ==
          ((dtable0[2 * kDim + c] + dout[0 * kDim + c]) + dout[2 * kDim + c]) + dout[4 * kDim + c]);
    CHECK(dtable[1 * kDim + c] == dtable0[1 * kDim + c]);
  }

  const auto loss = [&](const std::vector<double>& t) {
    double total = 0.0;
    for (std::int64_t i = 0; i < count; ++i)
      for (std::int64_t c = 0; c < kDim; ++c) total += dout[i * kDim + c] * t[ids[i] * kDim + c];
    return total;
  };
  auto expected = test::central_difference(loss, test::to_double(table));
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += dtable0[i];
  // L is linear in the table, so the differences are exact up to double rounding; what remains is
  // fp32 rounding of at most three additions of values ≤ 2 (ulp(2)/2 ≈ 1.2e-7 each).
  test::check_close(dtable, expected, 5e-7);
}

TEST_CASE("embedding_backward throws std::out_of_range on a negative id") {
  const std::vector<std::int32_t> ids = {1, -3};
  const std::vector<float> dout(2 * kDim, 1.0f);
  std::vector<float> dtable(kVocab * kDim, 0.0f);
  CHECK_THROWS_AS(cpu::embedding_backward(ids.data(), dout.data(), dtable.data(), 2, kDim),
                  std::out_of_range);
  CHECK(dtable == std::vector<float>(kVocab * kDim, 0.0f));
}
