// Softmax cross-entropy over class logits, fused with its gradient.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// Mean over rows of −log softmax(logits[r])[targets[r]] (0 for rows = 0). Writes probs
// [rows, classes] (kept for the backward) and returns the mean loss. In all three functions a
// target outside [0, classes) throws std::out_of_range before any output is written.
float cross_entropy_forward(const float* logits, const std::int32_t* targets, float* probs,
                            std::int64_t rows, std::int64_t classes);
// dlogits = (probs − onehot(target)) · scale (overwrites); pass scale = dloss / rows for the mean.
void cross_entropy_backward(const float* probs, const std::int32_t* targets, float* dlogits,
                            std::int64_t rows, std::int64_t classes, float scale);
// Number of rows whose argmax equals the target (ties pick the lowest index).
std::int64_t count_correct(const float* logits, const std::int32_t* targets, std::int64_t rows,
                           std::int64_t classes);

}  // namespace troupe::cpu
