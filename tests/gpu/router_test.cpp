// The fused CUDA router against the CPU gating kernels. The logits are computed on the GPU
// (x · Wgᵀ through cuda::gemm) and copied back, so both routers see the same fp32 values; noise
// is drawn once on the host. Agreement required:
//   - expert, slot, kept / dropped, exp_counts, kept_counts: exact (ties included: x and Wg are
//     small integers in the tie cases, so many logits are exactly equal);
//   - choice_row / row_token: exactly what the CPU's slots imply (expert-major, slot order);
//   - gates and weights: ≤ 8 ulp (exp is rounded once from double on the GPU, glibc's expf may
//     differ by an ulp; the softmax sums E of them and divides, and top-k weights divide again by
//     a sum of k gates: a few ulp each step, measured up to 4);
//   - router_backward given the CPU's gates: bit for bit (same operations in the same order).
#include <algorithm>
#include <cmath>

#include "gpu/gpu_test.hpp"
#include "kernels/cpu/gating.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/router.hpp"

using namespace troupe;
using gpu_test::DeviceBuffer;

namespace {

struct Case {
  cuda::RouterSelection rule;
  std::int64_t tokens, experts, k, capacity;  // capacity < 0: dropless
  bool noise, priority, integer_logits;
  bool keep_highest_logits = true;
};

void run_case(const Case& tc) {
  const std::int64_t S = tc.tokens, E = tc.experts, k = tc.k, d = 24;
  std::mt19937_64 rng(S * 131 + E * 7 + k + tc.capacity);
  std::vector<float> x(S * d), wg(E * d);
  if (tc.integer_logits) {
    for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 3) - 1);
    for (auto& v : wg) v = static_cast<float>(static_cast<int>(rng() % 3) - 1);
  } else {
    x = gpu_test::random_floats(S * d, rng);
    wg = gpu_test::random_floats(E * d, rng, 0.2f);
  }
  // Logits on the GPU, copied back.
  cuda::Blas blas(0);
  DeviceBuffer<float> dx(x), dwg(wg), dlogits(S * E);
  cuda::gemm(blas, nullptr, DType::f32, DType::f32, false, true, S, E, d, 1.0f, dx.get(), d,
             dwg.get(), d, 0.0f, dlogits.get(), E);
  const std::vector<float> logits = dlogits.download();
  std::vector<float> gumbel, priority;
  if (tc.noise) {
    std::uniform_real_distribution<float> u(1e-6f, 1.0f);
    for (std::int64_t i = 0; i < S * E; ++i) gumbel.push_back(-std::log(-std::log(u(rng))));
    if (tc.integer_logits)  // noise on a coarse grid keeps ties among noisy logits too
      for (auto& g : gumbel) g = std::round(g);
  }
  if (tc.priority) {
    for (std::int64_t s = 0; s < S; ++s) priority.push_back(static_cast<float>(rng() % 7) / 7.0f);
  }

  // CPU reference.
  std::vector<float> gates(S * E), weight(S * k);
  std::vector<std::int64_t> expert(S * k), slot(S * k), exp_counts(E), kept_counts(E);
  float l_aux = 0.0f;
  const cpu::GatingOutput out{gates.data(),      expert.data(),      weight.data(), slot.data(),
                              exp_counts.data(), kept_counts.data(), &l_aux};
  const float* g_ptr = gumbel.empty() ? nullptr : gumbel.data();
  if (tc.rule == cuda::RouterSelection::top1)
    cpu::top1_gating(logits.data(), g_ptr, priority.empty() ? nullptr : priority.data(), S, E,
                     tc.capacity, out);
  else if (tc.rule == cuda::RouterSelection::top2)
    cpu::top2_gating(logits.data(), g_ptr, S, E, tc.capacity, out);
  else
    cpu::topk_gating(logits.data(), S, E, k, tc.capacity, tc.keep_highest_logits, out);

  // GPU router.
  DeviceBuffer<float> dgumbel(std::max<std::size_t>(gumbel.size(), 1)),
      dprio(std::max<std::size_t>(priority.size(), 1));
  if (!gumbel.empty()) dgumbel.upload(gumbel);
  if (!priority.empty()) dprio.upload(priority);
  DeviceBuffer<float> d_gates(S * E), d_weight(S * k);
  DeviceBuffer<std::int64_t> d_expert(S * k), d_slot(S * k), d_exp(E), d_kept(E), d_off(E + 1),
      d_choice_row(S * k), d_row_token(S * k);
  DeviceBuffer<char> ws(cuda::router_workspace_bytes(S, k));
  DeviceBuffer<float> d_l_aux(1);
  DeviceBuffer<std::int64_t> d_aux_counts(E);
  cuda::RouterConfig cfg{tc.rule, S, E, k, tc.capacity, tc.keep_highest_logits};
  const cuda::RouterOutput dout{d_gates.get(), d_expert.get(),     d_weight.get(),
                                d_slot.get(),  d_exp.get(),        d_kept.get(),
                                d_off.get(),   d_choice_row.get(), d_row_token.get(),
                                d_l_aux.get(), d_aux_counts.get()};
  cuda::route(cfg, dlogits.get(), gumbel.empty() ? nullptr : dgumbel.get(),
              priority.empty() ? nullptr : dprio.get(), ws.get(), dout, nullptr);

  GPU_CHECK(d_expert.download() == expert);
  const auto got_slot = d_slot.download();
  std::size_t slot_bad = 0;
  for (std::size_t c = 0; c < slot.size(); ++c) slot_bad += got_slot[c] != slot[c];
  GPU_CHECK_MSG(slot_bad == 0, "%zu of %zu slots differ", slot_bad, slot.size());
  GPU_CHECK(d_exp.download() == exp_counts);
  GPU_CHECK(d_kept.download() == kept_counts);
  std::vector<std::int64_t> offsets(E + 1, 0);
  for (std::int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + kept_counts[e];
  GPU_CHECK(d_off.download() == offsets);
  const auto got_row = d_choice_row.download();
  const auto got_tok = d_row_token.download();
  std::size_t row_bad = 0;
  for (std::int64_t c = 0; c < S * k; ++c) {
    const std::int64_t want = slot[c] < 0 ? -1 : offsets[expert[c]] + slot[c];
    row_bad += got_row[c] != want || (want >= 0 && got_tok[want] != c / k);
  }
  GPU_CHECK_MSG(row_bad == 0, "%zu choice_row / row_token entries differ", row_bad);
  std::int64_t worst = 0;
  const auto got_gates = d_gates.download(), got_weight = d_weight.download();
  for (std::size_t i = 0; i < gates.size(); ++i)
    worst = std::max(worst, gpu_test::ulp_distance(got_gates[i], gates[i]));
  for (std::size_t i = 0; i < weight.size(); ++i)
    worst = std::max(worst, gpu_test::ulp_distance(got_weight[i], weight[i]));
  GPU_CHECK_MSG(worst <= 8, "gates / weights differ by %lld ulp", static_cast<long long>(worst));
  std::int64_t dropped = 0;
  for (auto s : slot) dropped += s < 0;
  std::printf("    S=%lld E=%lld k=%lld C=%lld: %lld of %lld choices dropped\n",
              static_cast<long long>(S), static_cast<long long>(E), static_cast<long long>(k),
              static_cast<long long>(tc.capacity), static_cast<long long>(dropped),
              static_cast<long long>(S * k));

  // l_aux: a column sum over S tokens of the gates (a reduction, in double on both sides): within
  // gpu_test::reduction_bound(S); in practice the same float.
  const double e_aux = gpu_test::normalized_mse({l_aux}, d_l_aux.download());
  GPU_CHECK_MSG(e_aux <= gpu_test::reduction_bound(static_cast<double>(S)),
                "l_aux cpu %.9g gpu %.9g", l_aux, d_l_aux.download()[0]);

  // Backward from the CPU's gates: bit for bit, without and with the l_aux term.
  const auto grad_weight = gpu_test::random_floats(S * k, rng);
  DeviceBuffer<float> d_cpu_gates(gates), d_gw(grad_weight), d_grad(S * E);
  DeviceBuffer<std::int64_t> d_cpu_expert(expert), d_cpu_slot(slot);
  for (const float grad_l_aux : {0.0f, 0.75f}) {
    std::vector<float> grad_logits(S * E);
    cpu::gating_backward(cuda::gating_loss_of(tc.rule), gates.data(), expert.data(), slot.data(),
                         grad_weight.data(), grad_l_aux, S, E, k, grad_logits.data());
    if (grad_l_aux == 0.0f)
      cuda::router_backward(tc.rule, d_cpu_gates.get(), d_cpu_expert.get(), d_cpu_slot.get(),
                            d_gw.get(), S, E, k, d_grad.get(), nullptr);
    else
      cuda::router_backward(tc.rule, d_cpu_gates.get(), d_cpu_expert.get(), d_cpu_slot.get(),
                            d_gw.get(), grad_l_aux, d_aux_counts.get(), S, E, k, d_grad.get(),
                            nullptr);
    GPU_CHECK(gpu_test::bit_mismatches(d_grad.download(), grad_logits, "grad_logits") == 0);
  }
}

}  // namespace

int main() {
  using R = cuda::RouterSelection;
  std::vector<gpu_test::Case> cases;
  auto add = [&](const char* name, Case c) { cases.push_back({name, [c] { run_case(c); }}); };
  add("top-1 dropless", {R::top1, 1000, 16, 1, -1, false, false, false});
  add("top-1 RSample noise, RTS, capacity 40 (drops)",
      {R::top1, 1000, 16, 1, 40, true, true, false});
  add("top-1 ties, RTS priorities with ties, capacity 50",
      {R::top1, 777, 8, 1, 50, false, true, true});
  add("top-1 no RTS, position drops, capacity 63", {R::top1, 1000, 16, 1, 63, false, false, false});
  add("top-1 capacity exactly hit (C = max count)", {R::top1, 64, 1, 1, 64, false, true, false});
  add("top-2 Gumbel second expert, capacity 100", {R::top2, 1000, 16, 2, 100, true, false, false});
  add("top-2 ties, no sampling, dropless", {R::top2, 999, 8, 2, -1, false, false, true});
  add("top-2 ties, rounded Gumbel, capacity 180", {R::top2, 999, 8, 2, 180, true, false, true});
  add("top-6 of 64, probs policy, capacity 100", {R::topk, 2000, 64, 6, 100, false, false, false});
  add("top-6 of 64 dropless (an expert may get 0 tokens)",
      {R::topk, 300, 64, 6, -1, false, false, false});
  add("top-3 ties, probs policy, capacity 120", {R::topk, 1001, 8, 3, 120, false, false, true});
  add("top-3 ties, position policy, capacity 120",
      {R::topk, 1001, 8, 3, 120, false, false, true, false});
  add("top-4 large over-full experts (O(n^2) keep), capacity 1500",
      {R::topk, 5000, 8, 4, 1500, false, false, false});
  return gpu_test::run(cases);
}
