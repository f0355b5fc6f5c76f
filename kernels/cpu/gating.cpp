// CPU gating kernels (see gating.hpp). Per token the work is O(E log E); slot assignment buckets
// the choices by expert (a counting sort), so the whole routing is O(S·E log E + S·k log S) with no
// [S, E, C] tensor anywhere.
#include "kernels/cpu/gating.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/softmax.hpp"

namespace troupe::cpu {
namespace {

void check_sizes(const char* kernel, std::int64_t tokens, std::int64_t experts, std::int64_t k) {
  if (tokens < 1)
    throw std::invalid_argument(std::string(kernel) + ": tokens = " + std::to_string(tokens) +
                                ", needs at least 1");
  if (experts < 1)
    throw std::invalid_argument(std::string(kernel) + ": experts = " + std::to_string(experts) +
                                ", needs at least 1");
  if (k < 1 || k > experts)
    throw std::invalid_argument(std::string(kernel) + ": k = " + std::to_string(k) +
                                ", allowed 1 ≤ k ≤ experts = " + std::to_string(experts));
}

// Index of the first maximum of v[0, n), skipping index `skip`.
std::int64_t argmax(const float* v, std::int64_t n, std::int64_t skip = -1) {
  std::int64_t best = -1;
  for (std::int64_t i = 0; i < n; ++i)
    if (i != skip && (best < 0 || v[i] > v[best])) best = i;
  return best;
}

// Gives each choice its slot in its expert's buffer. `order` lists all S·k choices in slot order;
// an expert with more than `capacity` choices keeps the ones with the largest keep_key (ties: the
// earlier in `order`), or its first `capacity` when keep_key is null. Kept choices take slots
// 0, 1, … in `order`; dropped ones get −1.
void assign_slots(const std::int64_t* expert, const std::vector<std::int64_t>& order,
                  std::int64_t experts, std::int64_t capacity, const float* keep_key,
                  std::int64_t* slot, std::int64_t* kept_counts) {
  std::vector<std::int64_t> begin(static_cast<std::size_t>(experts) + 1, 0);
  for (std::int64_t c : order) ++begin[static_cast<std::size_t>(expert[c]) + 1];
  std::partial_sum(begin.begin(), begin.end(), begin.begin());
  std::vector<std::int64_t> bucket(order.size());
  std::vector<std::int64_t> fill(begin.begin(), begin.end() - 1);
  for (std::int64_t c : order) bucket[static_cast<std::size_t>(fill[expert[c]]++)] = c;

  std::vector<char> kept(order.size());
  std::vector<std::int64_t> rank;
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::int64_t b = begin[e], n = begin[e + 1] - b;
    if (capacity < 0 || n <= capacity) {
      std::fill_n(kept.begin() + b, n, 1);
    } else if (keep_key == nullptr) {
      std::fill_n(kept.begin() + b, capacity, 1);
    } else {
      rank.resize(static_cast<std::size_t>(n));
      std::iota(rank.begin(), rank.end(), b);
      std::nth_element(rank.begin(), rank.begin() + capacity, rank.end(),
                       [&](std::int64_t i, std::int64_t j) {
                         const float ki = keep_key[bucket[i]], kj = keep_key[bucket[j]];
                         return ki > kj || (ki == kj && i < j);
                       });
      for (std::int64_t i = 0; i < capacity; ++i) kept[rank[i]] = 1;
    }
    std::int64_t next = 0;
    for (std::int64_t i = b; i < b + n; ++i) slot[bucket[i]] = kept[i] ? next++ : -1;
    kept_counts[e] = next;
  }
}

// ∂l_aux/∂gates[s, e], the same for every token s: l_aux = Σ_e colsum(gates)[e] · scale[e] with
// scale[e] = coef · count[e] / S², where count covers all choices (top-1, top-k) or first choices
// only (top-2), and coef = E (top-1, top-2) or E / k (top-k).
std::vector<double> aux_scale(const GatingLoss& loss, const std::int64_t* expert,
                              std::int64_t tokens, std::int64_t experts, std::int64_t k) {
  const std::int64_t counted = loss.aux_first_choice_only ? 1 : k;
  std::vector<double> scale(static_cast<std::size_t>(experts), 0.0);
  for (std::int64_t s = 0; s < tokens; ++s)
    for (std::int64_t j = 0; j < counted; ++j) scale[expert[s * k + j]] += 1.0;
  const double coef = loss.aux_divide_by_k ? static_cast<double>(experts) / k : experts;
  for (double& v : scale) v *= coef / (static_cast<double>(tokens) * tokens);
  return scale;
}

// Everything after expert selection and slot assignment: exp_counts, combine weights, l_aux.
void finish_gating(const GatingLoss& loss, std::int64_t tokens, std::int64_t experts,
                   std::int64_t k, const GatingOutput& out) {
  std::fill_n(out.exp_counts, experts, 0);
  for (std::int64_t c = 0; c < tokens * k; ++c) ++out.exp_counts[out.expert[c]];

  for (std::int64_t s = 0; s < tokens; ++s) {
    const float* g = out.gates + s * experts;
    const std::int64_t* e = out.expert + s * k;
    const std::int64_t* slot = out.slot + s * k;
    float* w = out.weight + s * k;
    if (!loss.renormalize) {
      for (std::int64_t j = 0; j < k; ++j) w[j] = slot[j] >= 0 ? g[e[j]] : 0.0f;
      continue;
    }
    float kept_sum = 0.0f;
    for (std::int64_t j = 0; j < k; ++j)
      if (slot[j] >= 0) kept_sum += g[e[j]];
    const float denom = std::max(kept_sum, FLT_EPSILON);
    for (std::int64_t j = 0; j < k; ++j) w[j] = slot[j] >= 0 ? g[e[j]] / denom : 0.0f;
  }

  const std::vector<double> scale = aux_scale(loss, out.expert, tokens, experts, k);
  double l_aux = 0.0;
  for (std::int64_t e = 0; e < experts; ++e) {
    double column = 0.0;
    for (std::int64_t s = 0; s < tokens; ++s) column += out.gates[s * experts + e];
    l_aux += column * scale[e];
  }
  *out.l_aux = static_cast<float>(l_aux);
}

std::vector<std::int64_t> position_order(std::int64_t choices) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(choices));
  std::iota(order.begin(), order.end(), 0);
  return order;
}

}  // namespace

std::int64_t gating_capacity(std::int64_t tokens, std::int64_t experts, std::int64_t k,
                             double capacity_factor, std::int64_t min_capacity) {
  check_sizes("gating_capacity", tokens, experts, k);
  if (!(capacity_factor > 0.0) || !std::isfinite(capacity_factor))
    throw std::invalid_argument("gating_capacity: capacity_factor = " +
                                std::to_string(capacity_factor) + ", must be finite and > 0");
  if (min_capacity < 0)
    throw std::invalid_argument("gating_capacity: min_capacity = " + std::to_string(min_capacity) +
                                ", must be ≥ 0");
  const float per_expert = static_cast<float>(static_cast<double>(tokens) / experts);
  const float factor = static_cast<float>(capacity_factor * static_cast<double>(k));
  const auto capacity = static_cast<std::int64_t>(std::ceil(per_expert * factor));
  return std::max(capacity, min_capacity);
}

void top1_gating(const float* logits, const float* gumbel, const float* priority,
                 std::int64_t tokens, std::int64_t experts, std::int64_t capacity,
                 const GatingOutput& out) {
  check_sizes("top1_gating", tokens, experts, 1);
  softmax_forward(logits, out.gates, tokens, experts);
  std::vector<float> noisy(gumbel ? static_cast<std::size_t>(experts) : 0);
  for (std::int64_t s = 0; s < tokens; ++s) {
    if (gumbel) {
      for (std::int64_t e = 0; e < experts; ++e)
        noisy[e] = logits[s * experts + e] + gumbel[s * experts + e];
      out.expert[s] = argmax(noisy.data(), experts);
    } else {
      out.expert[s] = argmax(out.gates + s * experts, experts);
    }
  }
  assign_slots(out.expert, position_order(tokens), experts, capacity, priority, out.slot,
               out.kept_counts);
  finish_gating(GatingLoss{}, tokens, experts, 1, out);
}

void top2_gating(const float* logits, const float* gumbel, std::int64_t tokens,
                 std::int64_t experts, std::int64_t capacity, const GatingOutput& out) {
  check_sizes("top2_gating", tokens, experts, 2);
  softmax_forward(logits, out.gates, tokens, experts);
  std::vector<float> noisy(static_cast<std::size_t>(experts));
  for (std::int64_t s = 0; s < tokens; ++s) {
    const std::int64_t first = argmax(out.gates + s * experts, experts);
    for (std::int64_t e = 0; e < experts; ++e)
      noisy[e] = logits[s * experts + e] + (gumbel ? gumbel[s * experts + e] : 0.0f);
    out.expert[2 * s] = first;
    out.expert[2 * s + 1] = argmax(noisy.data(), experts, first);
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(2 * tokens));
  for (std::int64_t s = 0; s < tokens; ++s) {
    order[s] = 2 * s;
    order[tokens + s] = 2 * s + 1;
  }
  assign_slots(out.expert, order, experts, capacity, nullptr, out.slot, out.kept_counts);
  finish_gating(GatingLoss{true, true, false}, tokens, experts, 2, out);
}

void topk_gating(const float* logits, std::int64_t tokens, std::int64_t experts, std::int64_t k,
                 std::int64_t capacity, bool keep_highest_logits, const GatingOutput& out) {
  check_sizes("topk_gating", tokens, experts, k);
  softmax_forward(logits, out.gates, tokens, experts);
  std::vector<std::int64_t> index(static_cast<std::size_t>(experts));
  for (std::int64_t s = 0; s < tokens; ++s) {
    const float* x = logits + s * experts;
    std::iota(index.begin(), index.end(), 0);
    std::partial_sort(
        index.begin(), index.begin() + k, index.end(),
        [x](std::int64_t a, std::int64_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    std::copy_n(index.begin(), k, out.expert + s * k);
  }
  std::vector<float> routed_logit;
  if (keep_highest_logits) {
    routed_logit.resize(static_cast<std::size_t>(tokens * k));
    for (std::int64_t c = 0; c < tokens * k; ++c)
      routed_logit[c] = logits[(c / k) * experts + out.expert[c]];
  }
  assign_slots(out.expert, position_order(tokens * k), experts, capacity,
               routed_logit.empty() ? nullptr : routed_logit.data(), out.slot, out.kept_counts);
  finish_gating(GatingLoss{true, false, true}, tokens, experts, k, out);
}

void gating_backward(const GatingLoss& loss, const float* gates, const std::int64_t* expert,
                     const std::int64_t* slot, const float* grad_weight, float grad_l_aux,
                     std::int64_t tokens, std::int64_t experts, std::int64_t k,
                     float* grad_logits) {
  check_sizes("gating_backward", tokens, experts, k);
  const std::vector<double> scale = aux_scale(loss, expert, tokens, experts, k);
  std::vector<float> grad_gates(static_cast<std::size_t>(experts));
  for (std::int64_t s = 0; s < tokens; ++s) {
    const float* g = gates + s * experts;
    const std::int64_t* e = expert + s * k;
    const std::int64_t* sl = slot + s * k;
    const float* dw = grad_weight + s * k;
    for (std::int64_t i = 0; i < experts; ++i)
      grad_gates[i] = static_cast<float>(grad_l_aux * scale[i]);
    if (!loss.renormalize) {
      for (std::int64_t j = 0; j < k; ++j)
        if (sl[j] >= 0) grad_gates[e[j]] += dw[j];
    } else {
      // w_j = g_j / D with D = max(Σ kept g, eps): ∂/∂g_j = (dw_j − Σ_i dw_i w_i) / D for kept j;
      // the Σ term vanishes where the clamp is active (D fixed at eps).
      float kept_sum = 0.0f;
      for (std::int64_t j = 0; j < k; ++j)
        if (sl[j] >= 0) kept_sum += g[e[j]];
      const float denom = std::max(kept_sum, FLT_EPSILON);
      float through_denom = 0.0f;
      if (kept_sum >= FLT_EPSILON)
        for (std::int64_t j = 0; j < k; ++j)
          if (sl[j] >= 0) through_denom += dw[j] * (g[e[j]] / denom);
      for (std::int64_t j = 0; j < k; ++j)
        if (sl[j] >= 0) grad_gates[e[j]] += (dw[j] - through_denom) / denom;
    }
    softmax_backward(g, grad_gates.data(), grad_logits + s * experts, 1, experts);
  }
}

}  // namespace troupe::cpu
