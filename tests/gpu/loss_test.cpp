// Softmax cross-entropy and count_correct on the GPU against the CPU twins (kernels/cpu/loss.hpp).
// Tolerances:
//   - probs: each is exp(x − max) / Σ, the sum a reduction of length `classes`: normalised mse
//     within gpu_test::reduction_bound(classes) (k·ε, derived in gpu_test.hpp).
//   - the loss: per row max − x[t] + log Σ, so the sum's relative error becomes an absolute error
//     of the same size in each row's term; the same bound on the scalar's normalised error.
//   - dlogits: bit for bit (fed the CPU's probs: one product and one subtraction per element).
//   - count_correct: exact (ties at the maximum go to the lowest index on both sides).
//   - bf16 (logits rounded to bf16 on both sides first, so both compute on the same values; probs
//     and the loss stay fp32, dlogits are bf16): normalised mse ≤ 2^-8 for probs, the loss and
//     dlogits, the bound for bf16. It is loose here: given equal inputs the only bf16 error
//     is dlogits' final rounding (relative 2^-9 per element, so about 2^-18 normalised), and probs
//     and the loss carry only the fp32 reduction error above. count_correct stays exact (argmax of
//     the same values, ties to the lowest index).
// Shapes: one class, a width below the block, one above it and not a multiple of it; rows with
// tied maxima and a confidently wrong row (logit gap 200: −log p would underflow).
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cpu/loss.hpp"
#include "kernels/cuda/loss.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

void matches(std::int64_t rows, std::int64_t classes) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(rows * 1000 + classes));
  auto logits = gpu_test::random_floats(rows * classes, rng, 3.0f);
  std::vector<std::int32_t> targets(rows);
  for (auto& t : targets) t = static_cast<std::int32_t>(rng() % classes);
  if (rows > 2 && classes > 3) {
    for (std::int64_t c = 0; c < classes; ++c) logits[c] = c % 3 == 1 ? 5.0f : 0.0f;  // ties
    logits[classes + targets[1]] = -100.0f;
    logits[classes + (targets[1] + 1) % classes] = 100.0f;  // confidently wrong
  }
  std::vector<float> probs(rows * classes), dlogits(rows * classes);
  const float loss =
      cpu::cross_entropy_forward(logits.data(), targets.data(), probs.data(), rows, classes);
  const float scale = rows ? 1.0f / static_cast<float>(rows) : 1.0f;
  cpu::cross_entropy_backward(probs.data(), targets.data(), dlogits.data(), rows, classes, scale);
  const std::int64_t correct = cpu::count_correct(logits.data(), targets.data(), rows, classes);

  DeviceBuffer<float> d_logits(logits), d_probs(rows * classes), d_loss(1),
      d_dlogits(rows * classes);
  DeviceBuffer<std::int32_t> d_targets(targets);
  DeviceBuffer<std::int64_t> d_correct(1);
  DeviceBuffer<char> workspace(cuda::cross_entropy_workspace_bytes(rows));
  cuda::cross_entropy_forward(d_logits.get(), d_targets.get(), d_probs.get(), d_loss.get(), rows,
                              classes, workspace.get(), nullptr);
  cuda::count_correct(d_logits.get(), d_targets.get(), rows, classes, d_correct.get(), nullptr);
  const double bound = gpu_test::reduction_bound(static_cast<double>(classes));
  const double e_probs = gpu_test::normalized_mse(probs, d_probs.download());
  const double e_loss = gpu_test::normalized_mse({loss}, d_loss.download());
  GPU_CHECK_MSG(e_probs <= bound, "rows=%lld classes=%lld probs %g > %g",
                static_cast<long long>(rows), static_cast<long long>(classes), e_probs, bound);
  GPU_CHECK_MSG(e_loss <= bound, "rows=%lld classes=%lld loss cpu %.9g gpu %.9g",
                static_cast<long long>(rows), static_cast<long long>(classes), loss,
                d_loss.download()[0]);
  GPU_CHECK_MSG(std::isfinite(d_loss.download()[0]), "loss not finite");
  GPU_CHECK_MSG(d_correct.download()[0] == correct, "count_correct gpu %lld cpu %lld",
                static_cast<long long>(d_correct.download()[0]), static_cast<long long>(correct));
  d_probs.upload(probs);
  cuda::cross_entropy_backward(d_probs.get(), d_targets.get(), d_dlogits.get(), rows, classes,
                               scale, nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(d_dlogits.download(), dlogits, "dlogits") == 0);
}

void matches_bf16(std::int64_t rows, std::int64_t classes) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(rows * 1000 + classes + 7));
  auto raw = gpu_test::random_floats(rows * classes, rng, 3.0f);
  std::vector<std::int32_t> targets(rows);
  for (auto& t : targets) t = static_cast<std::int32_t>(rng() % classes);
  if (rows > 2 && classes > 3) {
    for (std::int64_t c = 0; c < classes; ++c) raw[c] = c % 3 == 1 ? 5.0f : 0.0f;  // ties
    raw[classes + targets[1]] = -100.0f;
    raw[classes + (targets[1] + 1) % classes] = 100.0f;  // confidently wrong
  }
  const auto logits = gpu_test::round_bf16(raw);
  std::vector<float> probs(rows * classes), dlogits(rows * classes);
  const float loss =
      cpu::cross_entropy_forward(logits.data(), targets.data(), probs.data(), rows, classes);
  const float scale = rows ? 1.0f / static_cast<float>(rows) : 1.0f;
  cpu::cross_entropy_backward(probs.data(), targets.data(), dlogits.data(), rows, classes, scale);
  const std::int64_t correct = cpu::count_correct(logits.data(), targets.data(), rows, classes);

  DeviceBuffer<std::uint16_t> d_logits(gpu_test::to_bf16(logits)), d_dlogits(rows * classes);
  DeviceBuffer<float> d_probs(rows * classes), d_loss(1);
  DeviceBuffer<std::int32_t> d_targets(targets);
  DeviceBuffer<std::int64_t> d_correct(1);
  DeviceBuffer<char> workspace(cuda::cross_entropy_workspace_bytes(rows));
  cuda::cross_entropy_forward(DType::bf16, d_logits.get(), d_targets.get(), d_probs.get(),
                              d_loss.get(), rows, classes, workspace.get(), nullptr);
  cuda::count_correct(DType::bf16, d_logits.get(), d_targets.get(), rows, classes, d_correct.get(),
                      nullptr);
  const double bound = std::ldexp(1.0, -8);
  const double e_probs = gpu_test::normalized_mse(probs, d_probs.download());
  const double e_loss = gpu_test::normalized_mse({loss}, d_loss.download());
  GPU_CHECK_MSG(e_probs <= bound, "bf16 rows=%lld classes=%lld probs %g > %g",
                static_cast<long long>(rows), static_cast<long long>(classes), e_probs, bound);
  GPU_CHECK_MSG(e_loss <= bound, "bf16 rows=%lld classes=%lld loss cpu %.9g gpu %.9g",
                static_cast<long long>(rows), static_cast<long long>(classes), loss,
                d_loss.download()[0]);
  GPU_CHECK_MSG(std::isfinite(d_loss.download()[0]), "loss not finite");
  GPU_CHECK_MSG(d_correct.download()[0] == correct, "bf16 count_correct gpu %lld cpu %lld",
                static_cast<long long>(d_correct.download()[0]), static_cast<long long>(correct));
  d_probs.upload(probs);
  cuda::cross_entropy_backward(DType::bf16, d_probs.get(), d_targets.get(), d_dlogits.get(), rows,
                               classes, scale, nullptr);
  const double e_d = gpu_test::normalized_mse(dlogits, gpu_test::from_bf16(d_dlogits.download()));
  GPU_CHECK_MSG(e_d <= bound, "bf16 dlogits %g > %g", e_d, bound);
  std::printf("    bf16 rows=%lld classes=%lld: probs %.3g, loss %.3g, dlogits %.3g (bound %.3g)\n",
              static_cast<long long>(rows), static_cast<long long>(classes), e_probs, e_loss, e_d,
              bound);
}

void bad_target_is_nan() {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  DeviceBuffer<float> d_logits(logits), d_probs(6), d_loss(1), d_dlogits(6);
  DeviceBuffer<std::int32_t> d_targets(std::vector<std::int32_t>{1, 3});  // 3 ≥ classes
  DeviceBuffer<char> workspace(cuda::cross_entropy_workspace_bytes(2));
  cuda::cross_entropy_forward(d_logits.get(), d_targets.get(), d_probs.get(), d_loss.get(), 2, 3,
                              workspace.get(), nullptr);
  cuda::cross_entropy_backward(d_probs.get(), d_targets.get(), d_dlogits.get(), 2, 3, 0.5f,
                               nullptr);
  GPU_CHECK(std::isnan(d_loss.download()[0]));
  const auto d = d_dlogits.download();
  GPU_CHECK(std::isfinite(d[0]) && std::isnan(d[3]) && std::isnan(d[5]));
}

}  // namespace

int main() {
  return gpu_test::run({
      {"cross-entropy: 1 class", [] { matches(17, 1); }},
      {"cross-entropy: 10 classes, ties and a confidently wrong row", [] { matches(64, 10); }},
      {"cross-entropy: 1001 classes", [] { matches(33, 1001); }},
      {"cross-entropy: 50257 classes", [] { matches(4, 50257); }},
      {"cross-entropy: no rows (loss 0)", [] { matches(0, 7); }},
      {"cross-entropy bf16: 10 classes, ties and a confidently wrong row",
       [] { matches_bf16(64, 10); }},
      {"cross-entropy bf16: 1001 classes", [] { matches_bf16(33, 1001); }},
      {"cross-entropy bf16: 50257 classes", [] { matches_bf16(4, 50257); }},
      {"cross-entropy bf16: no rows (loss 0)", [] { matches_bf16(0, 7); }},
      {"cross-entropy: a target outside [0, classes) gives NaN, no stray access",
       bad_target_is_nan},
  });
}
