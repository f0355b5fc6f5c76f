// Softmax cross-entropy against a double-precision log-sum-exp reference, its gradient against
// central differences of that reference, count_correct on hand-made ties, and target checking.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/cpu/loss.hpp"

using namespace troupe;
using test::check_close;

namespace {

constexpr std::int64_t kRows = 7, kClasses = 10;

// Mean over rows of logsumexp(row) − row[target]; fills probs when given.
double reference_loss(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                      std::int64_t rows, std::int64_t classes,
                      std::vector<double>* probs = nullptr) {
  double total = 0.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* row = logits.data() + r * classes;
    const double row_max = *std::max_element(row, row + classes);
    double sum = 0.0;
    for (std::int64_t c = 0; c < classes; ++c) sum += std::exp(row[c] - row_max);
    total += row_max + std::log(sum) - row[targets[r]];
    if (probs) {
      for (std::int64_t c = 0; c < classes; ++c)
        (*probs)[r * classes + c] = std::exp(row[c] - row_max) / sum;
    }
  }
  return total / double(rows);
}

}  // namespace

TEST_CASE("cross_entropy_forward matches log-sum-exp and backward matches finite differences") {
  const auto logits = test::random_floats(kRows * kClasses, -4.0f, 4.0f, 1);
  const std::vector<std::int32_t> targets = {0, 9, 3, 3, 5, 1, 8};
  std::vector<float> probs(logits.size(), NAN);
  const float loss =
      cpu::cross_entropy_forward(logits.data(), targets.data(), probs.data(), kRows, kClasses);

  std::vector<double> probs_expected(logits.size());
  const double loss_expected =
      reference_loss(test::to_double(logits), targets, kRows, kClasses, &probs_expected);
  // The loss is O(3): a few fp32 roundings (exp, the row sum, the final cast) ≈ 1e-6 relative.
  CHECK(loss == Approx(loss_expected).epsilon(1e-6));
  // Probabilities come from softmax_forward: (classes + 2)·2^-24 ≈ 7e-7 relative at worst.
  check_close(probs, probs_expected, 1e-9, 1e-6);

  const float dloss = 1.7f;  // an upstream gradient other than 1, to see that scale is applied
  const auto expected = test::central_difference(
      [&](const std::vector<double>& v) {
        return dloss * reference_loss(v, targets, kRows, kClasses);
      },
      test::to_double(logits));
  std::vector<float> dlogits(logits.size(), NAN);
  cpu::cross_entropy_backward(probs.data(), targets.data(), dlogits.data(), kRows, kClasses,
                              dloss / float(kRows));
  // (p − onehot)·scale with |scale| ≈ 0.24: p's 7e-7 relative error (≤ 1.7e-7 absolute after
  // scaling), the cancellation p − 1 at the target and two fp32 roundings.
  check_close(dlogits, expected, 2e-7, 2e-6);
}

TEST_CASE("cross entropy stays finite for a confidently wrong row") {
  const std::vector<float> logits = {1000.0f, 0.0f, -1000.0f};
  const std::vector<std::int32_t> targets = {2};
  std::vector<float> probs(3);
  const float loss = cpu::cross_entropy_forward(logits.data(), targets.data(), probs.data(), 1, 3);
  // logsumexp = 1000 + log(1 + e^-1000 + e^-2000) = 1000 in any precision; minus −1000.
  CHECK(loss == 2000.0f);
  CHECK(probs == std::vector<float>{1.0f, 0.0f, 0.0f});
}

TEST_CASE("cross entropy of zero rows is 0") {
  CHECK(cpu::cross_entropy_forward(nullptr, nullptr, nullptr, 0, kClasses) == 0.0f);
}

TEST_CASE("count_correct compares the argmax, ties going to the lowest index") {
  const std::vector<float> logits = {
      0.1f,  0.9f,  0.3f,   // argmax 1
      0.5f,  0.5f,  0.2f,   // tie between 0 and 1: 0
      0.2f,  0.7f,  0.7f,   // tie between 1 and 2: 1
      -3.0f, -2.0f, -1.0f,  // argmax 2
  };
  const std::vector<std::int32_t> targets = {1, 1, 1, 0};  // right, wrong, right, wrong
  CHECK(cpu::count_correct(logits.data(), targets.data(), 4, 3) == 2);
  const std::vector<std::int32_t> all_right = {1, 0, 1, 2};
  CHECK(cpu::count_correct(logits.data(), all_right.data(), 4, 3) == 4);
}

TEST_CASE("targets outside [0, classes) throw std::out_of_range before anything is written") {
  const std::vector<float> logits = test::random_floats(2 * 3, -1.0f, 1.0f, 2);
  for (std::int32_t bad : {-1, 3}) {
    const std::vector<std::int32_t> targets = {0, bad};
    std::vector<float> out(6, 7.0f);
    CHECK_THROWS_AS(cpu::cross_entropy_forward(logits.data(), targets.data(), out.data(), 2, 3),
                    std::out_of_range);
    CHECK_THROWS_AS(
        cpu::cross_entropy_backward(logits.data(), targets.data(), out.data(), 2, 3, 1.0f),
        std::out_of_range);
    CHECK(out == std::vector<float>(6, 7.0f));
    CHECK_THROWS_AS(cpu::count_correct(logits.data(), targets.data(), 2, 3), std::out_of_range);
  }
}
