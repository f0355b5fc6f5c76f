// CUDA twins of kernels/cpu/embedding.hpp, declared without CUDA headers (`stream` is a cudaStream_t):
// the lookup, and a deterministic scatter-add backward that matches the CPU bit for bit.
//
// Backward: the CPU adds dout rows into dtable in index order. Here the ids are sorted stably
// (cub radix sort of (id, position) pairs), and one block per distinct id adds that id's dout rows
// in position order, one thread per column, starting from the existing dtable row: the same float
// additions in the same order, with no atomics, so the result is the CPU's and the same on every
// run.
//
// The device cannot throw for a bad id without a host synchronisation: in the forward an id outside
// [0, vocab) yields a row of NaN, in the backward it is skipped; nothing is accessed out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>

#include "memory/dtype.hpp"

namespace troupe::cuda {

// out[i, :] = table[ids[i], :]; table and out are `dtype` (f32 or bf16: a copy either way).
void embedding_forward(DType dtype, const std::int32_t* ids, const void* table, void* out,
                       std::int64_t count, std::int64_t vocab, std::int64_t dim, void* stream);

// Device scratch embedding_backward needs for `count` ids.
std::size_t embedding_backward_workspace_bytes(std::int64_t count);
// dtable[ids[i], :] += dout[i, :] (fp32), added in index order for every row of dtable.
void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable,
                        std::int64_t count, std::int64_t vocab, std::int64_t dim, void* workspace,
                        std::size_t workspace_bytes, void* stream);

}  // namespace troupe::cuda
