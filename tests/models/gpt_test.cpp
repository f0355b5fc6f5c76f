// Tests of GPT: parameter layout and segment ownership, GPT-2's initialisation, the loss against a
// naive double-precision reference, gradients of the dense twin and of the segmented MoE model
// (segments composed through a stand-in MoE, and end to end through MoELayer) against central
// differences, micro-batches interleaved on separate caches, the FLOP and parameter-count
// relations between the dense twin and the MoE model, overfitting, and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/gpt.hpp"
#include "models/model_test_util.hpp"

namespace troupe::test {
namespace {

// B = 2 sequences of T = 5 < seq_len = 6 tokens, so a batch need not fill the context.
constexpr std::int64_t kBatch = 2, kSeq = 5, kRows = kBatch * kSeq;

GPTConfig tiny_config(bool use_moe) {
  GPTConfig config;
  config.vocab_size = 11;
  config.seq_len = 6;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 8;
  config.ffn_hidden_size = 12;
  config.use_moe = use_moe;
  config.moe.num_experts = 3;
  config.moe.k = 2;
  config.moe.drop_tokens = false;  // routing stays put under small perturbations
  config.init_seed = 5;
  return config;
}

Batch random_batch(const GPTConfig& config, std::uint32_t seed) {
  Batch batch{Tensor::empty({kBatch, kSeq}, DType::i32), Tensor::empty({kBatch, kSeq}, DType::i32)};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> token(
      0, static_cast<std::int32_t>(config.vocab_size) - 1);
  for (std::int64_t i = 0; i < kRows; ++i) {
    batch.inputs.data<std::int32_t>()[i] = token(rng);
    batch.targets.data<std::int32_t>()[i] = token(rng);
  }
  return batch;
}

std::vector<std::string> names_of(const std::vector<Parameter*>& params) {
  std::vector<std::string> out;
  for (const Parameter* p : params) out.push_back(p->name);
  return out;
}

// ---- Naive double-precision reference ----------------------------------------------------------

Vec layernorm(const Vec& x, const Vec& gamma, const Vec& beta) {
  double mean = 0.0, var = 0.0;
  for (double e : x) mean += e;
  mean /= static_cast<double>(x.size());
  for (double e : x) var += (e - mean) * (e - mean);
  var /= static_cast<double>(x.size());
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    y[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * gamma[i] + beta[i];
  return y;
}

// FFN of block `layer` on row `row` (= b·T + t) of ln_2's output h.
using Ffn = std::function<Vec(std::int64_t layer, std::int64_t row, const Vec& h)>;

// The FFN as a GELU MLP named "<prefix>{w1, b1, w2, b2}" per layer: the dense twin's
// (h.l.mlp.fc / .proj) or a one-expert MoE layer's expert (whose gate weight is then 1).
Ffn mlp_ffn(const ParameterValues& p, const std::vector<std::string>& suffixes) {
  return [&p, suffixes](std::int64_t layer, std::int64_t, const Vec& h) {
    const std::string pre = "h." + std::to_string(layer) + ".";
    return linear(naive_gelu(linear(h, p.at(pre + suffixes[0]), p.at(pre + suffixes[1]))),
                  p.at(pre + suffixes[2]), p.at(pre + suffixes[3]));
  };
}
const std::vector<std::string> kDenseMlp{"mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight",
                                         "mlp.proj.bias"};

double naive_loss(const ParameterValues& p, const GPTConfig& config, const Batch& batch,
                  const Ffn& ffn) {
  const std::int64_t c = config.n_embd, hs = c / config.n_head;
  const std::int32_t* ids = batch.inputs.data<std::int32_t>();
  const std::int32_t* targets = batch.targets.data<std::int32_t>();
  const Vec& wte = p.at("wte.weight");
  const Vec& wpe = p.at("wpe.weight");
  double total = 0.0;
  for (std::int64_t b = 0; b < kBatch; ++b) {
    std::vector<Vec> x(kSeq, Vec(static_cast<std::size_t>(c)));
    for (std::int64_t t = 0; t < kSeq; ++t)
      for (std::int64_t i = 0; i < c; ++i)
        x[t][i] = wte[static_cast<std::size_t>(ids[b * kSeq + t] * c + i)] +
                  wpe[static_cast<std::size_t>(t * c + i)];
    for (std::int64_t l = 0; l < config.n_layer; ++l) {
      const std::string pre = "h." + std::to_string(l) + ".";
      std::vector<Vec> qkv(kSeq);
      for (std::int64_t t = 0; t < kSeq; ++t)
        qkv[t] = linear(layernorm(x[t], p.at(pre + "ln_1.weight"), p.at(pre + "ln_1.bias")),
                        p.at(pre + "attn.c_attn.weight"), p.at(pre + "attn.c_attn.bias"));
      std::vector<Vec> attended(kSeq, Vec(static_cast<std::size_t>(c), 0.0));
      for (std::int64_t t = 0; t < kSeq; ++t)
        for (std::int64_t h = 0; h < config.n_head; ++h) {
          Vec score(static_cast<std::size_t>(t + 1));
          double top = -1e300, sum = 0.0;
          for (std::int64_t j = 0; j <= t; ++j) {
            for (std::int64_t i = 0; i < hs; ++i)
              score[j] += qkv[t][h * hs + i] * qkv[j][c + h * hs + i];
            score[j] /= std::sqrt(static_cast<double>(hs));
            top = std::max(top, score[j]);
          }
          for (double& s : score) sum += (s = std::exp(s - top));
          for (std::int64_t j = 0; j <= t; ++j)
            for (std::int64_t i = 0; i < hs; ++i)
              attended[t][h * hs + i] += score[j] / sum * qkv[j][2 * c + h * hs + i];
        }
      for (std::int64_t t = 0; t < kSeq; ++t) {
        const Vec proj =
            linear(attended[t], p.at(pre + "attn.c_proj.weight"), p.at(pre + "attn.c_proj.bias"));
        for (std::int64_t i = 0; i < c; ++i) x[t][i] += proj[i];
        const Vec out = ffn(l, b * kSeq + t,
                            layernorm(x[t], p.at(pre + "ln_2.weight"), p.at(pre + "ln_2.bias")));
        for (std::int64_t i = 0; i < c; ++i) x[t][i] += out[i];
      }
    }
    for (std::int64_t t = 0; t < kSeq; ++t)
      total += naive_cross_entropy(
          linear(layernorm(x[t], p.at("ln_f.weight"), p.at("ln_f.bias")), p.at("lm_head.weight"),
                 Vec(static_cast<std::size_t>(config.vocab_size), 0.0)),
          targets[b * kSeq + t]);
  }
  return total / static_cast<double>(kRows);
}

// As in the LeNet tests: float model gradients against double central differences with
// h = 1e-6 (truncation and rounding of the difference below 1e-9); what remains is the float
// backward's rounding, ~1e-6 relative: atol 1e-6 (the gradients here are ~1e-3 .. 1) plus 1e-4
// relative.
constexpr double kRefStep = 1e-6, kRefAtol = 1e-6, kRefRtol = 1e-4;

}  // namespace

TEST_CASE("GPT: parameter layout, segment ownership and segment outputs", "[gpt]") {
  const GPTConfig config = tiny_config(true);
  GPT model(config);
  CHECK(model.name() == "gpt_moe");
  REQUIRE(model.num_moe_layers() == 2);
  const std::vector<std::string> block{
      "ln_1.weight",        "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
      "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias"};
  const std::vector<std::string> moe{"moe.gate.weight", "moe.experts.w1", "moe.experts.b1",
                                     "moe.experts.w2", "moe.experts.b2"};
  std::vector<std::string> segments[3] = {
      {"wte.weight", "wpe.weight"}, {}, {"ln_f.weight", "ln_f.bias", "lm_head.weight"}};
  std::vector<std::string> all{"wte.weight", "wpe.weight"};
  for (int l = 0; l < 2; ++l) {
    for (const std::string& n : block) {
      segments[l].push_back("h." + std::to_string(l) + "." + n);
      all.push_back("h." + std::to_string(l) + "." + n);
    }
    for (const std::string& n : moe) all.push_back("h." + std::to_string(l) + "." + n);
  }
  all.insert(all.end(), segments[2].begin(), segments[2].end());
  CHECK(names_of(model.parameters()) == all);
  for (int s = 0; s < 3; ++s) CHECK(names_of(model.segment_parameters(s)) == segments[s]);
  CHECK(find_parameter(model, "wte.weight").value.shape() == Shape{11, 8});
  CHECK(find_parameter(model, "wpe.weight").value.shape() == Shape{6, 8});
  CHECK(find_parameter(model, "h.1.attn.c_attn.weight").value.shape() == Shape{24, 8});
  CHECK(find_parameter(model, "h.1.moe.experts.w1").value.shape() == Shape{3, 12, 8});
  CHECK(find_parameter(model, "lm_head.weight").value.shape() == Shape{11, 8});
  CHECK(model.moe_layer(1).config().hidden_size == 8);
  CHECK(model.moe_layer(1).config().ffn_hidden_size == 12);

  const Batch batch = random_batch(config, 1);
  auto cache = model.make_cache();
  Tensor x = model.forward_segment(0, batch, Tensor(), *cache, true);
  CHECK(x.shape() == Shape{kRows, 8});
  x = model.forward_segment(1, batch, x, *cache, true);
  CHECK(x.shape() == Shape{kRows, 8});
  const Tensor loss = model.forward_segment(2, batch, x, *cache, true);
  REQUIRE(loss.numel() == 1);
  const LossResult result = model.loss(*cache);
  CHECK(result.loss == loss.to_vector()[0]);
  CHECK(result.count == kRows);
  CHECK(result.correct >= 0);
  CHECK(result.correct <= kRows);

  GPT dense(tiny_config(false));
  CHECK(dense.name() == "gpt_dense");
  CHECK(dense.num_moe_layers() == 0);
  CHECK(names_of(dense.segment_parameters(0)) == names_of(dense.parameters()));
  CHECK(find_parameter(dense, "h.0.mlp.fc.weight").value.shape() == Shape{12, 8});
  CHECK(find_parameter(dense, "h.0.mlp.proj.weight").value.shape() == Shape{8, 12});
}

TEST_CASE("GPT: initialisation is GPT-2's, reproducible from the seed", "[gpt]") {
  GPTConfig config = tiny_config(false);
  config.n_embd = 64;
  config.n_head = 4;
  config.n_layer = 4;
  config.ffn_hidden_size = 96;
  config.vocab_size = 70;
  config.seq_len = 64;
  GPT model(config);
  const double residual_std = 0.02 / std::sqrt(8.0);  // 0.02 / √(2 · n_layer)
  auto std_of = [&](const std::string& name) {
    double sq = 0.0, sum = 0.0;
    const std::vector<float> v = find_parameter(model, name).value.to_vector();
    for (float e : v) {
      sum += e;
      sq += static_cast<double>(e) * e;
    }
    const double n = static_cast<double>(v.size());
    CHECK(std::abs(sum / n) < 0.1 * std::sqrt(sq / n));  // centred: |mean| ≪ std
    return std::sqrt(sq / n);
  };
  // A sample standard deviation of n ≥ 4096 normal draws has relative standard error
  // 1/√(2n) ≤ 1.1 %: 7 % is a 6σ bound.
  for (const char* name : {"wte.weight", "wpe.weight", "h.0.attn.c_attn.weight",
                           "h.3.mlp.fc.weight", "lm_head.weight"})
    CHECK(std_of(name) == Approx(0.02).epsilon(0.07));
  for (const char* name : {"h.0.attn.c_proj.weight", "h.3.mlp.proj.weight"})
    CHECK(std_of(name) == Approx(residual_std).epsilon(0.07));
  for (const char* name : {"h.1.attn.c_attn.bias", "h.1.attn.c_proj.bias", "h.1.mlp.fc.bias",
                           "h.1.mlp.proj.bias", "h.2.ln_1.bias", "ln_f.bias"})
    for (float v : find_parameter(model, name).value.to_vector()) CHECK(v == 0.0f);
  for (const char* name : {"h.2.ln_1.weight", "h.2.ln_2.weight", "ln_f.weight"})
    for (float v : find_parameter(model, name).value.to_vector()) CHECK(v == 1.0f);

  GPT same(config);
  config.init_seed += 1;
  GPT other(config);
  CHECK(find_parameter(same, "h.2.mlp.fc.weight").value.to_vector() ==
        find_parameter(model, "h.2.mlp.fc.weight").value.to_vector());
  CHECK(find_parameter(other, "h.2.mlp.fc.weight").value.to_vector() !=
        find_parameter(model, "h.2.mlp.fc.weight").value.to_vector());
}

TEST_CASE("GPT: loss matches a naive double-precision reference", "[gpt]") {
  // Float forward with ~1e-7 relative rounding per operation over short sums: 1e-5 relative.
  SECTION("dense twin") {
    const GPTConfig config = tiny_config(false);
    GPT model(config);
    const Batch batch = random_batch(config, 2);
    ModelRunner runner(model, true);
    const ParameterValues p = values_of(model);
    CHECK(runner.forward(batch) ==
          Approx(naive_loss(p, config, batch, mlp_ffn(p, kDenseMlp))).epsilon(1e-5));
  }
  SECTION("one expert per layer: the gate weight is 1, so each FFN is its expert") {
    GPTConfig config = tiny_config(true);
    config.moe.num_experts = 1;
    config.moe.k = 1;
    GPT model(config);
    const Batch batch = random_batch(config, 3);
    ModelRunner runner(model, true);
    const double total = runner.forward(batch, false);
    const ParameterValues p = values_of(model);
    const double ce = runner.loss().loss;
    CHECK(ce == Approx(naive_loss(p, config, batch,
                                  mlp_ffn(p, {"moe.experts.w1", "moe.experts.b1", "moe.experts.w2",
                                              "moe.experts.b2"})))
                    .epsilon(1e-5));
    // Each layer's l_aux is 1 with one expert: 0.01 · (1 + 1).
    CHECK(total - ce == Approx(0.02).epsilon(1e-5));
  }
}

TEST_CASE("GPT: segments composed through a stand-in MoE match central differences", "[gpt]") {
  // The stand-in y = x ⊙ S + offset (ModelRunner) replaces each MoE layer, so the reference is
  // exact: this checks every segment's parameter gradients, the gradient each segment returns for
  // its moe_output (the offsets), and the residual gradient segments hand back through the cache.
  const GPTConfig config = tiny_config(true);
  GPT model(config);
  const Batch batch = random_batch(config, 4);
  ModelRunner runner(model, false);
  for (Tensor& offset : runner.output_offsets) offset = Tensor::zeros({kRows, 8});
  zero_all_grads(model);
  runner.forward(batch);
  runner.backward(batch, 1.3f);  // d(total)/d(loss) ≠ 1 must scale every gradient

  ParameterValues p = values_of(model);
  std::vector<Vec> scale, offset;
  for (std::int64_t l = 0; l < 2; ++l) {
    const std::vector<float> s = runner.stand_in_scale(l).to_vector();
    scale.emplace_back(s.begin(), s.end());
    offset.emplace_back(static_cast<std::size_t>(kRows * 8), 0.0);
  }
  const Ffn stand_in = [&](std::int64_t l, std::int64_t row, const Vec& h) {
    Vec y(h.size());
    for (std::size_t i = 0; i < h.size(); ++i)
      y[i] = h[i] * scale[l][row * 8 + i] + offset[l][row * 8 + i];
    return y;
  };
  auto objective = [&] { return 1.3 * naive_loss(p, config, batch, stand_in); };
  std::vector<std::string> dense_names;
  for (std::int64_t s = 0; s <= 2; ++s)
    for (const std::string& name : names_of(model.segment_parameters(s)))
      dense_names.push_back(name);
  std::size_t checked = static_cast<std::size_t>(
      check_against_reference(model, p, dense_names, kRefStep, kRefAtol, kRefRtol, objective));
  for (std::int64_t l = 0; l < 2; ++l)
    checked += check_samples(
        "moe_output " + std::to_string(l), runner.output_grad(l), kRefAtol, kRefRtol,
        [&](std::int64_t i) {
          return central_difference(offset[l].data(), i, kRefStep, objective);
        },
        8);
  CHECK(checked == 6 * dense_names.size() + 2 * 11);
}

TEST_CASE("GPT: dense twin gradients match double-precision central differences", "[gpt]") {
  const GPTConfig config = tiny_config(false);
  GPT model(config);
  const Batch batch = random_batch(config, 5);
  ModelRunner runner(model, true);
  zero_all_grads(model);
  runner.forward(batch);
  runner.backward(batch);
  ParameterValues p = values_of(model);
  const Ffn ffn = mlp_ffn(p, kDenseMlp);
  const std::vector<std::string> names = names_of(model.parameters());
  CHECK(static_cast<std::size_t>(check_against_reference(
            model, p, names, kRefStep, kRefAtol, kRefRtol,
            [&] { return naive_loss(p, config, batch, ffn); })) == 6 * names.size());
}

TEST_CASE("GPT: end-to-end gradients through MoELayer match central differences", "[gpt]") {
  // 3 experts, top-2, no drops, through MoELayer::forward / backward with l_aux, in evaluation
  // mode so no Gumbel noise picks the second expert (a near-tie it creates could flip under the
  // perturbation, and the combine weights jump when it does). The MoE layer has no double
  // reference here, so these are differences of the float model: an O(1) loss with ~1e-7
  // relative rounding gives ~1e-4 of noise at h = 1e-3, and the h² curvature term of this smooth
  // model is smaller still; atol 3e-4 plus 1 % relative.
  const GPTConfig config = tiny_config(true);
  GPT model(config);
  const Batch batch = random_batch(config, 6);
  ModelRunner runner(model, true);
  for (Tensor& offset : runner.output_offsets) offset = Tensor::zeros({kRows, 8});
  auto objective = [&] { return runner.forward(batch, false); };
  zero_all_grads(model);
  objective();
  runner.backward(batch);
  std::size_t checked = 0;
  const std::vector<Parameter*> params = model.parameters();
  for (Parameter* param : params)
    checked += static_cast<std::size_t>(
        check_gradient(param->name, param->value, param->grad, 1e-3f, 3e-4, 1e-2, objective));
  for (std::int64_t l = 0; l < 2; ++l)
    checked += static_cast<std::size_t>(
        check_gradient("moe_output " + std::to_string(l), runner.output_offsets[l],
                       runner.output_grad(l), 1e-3f, 3e-4, 1e-2, objective, 8));
  CHECK(checked == 6 * params.size() + 2 * 11);
}

TEST_CASE("GPT: micro-batches interleaved on separate caches give the sequential gradients",
          "[gpt]") {
  // Two micro-batches in flight at once, as a pipelined executor runs them: forward A0 B0 A1 B1 A2
  // B2, backward B2 A2 B1 A1 B0 A0, with the identity as MoE layer. Gradients must equal running
  // A then B, each start to finish; only the summation order of the += differs (1e-6 relative).
  const GPTConfig config = tiny_config(true);
  GPT model(config);
  const Batch batches[2] = {random_batch(config, 7), random_batch(config, 8)};
  auto sequential = [&] {
    zero_all_grads(model);
    for (const Batch& batch : batches) {
      auto cache = model.make_cache();
      Tensor x;
      for (std::int64_t s = 0; s <= 2; ++s) x = model.forward_segment(s, batch, x, *cache, true);
      Tensor g = Tensor::from_vector({0.5f}, {1});
      for (std::int64_t s = 2; s >= 0; --s) g = model.backward_segment(s, batch, g, *cache);
    }
    std::vector<std::vector<float>> grads;
    for (Parameter* param : model.parameters()) grads.push_back(param->grad.to_vector());
    return grads;
  };
  const auto expected = sequential();

  zero_all_grads(model);
  std::unique_ptr<SegmentCache> caches[2] = {model.make_cache(), model.make_cache()};
  Tensor x[2], g[2];
  float losses[2];
  for (std::int64_t s = 0; s <= 2; ++s)
    for (int m = 0; m < 2; ++m) x[m] = model.forward_segment(s, batches[m], x[m], *caches[m], true);
  for (int m = 0; m < 2; ++m) {
    losses[m] = model.loss(*caches[m]).loss;
    g[m] = Tensor::from_vector({0.5f}, {1});
  }
  CHECK(losses[0] != losses[1]);
  for (std::int64_t s = 2; s >= 0; --s)
    for (int m = 1; m >= 0; --m) g[m] = model.backward_segment(s, batches[m], g[m], *caches[m]);
  const std::vector<Parameter*> params = model.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::vector<float> got = params[i]->grad.to_vector();
    for (std::size_t j = 0; j < got.size(); ++j) {
      INFO(params[i]->name << "[" << j << "]");
      CHECK(got[j] == Approx(expected[i][j]).epsilon(1e-5).margin(1e-7));
    }
  }
}

TEST_CASE("GPT: the dense twin with FFN width k*f costs the MoE model's active FLOPs", "[gpt]") {
  GPTConfig moe = tiny_config(true);
  moe.moe.num_experts = 4;
  moe.moe.k = 2;
  GPTConfig dense = tiny_config(false);
  dense.ffn_hidden_size = moe.moe.k * moe.ffn_hidden_size;

  // Hand-derived for C = 8, f = 12, T = 6, V = 11, L = 2, E = 4, k = 2, per token:
  // attention 2·(C·3C + 2·T·C + C·C) = 2·(192 + 96 + 64) = 704 per layer; experts
  // k · 2·(C·f + f·C) = 768 per layer; router 2·C·E = 64 per layer; head 2·C·V = 176.
  const GPTFlops m = gpt_forward_flops_per_token(moe);
  CHECK(m.attention == 2 * 704);
  CHECK(m.ffn == 2 * 768);
  CHECK(m.router == 2 * 64);
  CHECK(m.head == 176);
  CHECK(m.total() == 1408 + 1536 + 128 + 176);
  const GPTFlops d = gpt_forward_flops_per_token(dense);
  CHECK(d.ffn == m.ffn);
  CHECK(d.router == 0);
  CHECK(d.total() == m.total() - m.router);

  // Parameters: each MoE layer holds E experts (2·C·f + f + C each) and the gate (E·C) where the
  // dense twin of the same width f holds one MLP.
  GPTConfig same_width = tiny_config(false);
  GPT moe_model(moe), dense_model(same_width);
  const std::int64_t expert = 2 * 8 * 12 + 12 + 8;
  CHECK(count_parameters(moe_model) - count_parameters(dense_model) == 2 * (3 * expert + 4 * 8));
  // Doubling the dense twin's width adds C·f + f + f·C per layer (the output bias stays).
  GPT twin(dense);
  CHECK(count_parameters(twin) - count_parameters(dense_model) == 2 * (2 * 8 * 12 + 12));
}

TEST_CASE("GPT: a few SGD steps overfit a tiny batch", "[gpt]") {
  for (const bool use_moe : {true, false}) {
    DYNAMIC_SECTION((use_moe ? "MoE, 3 experts, top-2" : "dense twin")) {
      GPTConfig config = tiny_config(use_moe);
      config.moe.drop_tokens = true;
      config.moe.min_capacity = 2;
      GPT model(config);
      const Batch batch = random_batch(config, 9);
      ModelRunner runner(model, true);
      const double first = runner.forward(batch);
      double last = first;
      for (int step = 0; step < 40; ++step) {
        runner.backward(batch);
        sgd_step(model, 0.5f);
        last = runner.forward(batch);
      }
      INFO("loss " << first << " -> " << last);
      CHECK(last < 0.5 * first);
    }
  }
}

TEST_CASE("GPT: bad configurations and inputs throw clear errors", "[gpt]") {
  auto rejects = [](auto edit, const char* message) {
    GPTConfig config = tiny_config(true);
    edit(config);
    CHECK_THROWS_WITH(GPT(config), Catch::Contains(message));
  };
  rejects([](GPTConfig& c) { c.vocab_size = 1; }, "vocab_size = 1");
  rejects([](GPTConfig& c) { c.seq_len = 0; }, "seq_len = 0");
  rejects([](GPTConfig& c) { c.n_layer = 0; }, "n_layer = 0");
  rejects([](GPTConfig& c) { c.n_embd = 9; }, "n_embd = 9");  // not a multiple of n_head = 2
  rejects([](GPTConfig& c) { c.ffn_hidden_size = 0; }, "ffn_hidden_size = 0");
  rejects([](GPTConfig& c) { c.aux_loss_coef = NAN; }, "aux_loss_coef");
  rejects([](GPTConfig& c) { c.moe.hidden_size = 16; }, "moe.hidden_size = 16");
  rejects([](GPTConfig& c) { c.moe.ffn_hidden_size = 7; }, "moe.ffn_hidden_size = 7");
  rejects([](GPTConfig& c) { c.moe.activation = Activation::relu; }, "moe.activation = relu");
  rejects([](GPTConfig& c) { c.moe.k = 4; }, "k = 4");  // MoEConfig's own check
  GPTConfig dense_config = tiny_config(false);
  dense_config.moe.k = 4;  // the dense twin has no MoE layer to configure
  CHECK_NOTHROW(GPT(dense_config));

  const GPTConfig config = tiny_config(true);
  GPT model(config);
  auto cache = model.make_cache();
  Batch batch = random_batch(config, 10);
  CHECK_THROWS_AS(model.forward_segment(3, batch, Tensor(), *cache, true), std::out_of_range);
  CHECK_THROWS_AS(model.moe_layer(2), std::out_of_range);
  CHECK_THROWS_AS(model.loss(*cache), std::logic_error);
  CHECK_THROWS_WITH(model.forward_segment(1, batch, Tensor::zeros({kRows, 8}), *cache, true),
                    Catch::Contains("segment 0 has not run forward"));

  Batch too_long{Tensor::zeros({1, 7}, DType::i32), Tensor::zeros({1, 7}, DType::i32)};
  CHECK_THROWS_WITH(model.forward_segment(0, too_long, Tensor(), *cache, true),
                    Catch::Contains("seq_len = 6"));
  Batch float_tokens{Tensor::zeros({2, 5}), batch.targets};
  CHECK_THROWS_AS(model.forward_segment(0, float_tokens, Tensor(), *cache, true),
                  std::invalid_argument);
  Batch bad_token = batch;
  bad_token.inputs = batch.inputs.clone();
  bad_token.inputs.data<std::int32_t>()[3] = 11;
  CHECK_THROWS_AS(model.forward_segment(0, bad_token, Tensor(), *cache, true), std::out_of_range);

  Tensor h = model.forward_segment(0, batch, Tensor(), *cache, true);
  CHECK_THROWS_AS(model.forward_segment(1, batch, Tensor::zeros({kRows, 7}), *cache, true),
                  std::invalid_argument);
  h = model.forward_segment(1, batch, h, *cache, true);
  model.forward_segment(2, batch, h, *cache, true);
  // Segment 1's backward needs the residual gradient segment 2's backward leaves in the cache.
  CHECK_THROWS_WITH(model.backward_segment(1, batch, Tensor::zeros({kRows, 8}), *cache),
                    Catch::Contains("segment 2 has not run backward"));
  CHECK_THROWS_AS(model.backward_segment(2, batch, Tensor::zeros({kRows, 8}), *cache),
                  std::invalid_argument);
  const Tensor g = model.backward_segment(2, batch, Tensor::from_vector({1.0f}, {1}), *cache);
  CHECK(g.shape() == Shape{kRows, 8});
  CHECK_THROWS_AS(model.backward_segment(1, batch, Tensor::zeros({kRows, 9}), *cache),
                  std::invalid_argument);
}

}  // namespace troupe::test
