// CPU softmax cross-entropy (see loss.hpp). The probabilities come from softmax_forward; the
// per-row loss is then logsumexp − logit[target], read off the argmax entry: that entry's
// probability is exactly 1 / Σ exp(logit − max), and it is ≥ 1/classes, so unlike
// −log(prob[target]) it never underflows into an infinite loss for a confidently wrong row.
#include "kernels/cpu/loss.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cpu/softmax.hpp"

namespace troupe::cpu {
namespace {

// Checked before anything is written, so a bad batch leaves the outputs untouched.
void check_targets(const char* function, const std::int32_t* targets, std::int64_t rows,
                   std::int64_t classes) {
  for (std::int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0 || targets[r] >= classes) {
      throw std::out_of_range(std::string(function) + ": targets[" + std::to_string(r) +
                              "] = " + std::to_string(targets[r]) +
                              " is outside [0, classes = " + std::to_string(classes) + ")");
    }
  }
}

// Lowest index among the largest entries.
std::int64_t argmax(const float* row, std::int64_t classes) {
  std::int64_t best = 0;
  for (std::int64_t c = 1; c < classes; ++c) best = row[c] > row[best] ? c : best;
  return best;
}

}  // namespace

float cross_entropy_forward(const float* logits, const std::int32_t* targets, float* probs,
                            std::int64_t rows, std::int64_t classes) {
  check_targets("cross_entropy_forward", targets, rows, classes);
  if (rows == 0) return 0.0f;
  softmax_forward(logits, probs, rows, classes);
  double loss_sum = 0.0;  // a mean over many rows must not lose the small per-row terms
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* lr = logits + r * classes;
    const std::int64_t top = argmax(lr, classes);
    loss_sum += static_cast<double>(lr[top]) - static_cast<double>(lr[targets[r]]) -
                std::log(static_cast<double>(probs[r * classes + top]));
  }
  return static_cast<float>(loss_sum / static_cast<double>(rows));
}

void cross_entropy_backward(const float* probs, const std::int32_t* targets, float* dlogits,
                            std::int64_t rows, std::int64_t classes, float scale) {
  check_targets("cross_entropy_backward", targets, rows, classes);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* pr = probs + r * classes;
    float* dr = dlogits + r * classes;
    for (std::int64_t c = 0; c < classes; ++c) dr[c] = pr[c] * scale;
    dr[targets[r]] -= scale;
  }
}

std::int64_t count_correct(const float* logits, const std::int32_t* targets, std::int64_t rows,
                           std::int64_t classes) {
  check_targets("count_correct", targets, rows, classes);
  std::int64_t correct = 0;
  for (std::int64_t r = 0; r < rows; ++r)
    correct += argmax(logits + r * classes, classes) == targets[r];
  return correct;
}

}  // namespace troupe::cpu
