// Embedding lookup and its deterministic backward on the GPU (see embedding.hpp).
#include <cuda_runtime.h>
#include <cub/device/device_radix_sort.cuh>

#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/embedding.hpp"

namespace troupe::cuda {
namespace {

constexpr int kThreads = 256;

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

// One block per output row (grid-stride); Word is the element's bit pattern.
template <class Word>
__global__ void embedding_forward_kernel(const std::int32_t* ids, const Word* table, Word* out,
                                         std::int64_t count, std::int64_t vocab, std::int64_t dim,
                                         Word nan) {
  for (std::int64_t i = blockIdx.x; i < count; i += gridDim.x) {
    const std::int32_t id = ids[i];
    const bool valid = id >= 0 && id < vocab;
    const Word* src = table + static_cast<std::int64_t>(valid ? id : 0) * dim;
    Word* dst = out + i * dim;
    for (std::int64_t c = threadIdx.x; c < dim; c += blockDim.x) dst[c] = valid ? src[c] : nan;
  }
}

__global__ void iota_kernel(std::int32_t* v, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    v[i] = static_cast<std::int32_t>(i);
}

// Block j handles sorted entry j if it starts a run of equal ids: it adds the run's dout rows, in
// position order (the sort is stable), to that id's dtable row.
__global__ void embedding_backward_kernel(const std::int32_t* sorted_ids,
                                          const std::int32_t* positions, const float* dout,
                                          float* dtable, std::int64_t count, std::int64_t vocab,
                                          std::int64_t dim) {
  for (std::int64_t j = blockIdx.x; j < count; j += gridDim.x) {
    const std::int32_t id = sorted_ids[j];
    if ((j > 0 && sorted_ids[j - 1] == id) || id < 0 || id >= vocab) continue;
    std::int64_t end = j + 1;
    while (end < count && sorted_ids[end] == id) ++end;
    float* row = dtable + static_cast<std::int64_t>(id) * dim;
    for (std::int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
      float acc = row[c];
      for (std::int64_t p = j; p < end; ++p)
        acc = __fadd_rn(acc, dout[static_cast<std::int64_t>(positions[p]) * dim + c]);
      row[c] = acc;
    }
  }
}

unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(n < 65535 * 16 ? (n > 0 ? n : 1) : 65535 * 16);
}

std::size_t align_up(std::size_t n) {
  return (n + 255) / 256 * 256;
}

std::size_t sort_bytes(std::int64_t count) {
  std::size_t bytes = 0;
  TROUPE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const std::int32_t*>(nullptr),
      static_cast<std::int32_t*>(nullptr), static_cast<const std::int32_t*>(nullptr),
      static_cast<std::int32_t*>(nullptr), static_cast<int>(count)));
  return bytes;
}

void check(const char* function, std::int64_t count, std::int64_t vocab, std::int64_t dim) {
  if (count < 0 || vocab < 0 || dim < 0 || count > INT32_MAX)
    throw std::invalid_argument(std::string(function) + ": count = " + std::to_string(count) +
                                ", vocab = " + std::to_string(vocab) + ", dim = " +
                                std::to_string(dim) + " (none negative, count ≤ INT32_MAX)");
}

}  // namespace

void embedding_forward(DType dtype, const std::int32_t* ids, const void* table, void* out,
                       std::int64_t count, std::int64_t vocab, std::int64_t dim, void* stream) {
  check("cuda::embedding_forward", count, vocab, dim);
  if (count == 0 || dim == 0) return;
  if (dtype == DType::f32) {
    embedding_forward_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(
        ids, static_cast<const std::uint32_t*>(table), static_cast<std::uint32_t*>(out), count,
        vocab, dim, 0x7fc00000u);
  } else if (dtype == DType::bf16) {
    embedding_forward_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(
        ids, static_cast<const std::uint16_t*>(table), static_cast<std::uint16_t*>(out), count,
        vocab, dim, static_cast<std::uint16_t>(0x7fc0u));
  } else {
    throw std::invalid_argument("cuda::embedding_forward: dtype " + std::string(dtype_name(dtype)) +
                                " not supported (f32 or bf16)");
  }
  TROUPE_CUDA_CHECK_LAUNCH();
}

std::size_t embedding_backward_workspace_bytes(std::int64_t count) {
  check("cuda::embedding_backward_workspace_bytes", count, 0, 0);
  const std::size_t ids = align_up(static_cast<std::size_t>(count) * sizeof(std::int32_t));
  return 3 * ids + align_up(sort_bytes(count));
}

void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable,
                        std::int64_t count, std::int64_t vocab, std::int64_t dim, void* workspace,
                        std::size_t workspace_bytes, void* stream) {
  check("cuda::embedding_backward", count, vocab, dim);
  if (count == 0 || dim == 0) return;
  const std::size_t needed = embedding_backward_workspace_bytes(count);
  if (workspace_bytes < needed)
    throw std::invalid_argument(
        "cuda::embedding_backward: workspace of " + std::to_string(workspace_bytes) +
        " bytes, needs " + std::to_string(needed) + " (embedding_backward_workspace_bytes(count))");
  const std::size_t ids_bytes = align_up(static_cast<std::size_t>(count) * sizeof(std::int32_t));
  auto* base = static_cast<char*>(workspace);
  auto* sorted_ids = reinterpret_cast<std::int32_t*>(base);
  auto* positions_in = reinterpret_cast<std::int32_t*>(base + ids_bytes);
  auto* positions = reinterpret_cast<std::int32_t*>(base + 2 * ids_bytes);
  void* temp = base + 3 * ids_bytes;
  std::size_t temp_bytes = workspace_bytes - 3 * ids_bytes;
  const cudaStream_t s = as_stream(stream);
  iota_kernel<<<blocks_for((count + kThreads - 1) / kThreads), kThreads, 0, s>>>(positions_in,
                                                                                 count);
  TROUPE_CUDA_CHECK_LAUNCH();
  TROUPE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, sorted_ids, positions_in,
                                                    positions, static_cast<int>(count), 0, 32, s));
  embedding_backward_kernel<<<blocks_for(count), kThreads, 0, s>>>(sorted_ids, positions, dout,
                                                                   dtable, count, vocab, dim);
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace troupe::cuda
