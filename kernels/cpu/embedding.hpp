// Token embedding lookup: out[i, :] = table[ids[i], :], and the scatter-add backward.
#pragma once

#include <cstdint>

namespace troupe::cpu {

// ids outside [0, vocab) throw std::out_of_range before anything is written.
void embedding_forward(const std::int32_t* ids, const float* table, float* out, std::int64_t count,
                       std::int64_t vocab, std::int64_t dim);
// dtable[ids[i], :] += dout[i, :] in index order (deterministic). Without vocab only negative ids
// can be caught here (std::out_of_range); the ids are meant to be the ones the forward checked.
void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable,
                        std::int64_t count, std::int64_t dim);

}  // namespace troupe::cpu
