// Token embedding lookup: out[i, :] = table[ids[i], :], and the scatter-add backward.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// ids outside [0, vocab) throw std::out_of_range.
void embedding_forward(const std::int32_t* ids, const float* table, float* out, std::int64_t count,
                       std::int64_t vocab, std::int64_t dim);
// dtable[ids[i], :] += dout[i, :] in index order (deterministic).
void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable,
                        std::int64_t count, std::int64_t dim);

}  // namespace troupe::cpu
