// Embedding lookup and its scatter-add backward on the GPU against the CPU twins
// (kernels/cpu/embedding.hpp). Tolerance: bit for bit. The forward is a copy (fp32 and bf16); the
// backward adds each id's gradient rows in index order on both sides (a stable sort on the GPU), so
// it is the same sequence of fp32 additions. Shapes: heavily repeated ids (one id a third of the
// batch), ids never used, a width that is not a multiple of the block, and an empty batch.
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cuda/embedding.hpp"
#include "kernels/cpu/embedding.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

std::vector<std::int32_t> skewed_ids(std::int64_t count, std::int64_t vocab, std::mt19937_64& rng) {
  std::vector<std::int32_t> ids(count);
  for (auto& id : ids)
    id = static_cast<std::int32_t>(rng() % 3 == 0 ? 7 % vocab : rng() % (vocab / 2 + 1));
  return ids;
}

void matches(std::int64_t count, std::int64_t vocab, std::int64_t dim) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(count + vocab + dim));
  const auto ids = skewed_ids(count, vocab, rng);
  const auto table = gpu_test::random_floats(vocab * dim, rng);
  const auto dout = gpu_test::random_floats(count * dim, rng);
  auto dtable = gpu_test::random_floats(vocab * dim, rng);
  std::vector<float> out(count * dim);
  cpu::embedding_forward(ids.data(), table.data(), out.data(), count, vocab, dim);
  DeviceBuffer<std::int32_t> d_ids(ids);
  DeviceBuffer<float> d_table(table), d_out(count * dim), d_dout(dout), d_dtable(dtable);
  cuda::embedding_forward(DType::f32, d_ids.get(), d_table.get(), d_out.get(), count, vocab, dim,
                          nullptr);
  if (count > 0) GPU_CHECK(gpu_test::bit_mismatches(d_out.download(), out, "out") == 0);
  // bf16: the same rows, bit for bit.
  DeviceBuffer<std::uint16_t> d_table16(gpu_test::to_bf16(table)), d_out16(count * dim);
  cuda::embedding_forward(DType::bf16, d_ids.get(), d_table16.get(), d_out16.get(), count, vocab,
                          dim, nullptr);
  if (count > 0)
    GPU_CHECK(gpu_test::bit_mismatches(gpu_test::from_bf16(d_out16.download()),
                                       gpu_test::round_bf16(out), "out bf16") == 0);
  cpu::embedding_backward(ids.data(), dout.data(), dtable.data(), count, dim);
  const std::size_t bytes = cuda::embedding_backward_workspace_bytes(count);
  DeviceBuffer<char> workspace(bytes);
  cuda::embedding_backward(d_ids.get(), d_dout.get(), d_dtable.get(), count, vocab, dim,
                           workspace.get(), bytes, nullptr);
  GPU_CHECK(gpu_test::bit_mismatches(d_dtable.download(), dtable, "dtable") == 0);
}

void bad_id_is_nan_and_skipped() {
  const std::vector<float> table = {1.0f, 2.0f, 3.0f, 4.0f};  // vocab 2, dim 2
  DeviceBuffer<std::int32_t> d_ids(std::vector<std::int32_t>{1, 2, -1});
  DeviceBuffer<float> d_table(table), d_out(6), d_dout(std::vector<float>(6, 1.0f));
  cuda::embedding_forward(DType::f32, d_ids.get(), d_table.get(), d_out.get(), 3, 2, 2, nullptr);
  const auto out = d_out.download();
  GPU_CHECK(out[0] == 3.0f && out[1] == 4.0f && std::isnan(out[2]) && std::isnan(out[5]));
  const std::size_t bytes = cuda::embedding_backward_workspace_bytes(3);
  DeviceBuffer<char> workspace(bytes);
  cuda::embedding_backward(d_ids.get(), d_dout.get(), d_table.get(), 3, 2, 2, workspace.get(),
                           bytes, nullptr);
  GPU_CHECK((d_table.download() == std::vector<float>{1.0f, 2.0f, 4.0f, 5.0f}));
}

}  // namespace

int main() {
  return gpu_test::run({
      {"embedding: 1000 ids over 50 rows, dim 67", [] { matches(1000, 50, 67); }},
      {"embedding: 4096 ids over 50257 rows, dim 300", [] { matches(4096, 50257, 300); }},
      {"embedding: one id, dim 1", [] { matches(1, 3, 1); }},
      {"embedding: empty batch", [] { matches(0, 5, 8); }},
      {"embedding: ids outside [0, vocab) give NaN rows and are skipped",
       bad_id_is_nan_and_skipped},
  });
}
