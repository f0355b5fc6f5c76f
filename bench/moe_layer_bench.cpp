// CPU benchmark of one MoE layer's forward + backward, next to the time of its expert GEMMs alone.
//
// The experts' grouped GEMMs (per expert: 2 in the forward, 4 in the backward) are most of the
// layer's arithmetic; routing, permute, activation, combine, the router's backward and the
// buffers the layer allocates come on top. This program times the whole layer and then the same
// grouped GEMMs (troupe::cpu::grouped_linear_*, through OpenBLAS) over the same routed row counts,
// and prints the ratio: how much the rest costs. It does so with DeepSpeed's defaults
// (drop_tokens = true, capacity_factor = 1.0) and without drops.
//
// Before timing it checks the layer against a naive double-precision per-token loop on a small
// shape and exits 1 on a mismatch (llm.c's dev/cuda convention); at the full shape it checks that
// the outputs are finite and not all zero. Thread count: OPENBLAS_NUM_THREADS or --threads; the
// non-GEMM kernels' intra-op pool gets the same count, as for any single-layer run.
//
//   OPENBLAS_NUM_THREADS=2 troupe_bench_moe_layer [--tokens 4096] [--hidden 512] [--ffn 2048]
//       [--experts 8] [--k 2] [--iters 10] [--warmup 2] [--threads N] [--json results.jsonl]
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/bench_common.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/ops/threads.hpp"
#include "models/moe/moe_layer.hpp"
#include "models/noise.hpp"

namespace {

using namespace troupe;

constexpr std::uint64_t kSeed = 1234;
// DeepSpeed users typically scale l_aux by 0.01; any non-zero value runs the router's l_aux
// backward.
constexpr float kAuxLossCoefficient = 0.01f;

// A check failed: the program exits 1 (other errors, such as bad options, exit 2).
struct ValidationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::int64_t tokens = 4096, hidden = 512, ffn = 2048, experts = 8, k = 2;
  int iters = 10, warmup = 2, threads = 0;  // threads 0: leave OpenBLAS's own setting
  std::string json;
};

// gelu_tanh, the default, is what the validation's reference computes.
MoEConfig make_config(std::int64_t d, std::int64_t f, std::int64_t E, std::int64_t k,
                      bool drop_tokens) {
  MoEConfig c;
  c.hidden_size = d;
  c.ffn_hidden_size = f;
  c.num_experts = E;
  c.k = k;
  c.drop_tokens = drop_tokens;
  c.capacity_factor = 1.0;
  c.activation = Activation::gelu_tanh;
  c.validate();
  return c;
}

Tensor random_tensor(const Shape& shape, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = normal(rng);
  return t;
}

std::vector<double> to_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

// The layer's output token by token in double precision, from the spec: out_s = Σ_j w_sj ·
// expert_{e_sj}(x_s), gates = softmax(x_s · Wgᵀ), w = g_e for k = 1 and g_e / max(Σ_kept g, ε)
// over the token's kept choices for k ≥ 2, expert(x) = W2 · gelu(W1 · x + b1) + b2. Which experts
// a token chose and which choices were dropped come from the layer's plan: routing is discrete
// and the 2nd expert is sampled with the layer's noise. The 1st expert is checked to be the
// argmax of the gates. Returns the largest |layer − reference|.
double max_error_against_reference(const MoEConfig& config, std::int64_t S) {
  MoELayer layer(config, kSeed);
  const Tensor x = random_tensor({S, config.hidden_size}, 1);
  SeededNoise noise(kSeed, 0);
  MoEForwardState st;
  const MoEOutput out = layer.forward(x, /*training=*/true, noise, st);

  const std::int64_t d = config.hidden_size, f = config.ffn_hidden_size, E = config.num_experts,
                     k = config.k;
  const std::vector<double> xs = to_double(x), wg = to_double(layer.router().weight().value),
                            w1 = to_double(layer.experts().w1().value),
                            b1 = to_double(layer.experts().b1().value),
                            w2 = to_double(layer.experts().w2().value),
                            b2 = to_double(layer.experts().b2().value);
  const std::vector<float> got = out.output.to_vector();
  const RoutingPlan& plan = st.plan;
  double max_error = 0.0;
  for (std::int64_t s = 0; s < S; ++s) {
    const double* xt = &xs[s * d];
    std::vector<double> gates(E, 0.0);
    for (std::int64_t e = 0; e < E; ++e)
      for (std::int64_t i = 0; i < d; ++i) gates[e] += wg[e * d + i] * xt[i];
    const double max_logit = *std::max_element(gates.begin(), gates.end());
    double sum = 0.0;
    for (double& g : gates) sum += g = std::exp(g - max_logit);
    for (double& g : gates) g /= sum;

    std::vector<double> sorted = gates;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const auto argmax = std::max_element(gates.begin(), gates.end()) - gates.begin();
    // A near-tie may round either way in float32; 1e-6 is ~10 float32 ulps of a gate ≤ 1.
    if (plan.expert[s * k] != argmax && sorted[0] - sorted[1] > 1e-6)
      throw ValidationError("token " + std::to_string(s) + " routed first to expert " +
                            std::to_string(plan.expert[s * k]) + ", the gates' argmax is " +
                            std::to_string(argmax));

    double kept_sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j)
      if (plan.kept(s * k + j)) kept_sum += gates[plan.expert[s * k + j]];
    std::vector<double> expected(d, 0.0), hidden(f);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t c = s * k + j, e = plan.expert[c];
      if (!plan.kept(c)) continue;
      const double w =
          k == 1 ? gates[e]
                 : gates[e] / std::max(kept_sum, double(std::numeric_limits<float>::epsilon()));
      for (std::int64_t o = 0; o < f; ++o) {
        double v = b1[e * f + o];
        for (std::int64_t i = 0; i < d; ++i) v += w1[(e * f + o) * d + i] * xt[i];
        hidden[o] = gelu_tanh(v);
      }
      for (std::int64_t o = 0; o < d; ++o) {
        double v = b2[e * d + o];
        for (std::int64_t i = 0; i < f; ++i) v += w2[(e * d + o) * f + i] * hidden[i];
        expected[o] += w * v;
      }
    }
    for (std::int64_t i = 0; i < d; ++i)
      max_error = std::max(max_error, std::abs(got[s * d + i] - expected[i]));
  }
  return max_error;
}

void require_finite_nonzero(const Tensor& t, const std::string& what) {
  const float* p = t.data<float>();
  bool nonzero = false;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(p[i]))
      throw ValidationError(what + " has a non-finite value at element " + std::to_string(i));
    nonzero = nonzero || p[i] != 0.0f;
  }
  if (!nonzero) throw ValidationError(what + " is all zeros");
}

struct Result {
  std::string label;
  MoEConfig config;
  std::int64_t tokens = 0, capacity = -1, rows = 0;
  double layer_ms = 0, gemm_ms = 0;

  // Forward 2 GEMMs, backward 4, each 2·R·d·f FLOPs over the R rows the experts really process
  // (R = S·k without drops).
  double gemm_flops() const {
    return 6.0 * 2.0 * double(rows) * double(config.hidden_size) * double(config.ffn_hidden_size);
  }
  double gemm_gflops() const { return gemm_flops() / (gemm_ms * 1e6); }
};

// One configuration at the full shape: the layer, its inputs, and the GEMM-only buffers sized for
// the rows the layer's routing produces. The constructor runs both once and checks the outputs.
class ConfigBench {
 public:
  ConfigBench(const Options& opt, bool drop_tokens)
      : config_(make_config(opt.hidden, opt.ffn, opt.experts, opt.k, drop_tokens)),
        layer_(config_, kSeed),
        x_(random_tensor({opt.tokens, opt.hidden}, 1)),
        grad_out_(random_tensor({opt.tokens, opt.hidden}, 2)) {
    const std::string name = drop_tokens ? "drop_tokens=true" : "drop_tokens=false";
    MoEForwardState st;
    const auto [output, grad_x] = layer_step(st);
    require_finite_nonzero(output, name + " layer output");
    require_finite_nonzero(grad_x, name + " layer grad_x");
    capacity_ = st.plan.capacity;
    offsets_ = st.plan.expert_offsets;

    const std::int64_t R = st.plan.rows(), d = opt.hidden, f = opt.ffn, E = opt.experts;
    rows_ = random_tensor({R, d}, 3);
    grad_y_ = random_tensor({R, d}, 4);
    hidden_ = Tensor::empty({R, f});
    y_ = Tensor::empty({R, d});
    grad_hidden_ = Tensor::empty({R, f});
    grad_rows_ = Tensor::empty({R, d});
    grad_w1_ = Tensor::empty({E, f, d});
    grad_b1_ = Tensor::empty({E, f});
    grad_w2_ = Tensor::empty({E, d, f});
    grad_b2_ = Tensor::empty({E, d});
    gemm_step();
    require_finite_nonzero(y_, name + " GEMM-only output");
    require_finite_nonzero(grad_rows_, name + " GEMM-only grad_rows");
  }

  Result time(const Options& opt) {
    Result r;
    r.label = config_.drop_tokens ? "drop cf=1.0" : "no drop";
    r.config = config_;
    r.tokens = opt.tokens;
    r.capacity = capacity_;
    r.rows = offsets_.back();
    r.layer_ms = troupe::bench::median_ms(opt.warmup, opt.iters, [&] {
      MoEForwardState st;
      layer_step(st);
    });
    r.gemm_ms = troupe::bench::median_ms(opt.warmup, opt.iters, [&] { gemm_step(); });
    return r;
  }

 private:
  // A fresh noise stream with the same key each step: every step routes identically, so the
  // GEMM-only step sees exactly the layer's row counts. Returns (output, grad_x).
  std::pair<Tensor, Tensor> layer_step(MoEForwardState& st) {
    SeededNoise noise(kSeed, 0);
    const MoEOutput out = layer_.forward(x_, /*training=*/true, noise, st);
    return {out.output, layer_.backward(grad_out_, kAuxLossCoefficient, x_, st)};
  }

  // The experts' grouped GEMMs alone, on the layer's own weights, into buffers allocated once.
  void gemm_step() {
    const std::int64_t d = config_.hidden_size, f = config_.ffn_hidden_size,
                       E = config_.num_experts;
    Experts& ex = layer_.experts();
    cpu::grouped_linear_forward(rows_.data<float>(), offsets_.data(), E,
                                ex.w1().value.data<float>(), ex.b1().value.data<float>(),
                                hidden_.data<float>(), d, f);
    cpu::grouped_linear_forward(hidden_.data<float>(), offsets_.data(), E,
                                ex.w2().value.data<float>(), ex.b2().value.data<float>(),
                                y_.data<float>(), f, d);
    cpu::grouped_linear_backward(hidden_.data<float>(), offsets_.data(), E,
                                 ex.w2().value.data<float>(), grad_y_.data<float>(),
                                 grad_hidden_.data<float>(), grad_w2_.data<float>(),
                                 grad_b2_.data<float>(), f, d);
    cpu::grouped_linear_backward(rows_.data<float>(), offsets_.data(), E,
                                 ex.w1().value.data<float>(), grad_hidden_.data<float>(),
                                 grad_rows_.data<float>(), grad_w1_.data<float>(),
                                 grad_b1_.data<float>(), d, f);
  }

  MoEConfig config_;
  MoELayer layer_;
  Tensor x_, grad_out_;                   // (S, d)
  std::int64_t capacity_ = -1;            // C, −1 without drops
  std::vector<std::int64_t> offsets_;     // (E + 1) the routing's expert row offsets
  Tensor rows_, grad_y_, y_, grad_rows_;  // (R, d)
  Tensor hidden_, grad_hidden_;           // (R, f)
  Tensor grad_w1_, grad_w2_;              // (E, f, d), (E, d, f)
  Tensor grad_b1_, grad_b2_;              // (E, f), (E, d)
};

nlohmann::json to_json(const Result& r, const Options& opt) {
  return {{"bench", "moe_layer"},
          {"config", r.label},
          {"drop_tokens", r.config.drop_tokens},
          {"capacity_factor", r.config.capacity_factor},
          {"capacity", r.capacity},
          {"tokens", r.tokens},
          {"hidden", r.config.hidden_size},
          {"ffn", r.config.ffn_hidden_size},
          {"experts", r.config.num_experts},
          {"k", r.config.k},
          {"rows", r.rows},
          {"iters", opt.iters},
          {"warmup", opt.warmup},
          {"openblas_threads", openblas_get_num_threads()},
          {"intra_op_threads", ops::cpu_intra_op_threads()},
          {"layer_ms", r.layer_ms},
          {"gemm_ms", r.gemm_ms},
          {"ratio", r.layer_ms / r.gemm_ms},
          {"gemm_gflops", r.gemm_gflops()}};
}

int run(const Options& opt) {
  troupe::bench::require_at_least("--tokens", opt.tokens, 1);
  troupe::bench::require_at_least("--hidden", opt.hidden, 1);
  troupe::bench::require_at_least("--ffn", opt.ffn, 1);
  troupe::bench::require_at_least("--experts", opt.experts, 1);
  troupe::bench::require_at_least("--k", opt.k, 1);
  troupe::bench::require_at_least("--iters", opt.iters, 1);
  troupe::bench::require_at_least("--warmup", opt.warmup, 0);
  troupe::bench::require_at_least("--threads", opt.threads, 0);
  // k ≤ E and the like, before any work.
  make_config(opt.hidden, opt.ffn, opt.experts, opt.k, /*drop_tokens=*/true);
  if (opt.threads > 0) openblas_set_num_threads(opt.threads);
  ops::set_cpu_intra_op_threads(openblas_get_num_threads());
  std::ofstream json;
  if (!opt.json.empty()) {
    json.open(opt.json, std::ios::app);
    if (!json) throw std::invalid_argument("--json: cannot open '" + opt.json + "' for appending");
  }

  const char* env_threads = std::getenv("OPENBLAS_NUM_THREADS");
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) != 3) load[0] = load[1] = load[2] = -1;
  std::printf("# OpenBLAS: %s\n", openblas_get_config());
  std::printf(
      "# OPENBLAS_NUM_THREADS=%s, --threads %d, OpenBLAS threads in use: %d, "
      "intra-op threads: %d, hardware threads: %u\n",
      env_threads ? env_threads : "(unset)", opt.threads, openblas_get_num_threads(),
      ops::cpu_intra_op_threads(), std::thread::hardware_concurrency());
  std::printf("# load average at start: %.2f %.2f %.2f\n", load[0], load[1], load[2]);

  // float32 layer against double. Outputs are ≲ 1; the float32 rounding bound for chained dot
  // products of n ≤ d + f = 48 terms is n · 6e-8 · Σ|terms| with Σ|terms| ≲ 2, about 6e-6
  // (measured: ~1e-7). 1e-5 sits above that bound yet fails a combine weight off by 1e-4
  // (checked by hand), let alone a wrong expert or drop (errors of O(0.1)).
  constexpr double kTolerance = 1e-5;
  for (bool drop_tokens : {true, false}) {
    const double error = max_error_against_reference(make_config(16, 32, 4, 2, drop_tokens), 64);
    std::printf(
        "# validation S=64 d=16 f=32 E=4 k=2 drop_tokens=%s: max |error| = %.3g "
        "(tolerance %.0e)\n",
        drop_tokens ? "true" : "false", error, kTolerance);
    if (!(error <= kTolerance))
      throw ValidationError("the layer does not match the naive reference (max |error| " +
                            std::to_string(error) + ")");
  }

  std::vector<ConfigBench> benches;
  benches.reserve(2);
  for (bool drop_tokens : {true, false}) benches.emplace_back(opt, drop_tokens);
  std::printf("All results match. Starting benchmarks.\n");
  std::vector<Result> results;
  for (ConfigBench& bench : benches) results.push_back(bench.time(opt));
  std::printf(
      "# fwd+bwd per step, median of %d iterations after %d warm-up; GFLOP/s counts "
      "6 GEMMs × 2·rows·d·f\n",
      opt.iters, opt.warmup);
  std::printf("#%12s %6s %5s %5s %3s %2s %5s %6s %11s %10s %10s %6s %8s\n", "config", "S", "d", "f",
              "E", "k", "C", "rows", "layer(ms)", "gemm(ms)", "other(ms)", "ratio", "GFLOP/s");
  for (const Result& r : results) {
    std::printf(
        " %12s %6lld %5lld %5lld %3lld %2lld %5lld %6lld %11.2f %10.2f %10.2f %6.2f %8.1f\n",
        r.label.c_str(), static_cast<long long>(r.tokens),
        static_cast<long long>(r.config.hidden_size),
        static_cast<long long>(r.config.ffn_hidden_size),
        static_cast<long long>(r.config.num_experts), static_cast<long long>(r.config.k),
        static_cast<long long>(r.capacity), static_cast<long long>(r.rows), r.layer_ms, r.gemm_ms,
        r.layer_ms - r.gemm_ms, r.layer_ms / r.gemm_ms, r.gemm_gflops());
    if (json.is_open()) json << to_json(r, opt).dump() << '\n';
  }
  if (getloadavg(load, 3) == 3)
    std::printf("# load average at end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "Times one MoE layer's forward + backward on the CPU against its expert GEMMs alone"};
  app.option_defaults()->always_capture_default();
  app.add_option("--tokens", opt.tokens, "tokens S per micro-batch");
  app.add_option("--hidden", opt.hidden, "model width d");
  app.add_option("--ffn", opt.ffn, "expert hidden width f");
  app.add_option("--experts", opt.experts, "experts E");
  app.add_option("--k", opt.k, "experts per token (1 ≤ k ≤ E)");
  app.add_option("--iters", opt.iters, "timed iterations");
  app.add_option("--warmup", opt.warmup, "untimed iterations first");
  app.add_option("--threads", opt.threads,
                 "OpenBLAS threads; 0 keeps OPENBLAS_NUM_THREADS (or OpenBLAS's default)");
  app.add_option("--json", opt.json, "append one JSON line per configuration to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const ValidationError& e) {
    std::fprintf(stderr, "validation FAILED: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
