// CPU causal self-attention core (see attention.hpp). Per (batch, head), with q, k, v the T × hs
// strided views of qkv and scale = 1/sqrt(hs):
//   forward   att = softmax_causal(scale · q · kᵀ),  out = att · v
//   backward  dv = attᵀ · dout,  datt = dout · vᵀ,
//             dpre = scale · att ⊙ (datt − rowsum(att ⊙ datt))   (zero above the diagonal),
//             dq = dpre · k,  dk = dpreᵀ · q
// The GEMMs compute the full T × T score matrix; the masked half is cheap at these sizes and
// keeps every product a single sgemm.
#include "kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.hpp"

namespace troupe::cpu {
namespace {

void check_shape(const char* function, const AttentionShape& s) {
  auto fail = [&](const char* name, std::int64_t value, const std::string& allowed) {
    throw std::invalid_argument(std::string(function) + ": " + name + " = " +
                                std::to_string(value) + ", " + allowed);
  };
  if (s.batch < 0) fail("batch", s.batch, "must be >= 0");
  if (s.seq_len < 1) fail("seq_len", s.seq_len, "must be >= 1");
  if (s.heads < 1) fail("heads", s.heads, "must be >= 1");
  if (s.channels < 1 || s.channels % s.heads != 0)
    fail("channels", s.channels,
         "must be a positive multiple of heads = " + std::to_string(s.heads));
}

void require_pointer(const char* function, const char* name, const void* pointer) {
  if (pointer == nullptr)
    throw std::invalid_argument(std::string(function) + ": " + name + " is null");
}

}  // namespace

void attention_forward(const AttentionShape& s, const float* qkv, float* out, float* att) {
  const char* function = "attention_forward";
  check_shape(function, s);
  if (s.batch == 0) return;
  require_pointer(function, "qkv", qkv);
  require_pointer(function, "out", out);
  require_pointer(function, "att", att);
  const std::int64_t t_n = s.seq_len, c = s.channels, hs = c / s.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const float* q = qkv + b * t_n * 3 * c + h * hs;
      float* a = att + (b * s.heads + h) * t_n * t_n;
      gemm(false, true, t_n, t_n, hs, scale, q, 3 * c, q + c, 3 * c, 0.0f, a, t_n);
      for (std::int64_t i = 0; i < t_n; ++i) {
        float* row = a + i * t_n;
        const float max = *std::max_element(row, row + i + 1);
        float sum = 0.0f;
        for (std::int64_t j = 0; j <= i; ++j) {
          row[j] = std::exp(row[j] - max);
          sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (std::int64_t j = 0; j <= i; ++j) row[j] *= inv;
        std::fill(row + i + 1, row + t_n, 0.0f);
      }
      gemm(false, false, t_n, hs, t_n, 1.0f, a, t_n, q + 2 * c, 3 * c, 0.0f,
           out + b * t_n * c + h * hs, c);
    }
}

void attention_backward(const AttentionShape& s, const float* qkv, const float* att,
                        const float* dout, float* dqkv) {
  const char* function = "attention_backward";
  check_shape(function, s);
  if (s.batch == 0) return;
  require_pointer(function, "qkv", qkv);
  require_pointer(function, "att", att);
  require_pointer(function, "dout", dout);
  require_pointer(function, "dqkv", dqkv);
  const std::int64_t t_n = s.seq_len, c = s.channels, hs = c / s.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  std::vector<float> dpre(static_cast<std::size_t>(t_n * t_n));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const std::int64_t offset = b * t_n * 3 * c + h * hs;
      const float* q = qkv + offset;
      float* dq = dqkv + offset;
      const float* a = att + (b * s.heads + h) * t_n * t_n;
      const float* dout_h = dout + b * t_n * c + h * hs;
      // Each head owns disjoint columns of dqkv, so beta = 0 overwrites all of it exactly once.
      gemm(true, false, t_n, hs, t_n, 1.0f, a, t_n, dout_h, c, 0.0f, dq + 2 * c, 3 * c);
      gemm(false, true, t_n, t_n, hs, 1.0f, dout_h, c, q + 2 * c, 3 * c, 0.0f, dpre.data(), t_n);
      for (std::int64_t i = 0; i < t_n; ++i) {
        const float* a_row = a + i * t_n;
        float* row = dpre.data() + i * t_n;
        float dot = 0.0f;
        for (std::int64_t j = 0; j <= i; ++j) dot += a_row[j] * row[j];
        for (std::int64_t j = 0; j <= i; ++j) row[j] = scale * a_row[j] * (row[j] - dot);
        std::fill(row + i + 1, row + t_n, 0.0f);
      }
      gemm(false, false, t_n, hs, t_n, 1.0f, dpre.data(), t_n, q + c, 3 * c, 0.0f, dq, 3 * c);
      gemm(true, false, t_n, hs, t_n, 1.0f, dpre.data(), t_n, q, 3 * c, 0.0f, dq + c, 3 * c);
    }
}

}  // namespace troupe::cpu
