// The fused router (see router.hpp). Three or four launches, no host synchronisation:
//   1. select: one thread per token — max, exp, sum and division in the CPU's order; expert choice
//      by first maximum of the logits (+ noise); requested counts by atomicAdd.
//   2. assign: one block per expert — walks every choice in slot order (8 per thread per step) (for
//   top-2 all first
//      choices, then all second choices; else by position), ranks its own choices with ballots,
//      and lists them. When an over-full expert keeps by key (RTS priority, or the routed logit for
//      the "probs" policy) a choice is kept iff fewer than C of the expert's choices beat it (a
//      larger key, or an equal key earlier in slot order): O(n_e²) comparisons through
//      shared-memory tiles, fine for the thousands of rows per expert of real layers. Slots are
//      then ranks among the kept, in slot order.
//   3. finish: one thread per token — row offsets (a scan of kept counts, redone per block, E is
//      small), choice_row / row_token, and the combine weights.
//   4. only when l_aux is asked for: one block — per-expert counts and gate column sums, then
//   l_aux.
#include <cuda_runtime.h>

#include <cfloat>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/router.hpp"

namespace troupe::cuda {
namespace {


constexpr int kAssignThreads = 1024;
constexpr int kItems = 8;  // positions per thread in the ranking pass
constexpr int kTokenThreads = 128;

__device__ float exp_f(float x) {
  return static_cast<float>(exp(static_cast<double>(x)));
}

// Choice index of slot-order position p.
__device__ std::int64_t choice_of(RouterSelection rule, std::int64_t p, std::int64_t tokens) {
  if (rule != RouterSelection::top2) return p;
  return p < tokens ? 2 * p : 2 * (p - tokens) + 1;
}

__global__ void select_kernel(RouterSelection rule, const float* logits, const float* gumbel,
                              std::int64_t tokens, std::int64_t experts, std::int64_t k,
                              float* gates, std::int64_t* expert, unsigned long long* counts) {
  const std::int64_t s = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (s >= tokens) return;
  const float* x = logits + s * experts;
  float* g = gates + s * experts;
  float row_max = -INFINITY;
  for (std::int64_t e = 0; e < experts; ++e) row_max = x[e] > row_max ? x[e] : row_max;
  float total = 0.0f;
  for (std::int64_t e = 0; e < experts; ++e) {
    const float v = exp_f(__fsub_rn(x[e], row_max));
    g[e] = v;
    total = __fadd_rn(total, v);
  }
  for (std::int64_t e = 0; e < experts; ++e) g[e] = __fdiv_rn(g[e], total);

  const float* noise = gumbel ? gumbel + s * experts : nullptr;
  std::int64_t* out = expert + s * k;
  if (rule == RouterSelection::top1) {
    std::int64_t best = 0;
    float best_v = noise ? __fadd_rn(x[0], noise[0]) : x[0];
    for (std::int64_t e = 1; e < experts; ++e) {
      const float v = noise ? __fadd_rn(x[e], noise[e]) : x[e];
      if (v > best_v) best = e, best_v = v;
    }
    out[0] = best;
  } else if (rule == RouterSelection::top2) {
    std::int64_t first = 0;
    for (std::int64_t e = 1; e < experts; ++e)
      if (x[e] > x[first]) first = e;
    std::int64_t second = -1;
    float second_v = 0.0f;
    for (std::int64_t e = 0; e < experts; ++e) {
      if (e == first) continue;
      const float v = __fadd_rn(x[e], noise ? noise[e] : 0.0f);
      if (second < 0 || v > second_v) second = e, second_v = v;
    }
    out[0] = first;
    out[1] = second;
  } else {
    // The j-th pick is the best among those ranked after the (j−1)-th in (value desc, index asc).
    float prev_v = INFINITY;
    std::int64_t prev_i = -1;
    for (std::int64_t j = 0; j < k; ++j) {
      std::int64_t best = -1;
      float best_v = 0.0f;
      for (std::int64_t e = 0; e < experts; ++e) {
        const float v = x[e];
        const bool after = v < prev_v || (v == prev_v && e > prev_i);
        if (after && (best < 0 || v > best_v)) best = e, best_v = v;
      }
      out[j] = best;
      prev_v = best_v;
      prev_i = best;
    }
  }
  for (std::int64_t j = 0; j < k; ++j) atomicAdd(&counts[out[j]], 1ull);
}

// Exclusive prefix of `flag` over the block in thread order; `total` gets the block's sum.
__device__ int block_exclusive_scan(bool flag, int& total) {
  __shared__ int warp_sums[kAssignThreads / 32];
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int in_warp = __popc(ballot & ((1u << lane) - 1u));
  __syncthreads();  // warp_sums may still be read by the previous call
  if (lane == 0) warp_sums[warp] = __popc(ballot);
  __syncthreads();
  int before = 0;
  total = 0;
  for (int w = 0; w < kAssignThreads / 32; ++w) {
    if (w < warp) before += warp_sums[w];
    total += warp_sums[w];
  }
  return before + in_warp;
}

// Exclusive prefix sum of `value` over the block in thread order; `total` gets the block's sum.
__device__ int block_exclusive_sum(int value, int& total) {
  __shared__ int warp_sums[kAssignThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inclusive = value;
  for (int o = 1; o < 32; o <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  __syncthreads();  // warp_sums may still be read by the previous call
  if (lane == 31) warp_sums[warp] = inclusive;
  __syncthreads();
  int before = 0;
  total = 0;
  for (int w = 0; w < kAssignThreads / 32; ++w) {
    if (w < warp) before += warp_sums[w];
    total += warp_sums[w];
  }
  return before + inclusive - value;
}

__global__ void assign_kernel(RouterSelection rule, const std::int64_t* expert, const float* logits,
                              const float* priority, bool keyed, std::int64_t tokens,
                              std::int64_t experts, std::int64_t k, std::int64_t capacity,
                              const unsigned long long* counts, std::int32_t* list,
                              std::int64_t* slot, std::int64_t* exp_counts,
                              std::int64_t* kept_counts) {
  const std::int64_t e = blockIdx.x;
  const std::int64_t choices = tokens * k;
  std::int64_t start = 0;
  for (std::int64_t i = 0; i < e; ++i) start += static_cast<std::int64_t>(counts[i]);
  const std::int64_t n = static_cast<std::int64_t>(counts[e]);
  std::int32_t* mine = list + start;
  const bool by_key = keyed && capacity >= 0 && n > capacity;

  // Pass 1: rank this expert's choices in slot order, kItems consecutive positions per thread.
  std::int64_t seen = 0;
  for (std::int64_t base = 0; base < choices; base += kAssignThreads * kItems) {
    const std::int64_t first = base + static_cast<std::int64_t>(threadIdx.x) * kItems;
    std::int64_t c[kItems];
    int matches = 0;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const std::int64_t p = first + i;
      c[i] =
          p < choices && expert[choice_of(rule, p, tokens)] == e ? choice_of(rule, p, tokens) : -1;
      matches += c[i] >= 0;
    }
    int total = 0;
    int rank = block_exclusive_sum(matches, total);
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (c[i] < 0) continue;
      const std::int64_t r = seen + rank++;
      mine[r] = static_cast<std::int32_t>(c[i]);
      if (!by_key) slot[c[i]] = (capacity < 0 || r < capacity) ? r : -1;
    }
    seen += total;
  }
  if (threadIdx.x == 0) {
    exp_counts[e] = n;
    kept_counts[e] = capacity < 0 || n <= capacity ? n : capacity;
  }
  if (!by_key) return;
  __syncthreads();

  // Pass 2: keep the C choices with the largest keys (ties: earlier in slot order).
  __shared__ float tile[kAssignThreads];
  for (std::int64_t base = 0; base < n; base += kAssignThreads) {
    const std::int64_t i = base + threadIdx.x;
    float key_i = 0.0f;
    if (i < n) {
      const std::int64_t c = mine[i];
      key_i = priority ? priority[c / k] : logits[(c / k) * experts + expert[c]];
    }
    std::int64_t beaten_by = 0;
    for (std::int64_t t = 0; t < n; t += kAssignThreads) {
      __syncthreads();
      const std::int64_t j = t + threadIdx.x;
      if (j < n) {
        const std::int64_t c = mine[j];
        tile[threadIdx.x] = priority ? priority[c / k] : logits[(c / k) * experts + expert[c]];
      }
      __syncthreads();
      if (i < n) {
        const std::int64_t len = n - t < kAssignThreads ? n - t : kAssignThreads;
        for (std::int64_t q = 0; q < len; ++q) {
          const float key_j = tile[q];
          beaten_by += key_j > key_i || (key_j == key_i && t + q < i);
        }
      }
    }
    if (i < n) slot[mine[i]] = beaten_by < capacity ? 0 : -1;  // kept flag for pass 3
  }
  __syncthreads();

  // Pass 3: slots are ranks among the kept, in slot order.
  std::int64_t kept = 0;
  for (std::int64_t base = 0; base < n; base += kAssignThreads) {
    const std::int64_t i = base + threadIdx.x;
    const bool keep = i < n && slot[mine[i]] == 0;
    int total = 0;
    const int rank = block_exclusive_scan(keep, total);
    if (keep) slot[mine[i]] = kept + rank;
    kept += total;
  }
}

__global__ void finish_kernel(RouterSelection rule, const float* gates, const std::int64_t* expert,
                              const std::int64_t* slot, const std::int64_t* kept_counts,
                              std::int64_t tokens, std::int64_t experts, std::int64_t k,
                              float* weight, std::int64_t* row_offsets, std::int64_t* choice_row,
                              std::int64_t* row_token) {
  extern __shared__ std::int64_t offsets[];  // E + 1
  if (threadIdx.x == 0) {
    std::int64_t run = 0;
    for (std::int64_t e = 0; e < experts; ++e) {
      offsets[e] = run;
      run += kept_counts[e];
    }
    offsets[experts] = run;
  }
  __syncthreads();
  if (blockIdx.x == 0)
    for (std::int64_t e = threadIdx.x; e <= experts; e += blockDim.x) row_offsets[e] = offsets[e];
  const std::int64_t s = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (s >= tokens) return;
  const float* g = gates + s * experts;
  float kept_sum = 0.0f;
  for (std::int64_t j = 0; j < k; ++j) {
    const std::int64_t c = s * k + j;
    if (slot[c] >= 0) {
      const std::int64_t row = offsets[expert[c]] + slot[c];
      choice_row[c] = row;
      row_token[row] = s;
      kept_sum = __fadd_rn(kept_sum, g[expert[c]]);
    } else {
      choice_row[c] = -1;
    }
  }
  const float denom = kept_sum > FLT_EPSILON ? kept_sum : FLT_EPSILON;
  for (std::int64_t j = 0; j < k; ++j) {
    const std::int64_t c = s * k + j;
    const float gv = g[expert[c]];
    weight[c] = slot[c] < 0 ? 0.0f : (rule == RouterSelection::top1 ? gv : __fdiv_rn(gv, denom));
  }
}

// cpu::gating_backward without the l_aux term, one thread per token (E is small).
// l_aux in one block (E is small): for each expert, its count (exp_counts, or first choices only
// for top-2) and the column sum of the gates in double, then Σ_e column · scale[e] in expert order,
// scale[e] = count · factor with factor = coef / S² from the host, as the CPU rounds it.
__global__ void aux_loss_kernel(RouterSelection rule, const float* gates, const std::int64_t* expert,
                                const std::int64_t* exp_counts, std::int64_t tokens,
                                std::int64_t experts, std::int64_t k, double factor,
                                std::int64_t* aux_counts, float* l_aux) {
  double total = 0.0;
  for (std::int64_t e = 0; e < experts; ++e) {
    std::int64_t count = 0;
    double column = 0.0;
    for (std::int64_t s = threadIdx.x; s < tokens; s += blockDim.x) {
      column += gates[s * experts + e];
      if (rule == RouterSelection::top2) count += expert[s * k] == e;
    }
    column = detail::block_sum(column);
    count = rule == RouterSelection::top2 ? detail::block_sum(count) : exp_counts[e];
    if (threadIdx.x == 0) {
      aux_counts[e] = count;
      total = __dadd_rn(total, __dmul_rn(column, __dmul_rn(static_cast<double>(count), factor)));
    }
  }
  if (threadIdx.x == 0) *l_aux = static_cast<float>(total);
}

__global__ void backward_kernel(RouterSelection rule, const float* gates, const std::int64_t* expert,
                                const std::int64_t* slot, const float* grad_weight,
                                float grad_l_aux, const std::int64_t* aux_counts, double factor,
                                std::int64_t tokens, std::int64_t experts, std::int64_t k,
                                float* grad_logits) {
  const std::int64_t s = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (s >= tokens) return;
  const float* g = gates + s * experts;
  const std::int64_t* e = expert + s * k;
  const std::int64_t* sl = slot + s * k;
  const float* dw = grad_weight + s * k;
  float* dx = grad_logits + s * experts;
  // grad_gates is sparse (k entries); softmax backward: dx = g·(dg − ⟨dg, g⟩).
  float kept_sum = 0.0f;
  for (std::int64_t j = 0; j < k; ++j)
    if (sl[j] >= 0) kept_sum = __fadd_rn(kept_sum, g[e[j]]);
  const float denom = kept_sum > FLT_EPSILON ? kept_sum : FLT_EPSILON;
  float through = 0.0f;
  if (rule != RouterSelection::top1 && kept_sum >= FLT_EPSILON)
    for (std::int64_t j = 0; j < k; ++j)
      if (sl[j] >= 0) through = __fadd_rn(through, __fmul_rn(dw[j], __fdiv_rn(g[e[j]], denom)));
  // grad_gates, built in place, starting from the l_aux term float(grad_l_aux · scale[i]).
  for (std::int64_t i = 0; i < experts; ++i)
    dx[i] =
        aux_counts
            ? static_cast<float>(__dmul_rn(static_cast<double>(grad_l_aux),
                                           __dmul_rn(static_cast<double>(aux_counts[i]), factor)))
            : 0.0f;
  for (std::int64_t j = 0; j < k; ++j) {
    if (sl[j] < 0) continue;
    const float add =
        rule == RouterSelection::top1 ? dw[j] : __fdiv_rn(__fsub_rn(dw[j], through), denom);
    dx[e[j]] = __fadd_rn(dx[e[j]], add);
  }
  float dot = 0.0f;
  for (std::int64_t i = 0; i < experts; ++i) dot = __fadd_rn(dot, __fmul_rn(dx[i], g[i]));
  for (std::int64_t i = 0; i < experts; ++i) dx[i] = __fmul_rn(g[i], __fsub_rn(dx[i], dot));
}

// coef / S² of l_aux's scale, computed as cpu::aux_scale computes it.
double aux_factor(RouterSelection rule, std::int64_t tokens, std::int64_t experts, std::int64_t k) {
  const double coef = rule == RouterSelection::topk ? static_cast<double>(experts) / k : experts;
  return coef / (static_cast<double>(tokens) * tokens);
}

unsigned blocks_for(std::int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace

std::size_t router_workspace_bytes(std::int64_t tokens, std::int64_t k) {
  // requested counts (E ≤ S·k entries suffice only if E ≤ S·k; size for both) + the choice lists
  return static_cast<std::size_t>(tokens * k) * sizeof(std::int32_t) + 256 +
         static_cast<std::size_t>(tokens * k + 4096) * sizeof(unsigned long long);
}

void route(const RouterConfig& cfg, const float* logits, const float* gumbel, const float* priority,
           void* workspace, const RouterOutput& out, void* stream) {
  const std::int64_t S = cfg.tokens, E = cfg.experts, k = cfg.k;
  if (S < 1 || E < 1 || k < 1 || k > E)
    throw std::invalid_argument("cuda::route: tokens = " + std::to_string(S) +
                                ", experts = " + std::to_string(E) + ", k = " + std::to_string(k) +
                                "; need tokens ≥ 1 and 1 ≤ k ≤ experts");
  if ((cfg.rule == RouterSelection::top1 && k != 1) || (cfg.rule == RouterSelection::top2 && k != 2))
    throw std::invalid_argument("cuda::route: k = " + std::to_string(k) +
                                " does not match the top-1 / top-2 rule");
  if (S * k > INT32_MAX) throw std::invalid_argument("cuda::route: more than 2^31 choices");
  if (E > 4096) throw std::invalid_argument("cuda::route: more than 4096 experts");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  auto* counts = static_cast<unsigned long long*>(workspace);
  auto* list = reinterpret_cast<std::int32_t*>(counts + 4096);
  TROUPE_CUDA_CHECK(cudaMemsetAsync(counts, 0, E * sizeof(unsigned long long), s));
  select_kernel<<<blocks_for(S, kTokenThreads), kTokenThreads, 0, s>>>(
      cfg.rule, logits, cfg.rule == RouterSelection::topk ? nullptr : gumbel, S, E, k, out.gates,
      out.expert, counts);
  TROUPE_CUDA_CHECK_LAUNCH();
  const bool keyed = (cfg.rule == RouterSelection::top1 && priority != nullptr) ||
                     (cfg.rule == RouterSelection::topk && cfg.keep_highest_logits);
  assign_kernel<<<static_cast<unsigned>(E), kAssignThreads, 0, s>>>(
      cfg.rule, out.expert, logits, cfg.rule == RouterSelection::top1 ? priority : nullptr, keyed, S, E,
      k, cfg.capacity, counts, list, out.slot, out.exp_counts, out.kept_counts);
  TROUPE_CUDA_CHECK_LAUNCH();
  finish_kernel<<<blocks_for(S, kTokenThreads), kTokenThreads, (E + 1) * sizeof(std::int64_t), s>>>(
      cfg.rule, out.gates, out.expert, out.slot, out.kept_counts, S, E, k, out.weight,
      out.row_offsets, out.choice_row, out.row_token);
  TROUPE_CUDA_CHECK_LAUNCH();
  if (out.l_aux) {
    if (!out.aux_counts)
      throw std::invalid_argument("cuda::route: l_aux asked for without aux_counts (E entries)");
    aux_loss_kernel<<<1, kAssignThreads, 0, s>>>(cfg.rule, out.gates, out.expert, out.exp_counts, S,
                                                 E, k, aux_factor(cfg.rule, S, E, k),
                                                 out.aux_counts, out.l_aux);
    TROUPE_CUDA_CHECK_LAUNCH();
  }
}

void router_backward(RouterSelection rule, const float* gates, const std::int64_t* expert,
                     const std::int64_t* slot, const float* grad_weight, std::int64_t tokens,
                     std::int64_t experts, std::int64_t k, float* grad_logits, void* stream) {
  router_backward(rule, gates, expert, slot, grad_weight, 0.0f, nullptr, tokens, experts, k,
                  grad_logits, stream);
}

void router_backward(RouterSelection rule, const float* gates, const std::int64_t* expert,
                     const std::int64_t* slot, const float* grad_weight, float grad_l_aux,
                     const std::int64_t* aux_counts, std::int64_t tokens, std::int64_t experts,
                     std::int64_t k, float* grad_logits, void* stream) {
  if (tokens <= 0) return;
  backward_kernel<<<blocks_for(tokens, kTokenThreads), kTokenThreads, 0,
                    static_cast<cudaStream_t>(stream)>>>(
      rule, gates, expert, slot, grad_weight, grad_l_aux, aux_counts,
      aux_factor(rule, tokens, experts, k), tokens, experts, k, grad_logits);
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace troupe::cuda
