// Causal attention on the GPU against the CPU twin (kernels/cpu/attention.hpp), fp32.
// Tolerance: normalised mse within 4·(hs^1.5 + 2·T^1.5)²·ε². Each stage is a reduction with the
// k·ε error of gpu_test::reduction_bound: forward, the scores (k = hs), the softmax sum (k = T) and
// att·V (k = T); backward, with the CPU's att fed to both sides, dV (k = T), or dP (k = hs), the
// softmax-backward row sum (k = T) and dQ / dK (k = T). A relative error δ in the scores (which
// are O(1) here) moves the softmax output by about δ relative, so the stages' relative errors add
// along the longest chain: hs^1.5·ε + 2·T^1.5·ε per side; the factor 4 covers both sides.
// bf16 (qkv and dout rounded to bf16 on both sides first; out and dqkv bf16, att fp32): normalised
// mse ≤ 2^-8, the bound for bf16. Given equal inputs, the GPU's extra error is the bf16
// rounding of att and dpre before the GEMMs that read them and of out / dqkv after them, each a
// relative 2^-9 per element (about 2^-18 normalised); the fp32 reductions add less than that.
// Shapes: a single position, head sizes that are not multiples of 8, T above the 128-thread block.
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cuda/attention.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

void matches(const cpu::AttentionShape& s) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.batch * 7 + s.seq_len));
  const std::int64_t t_n = s.seq_len, c = s.channels, hs = c / s.heads;
  const auto qkv = gpu_test::random_floats(s.batch * t_n * 3 * c, rng);
  const auto dout = gpu_test::random_floats(s.batch * t_n * c, rng);
  std::vector<float> out(s.batch * t_n * c), att(s.batch * s.heads * t_n * t_n),
      dqkv(s.batch * t_n * 3 * c);
  cpu::attention_forward(s, qkv.data(), out.data(), att.data());
  cpu::attention_backward(s, qkv.data(), att.data(), dout.data(), dqkv.data());

  cuda::Blas blas(0);
  DeviceBuffer<float> d_qkv(qkv), d_out(out.size()), d_att(att.size()), d_dout(dout),
      d_dqkv(dqkv.size());
  DeviceBuffer<char> workspace(cuda::attention_workspace_bytes(s));
  cuda::attention_forward(blas, s, d_qkv.get(), d_out.get(), d_att.get(), nullptr);
  const double e =
      std::pow(static_cast<double>(hs), 1.5) + 2.0 * std::pow(static_cast<double>(t_n), 1.5);
  const double bound = 4.0 * e * e * std::ldexp(1.0, -48);
  const double e_out = gpu_test::normalized_mse(out, d_out.download());
  const double e_att = gpu_test::normalized_mse(att, d_att.download());
  GPU_CHECK_MSG(e_out <= bound, "B=%lld T=%lld C=%lld H=%lld out %g > %g",
                static_cast<long long>(s.batch), static_cast<long long>(t_n),
                static_cast<long long>(c), static_cast<long long>(s.heads), e_out, bound);
  GPU_CHECK_MSG(e_att <= bound, "att %g > %g", e_att, bound);
  // Exact zeros above the diagonal.
  const auto got_att = d_att.download();
  std::size_t nonzero = 0;
  for (std::int64_t m = 0; m < s.batch * s.heads; ++m)
    for (std::int64_t i = 0; i < t_n; ++i)
      for (std::int64_t j = i + 1; j < t_n; ++j)
        nonzero += got_att[(m * t_n + i) * t_n + j] != 0.0f;
  GPU_CHECK(nonzero == 0);
  d_att.upload(att);
  cuda::attention_backward(blas, s, d_qkv.get(), d_att.get(), d_dout.get(), d_dqkv.get(),
                           workspace.get(), nullptr);
  const double e_dqkv = gpu_test::normalized_mse(dqkv, d_dqkv.download());
  GPU_CHECK_MSG(e_dqkv <= bound, "dqkv %g > %g", e_dqkv, bound);
}

void matches_bf16(const cpu::AttentionShape& s) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.batch * 7 + s.seq_len + 1));
  const std::int64_t t_n = s.seq_len, c = s.channels;
  const auto qkv = gpu_test::round_bf16(gpu_test::random_floats(s.batch * t_n * 3 * c, rng));
  const auto dout = gpu_test::round_bf16(gpu_test::random_floats(s.batch * t_n * c, rng));
  std::vector<float> out(s.batch * t_n * c), att(s.batch * s.heads * t_n * t_n),
      dqkv(s.batch * t_n * 3 * c);
  cpu::attention_forward(s, qkv.data(), out.data(), att.data());
  cpu::attention_backward(s, qkv.data(), att.data(), dout.data(), dqkv.data());

  cuda::Blas blas(0);
  DeviceBuffer<std::uint16_t> d_qkv(gpu_test::to_bf16(qkv)), d_out(out.size()),
      d_dout(gpu_test::to_bf16(dout)), d_dqkv(dqkv.size());
  DeviceBuffer<float> d_att(att.size());
  DeviceBuffer<char> workspace(cuda::attention_workspace_bytes(s, DType::bf16));
  cuda::attention_forward(blas, DType::bf16, s, d_qkv.get(), d_out.get(), d_att.get(),
                          workspace.get(), nullptr);
  const double bound = std::ldexp(1.0, -8);
  const double e_out = gpu_test::normalized_mse(out, gpu_test::from_bf16(d_out.download()));
  const double e_att = gpu_test::normalized_mse(att, d_att.download());
  GPU_CHECK_MSG(e_out <= bound, "bf16 B=%lld T=%lld C=%lld H=%lld out %g > %g",
                static_cast<long long>(s.batch), static_cast<long long>(t_n),
                static_cast<long long>(c), static_cast<long long>(s.heads), e_out, bound);
  GPU_CHECK_MSG(e_att <= bound, "bf16 att %g > %g", e_att, bound);
  const auto got_att = d_att.download();
  std::size_t nonzero = 0;
  for (std::int64_t m = 0; m < s.batch * s.heads; ++m)
    for (std::int64_t i = 0; i < t_n; ++i)
      for (std::int64_t j = i + 1; j < t_n; ++j)
        nonzero += got_att[(m * t_n + i) * t_n + j] != 0.0f;
  GPU_CHECK(nonzero == 0);
  d_att.upload(att);
  cuda::attention_backward(blas, DType::bf16, s, d_qkv.get(), d_att.get(), d_dout.get(),
                           d_dqkv.get(), workspace.get(), nullptr);
  const double e_dqkv = gpu_test::normalized_mse(dqkv, gpu_test::from_bf16(d_dqkv.download()));
  GPU_CHECK_MSG(e_dqkv <= bound, "bf16 dqkv %g > %g", e_dqkv, bound);
  std::printf("    bf16 B=%lld T=%lld C=%lld H=%lld: out %.3g, att %.3g, dqkv %.3g (bound %.3g)\n",
              static_cast<long long>(s.batch), static_cast<long long>(t_n),
              static_cast<long long>(c), static_cast<long long>(s.heads), e_out, e_att, e_dqkv,
              bound);
}

}  // namespace

int main() {
  return gpu_test::run({
      {"attention: B=2 T=37 C=48 H=3",
       [] {
         matches({2, 37, 48, 3});
       }},
      {"attention: B=1 T=1 C=8 H=2",
       [] {
         matches({1, 1, 8, 2});
       }},
      {"attention: B=3 T=130 C=60 H=4 (hs 15)",
       [] {
         matches({3, 130, 60, 4});
       }},
      {"attention: B=1 T=256 C=64 H=1",
       [] {
         matches({1, 256, 64, 1});
       }},
      {"attention bf16: B=2 T=37 C=48 H=3",
       [] {
         matches_bf16({2, 37, 48, 3});
       }},
      {"attention bf16: B=1 T=1 C=8 H=2",
       [] {
         matches_bf16({1, 1, 8, 2});
       }},
      {"attention bf16: B=3 T=130 C=60 H=4 (hs 15: 2-byte-aligned head views)",
       [] {
         matches_bf16({3, 130, 60, 4});
       }},
      {"attention bf16: B=1 T=256 C=64 H=1",
       [] {
         matches_bf16({1, 256, 64, 1});
       }},
      {"attention bf16: empty batch",
       [] {
         matches_bf16({0, 5, 8, 2});
       }},
      {"attention: empty batch",
       [] {
         matches({0, 5, 8, 2});
       }},
  });
}
