// CUDA twins of kernels/cpu/loss.hpp: softmax cross-entropy forward and backward, and the count of
// correct predictions, declared without CUDA headers (`stream` is a cudaStream_t). Nothing here
// synchronises with the host: the loss and the count are written to device memory.
//
// logits and dlogits are `dtype` (f32 or bf16); everything is computed in fp32 (the row terms and
// their mean in double), and the saved probabilities and the loss are always fp32. The overloads
// without a dtype are the f32 ones.
//
// The device cannot throw for a bad target without a host synchronisation, so a target outside
// [0, classes) makes that row's loss NaN (and so the mean), fills that row of dlogits with NaN, and
// never counts as correct; nothing is read or written out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>

#include "memory/dtype.hpp"

namespace troupe::cuda {

// Device scratch for cross_entropy_forward (one double per row).
std::size_t cross_entropy_workspace_bytes(std::int64_t rows);

// *loss (device) = mean over rows of −log softmax(logits[r])[targets[r]] (0 for rows = 0); probs
// [rows, classes] kept for the backward. The per-row terms are summed in double in a fixed order
// (deterministic).
void cross_entropy_forward(const float* logits, const std::int32_t* targets, float* probs,
                           float* loss, std::int64_t rows, std::int64_t classes, void* workspace,
                           void* stream);
// dlogits = (probs − onehot(target)) · scale, overwritten; bit for bit the CPU's.
void cross_entropy_backward(const float* probs, const std::int32_t* targets, float* dlogits,
                            std::int64_t rows, std::int64_t classes, float scale, void* stream);
// *correct (device, overwritten) = rows whose argmax (lowest index among ties) equals the target.
void count_correct(const float* logits, const std::int32_t* targets, std::int64_t rows,
                   std::int64_t classes, std::int64_t* correct, void* stream);

// The same for `dtype` logits / dlogits (f32 or bf16; std::invalid_argument otherwise). probs and
// the loss stay fp32; dlogits is rounded once to bf16 from the fp32 value.
void cross_entropy_forward(DType dtype, const void* logits, const std::int32_t* targets,
                           float* probs, float* loss, std::int64_t rows, std::int64_t classes,
                           void* workspace, void* stream);
void cross_entropy_backward(DType dtype, const float* probs, const std::int32_t* targets,
                            void* dlogits, std::int64_t rows, std::int64_t classes, float scale,
                            void* stream);
void count_correct(DType dtype, const void* logits, const std::int32_t* targets, std::int64_t rows,
                   std::int64_t classes, std::int64_t* correct, void* stream);

}  // namespace troupe::cuda
