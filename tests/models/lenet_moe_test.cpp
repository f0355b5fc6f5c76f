// Tests of LeNetMoE: layer shapes for MNIST- and CIFAR-sized inputs, PyTorch's initialisation, the
// loss against a naive double-precision reference, each segment's backward and the whole model's
// gradients (through the MoE layer) against central differences, overfitting a tiny batch, and
// the errors bad configurations and inputs raise.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/lenet_moe.hpp"
#include "models/model_test_util.hpp"

namespace troupe::test {
namespace {

// 3×17×18 images: conv → 13×14, pool → 6×7, conv → 2×3, pool → 1×1, so 16 flat features; odd
// widths everywhere.
LeNetMoEConfig tiny_config(bool use_moe) {
  LeNetMoEConfig config;
  config.channels = 3;
  config.height = 17;
  config.width = 18;
  config.num_classes = 5;
  config.use_moe = use_moe;
  config.moe.hidden_size = 9;
  config.moe.ffn_hidden_size = 7;
  config.moe.num_experts = 3;
  config.moe.k = 2;
  config.moe.drop_tokens = false;  // routing stays put under small perturbations
  // Smooth, so finite differences of fc3 do not straddle kinks (the convolutions keep ReLU).
  config.moe.activation = Activation::gelu_tanh;
  config.init_seed = 42;
  return config;
}

Batch random_batch(const LeNetMoEConfig& config, std::int64_t b, std::uint32_t seed) {
  Batch batch{random_tensor({b, config.channels, config.height, config.width}, seed),
              Tensor::empty({b}, DType::i32)};
  std::mt19937 rng(seed + 1);
  for (std::int64_t i = 0; i < b; ++i)
    batch.targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(
        std::uniform_int_distribution<std::int64_t>(0, config.num_classes - 1)(rng));
  return batch;
}

// ---- Naive double-precision reference ----------------------------------------------------------

struct Planes {
  Vec v;
  std::int64_t c, h, w;
};

Planes conv5(const Planes& x, const Vec& w, const Vec& b, std::int64_t oc) {
  Planes y{{}, oc, x.h - 4, x.w - 4};
  y.v.assign(static_cast<std::size_t>(oc * y.h * y.w), 0.0);
  for (std::int64_t o = 0; o < oc; ++o)
    for (std::int64_t i = 0; i < y.h; ++i)
      for (std::int64_t j = 0; j < y.w; ++j) {
        double acc = b[static_cast<std::size_t>(o)];
        for (std::int64_t c = 0; c < x.c; ++c)
          for (std::int64_t p = 0; p < 5; ++p)
            for (std::int64_t q = 0; q < 5; ++q)
              acc += w[static_cast<std::size_t>(((o * x.c + c) * 5 + p) * 5 + q)] *
                     x.v[static_cast<std::size_t>((c * x.h + i + p) * x.w + j + q)];
        y.v[static_cast<std::size_t>((o * y.h + i) * y.w + j)] = acc;
      }
  return y;
}

Vec relu(Vec v) {
  for (double& e : v) e = std::max(e, 0.0);
  return v;
}

Planes relu_pool2(const Planes& x) {
  Planes y{{}, x.c, x.h / 2, x.w / 2};
  for (std::int64_t c = 0; c < x.c; ++c)
    for (std::int64_t i = 0; i < y.h; ++i)
      for (std::int64_t j = 0; j < y.w; ++j) {
        double m = -std::numeric_limits<double>::infinity();
        for (std::int64_t p = 0; p < 2; ++p)
          for (std::int64_t q = 0; q < 2; ++q)
            m = std::max(m, x.v[static_cast<std::size_t>((c * x.h + 2 * i + p) * x.w + 2 * j + q)]);
        y.v.push_back(std::max(m, 0.0));
      }
  return y;
}

// Image n of `images` up to fc3's input, ReLU(fc2(…)).
Vec naive_features(const ParameterValues& p, const LeNetMoEConfig& config,
                   const std::vector<float>& images, std::int64_t n) {
  const std::int64_t size = config.channels * config.height * config.width;
  Planes x{Vec(images.begin() + n * size, images.begin() + (n + 1) * size), config.channels,
           config.height, config.width};
  x = relu_pool2(conv5(x, p.at("conv1.weight"), p.at("conv1.bias"), 6));
  x = relu_pool2(conv5(x, p.at("conv2.weight"), p.at("conv2.bias"), 16));
  const Vec h = relu(linear(x.v, p.at("fc1.weight"), p.at("fc1.bias")));
  return relu(linear(h, p.at("fc2.weight"), p.at("fc2.bias")));
}

// Cross-entropy of fc4(x) against `target`.
double naive_head_loss(const ParameterValues& p, const Vec& x, std::int32_t target) {
  return naive_cross_entropy(linear(x, p.at("fc4.weight"), p.at("fc4.bias")), target);
}

// Mean cross-entropy with fc3 the GELU MLP whose weight, bias, weight, bias are named by `fc3`:
// the dense twin's, or the only expert of a one-expert MoE layer (whose gate weight is then 1).
double naive_loss(const ParameterValues& p, const LeNetMoEConfig& config, const Batch& batch,
                  const std::vector<std::string>& fc3) {
  const std::vector<float> images = batch.inputs.to_vector();
  double total = 0.0;
  for (std::int64_t n = 0; n < batch.inputs.size(0); ++n) {
    const Vec x = naive_features(p, config, images, n);
    const Vec hidden = naive_gelu(linear(x, p.at(fc3[0]), p.at(fc3[1])));
    total += naive_head_loss(p, linear(hidden, p.at(fc3[2]), p.at(fc3[3])),
                             batch.targets.data<std::int32_t>()[n]);
  }
  return total / static_cast<double>(batch.inputs.size(0));
}

const std::vector<std::string> kDenseFc3{"fc3.fc.weight", "fc3.fc.bias", "fc3.proj.weight",
                                         "fc3.proj.bias"};

std::vector<std::string> names_of(const std::vector<Parameter*>& params) {
  std::vector<std::string> out;
  for (const Parameter* p : params) out.push_back(p->name);
  return out;
}

}  // namespace

TEST_CASE("LeNetMoE: layer shapes follow the input size", "[lenet]") {
  SECTION("MNIST 1x28x28 with DeepSpeed's defaults: 16*4*4 flat features, 84-wide fc3") {
    LeNetMoEConfig config;
    LeNetMoE model(config);
    CHECK(config.flat_features() == 256);
    CHECK(model.name() == "lenet_moe");
    CHECK(model.num_moe_layers() == 1);
    CHECK(model.aux_loss_coef() == 0.01f);
    CHECK(model.moe_layer(0).config().hidden_size == 84);
    CHECK(model.moe_layer(0).config().ffn_hidden_size == 84);
    CHECK(model.moe_layer(0).config().activation == Activation::relu);
    CHECK(find_parameter(model, "conv1.weight").value.shape() == Shape{6, 1, 5, 5});
    CHECK(find_parameter(model, "conv2.weight").value.shape() == Shape{16, 6, 5, 5});
    CHECK(find_parameter(model, "fc1.weight").value.shape() == Shape{120, 256});
    CHECK(find_parameter(model, "fc2.weight").value.shape() == Shape{84, 120});
    CHECK(find_parameter(model, "fc3.experts.w1").value.shape() == Shape{1, 84, 84});
    CHECK(find_parameter(model, "fc4.weight").value.shape() == Shape{10, 84});
  }
  SECTION("CIFAR 3x32x32: 16*5*5 flat features") {
    LeNetMoEConfig config;
    config.channels = 3;
    config.height = config.width = 32;
    config.use_moe = false;
    LeNetMoE model(config);
    CHECK(config.flat_features() == 400);
    CHECK(model.name() == "lenet_dense");
    CHECK(model.num_moe_layers() == 0);
    CHECK(find_parameter(model, "conv1.weight").value.shape() == Shape{6, 3, 5, 5});
    CHECK(find_parameter(model, "fc1.weight").value.shape() == Shape{120, 400});
    CHECK(find_parameter(model, "fc3.fc.weight").value.shape() == Shape{84, 84});
    CHECK(find_parameter(model, "fc3.proj.weight").value.shape() == Shape{84, 84});
  }
  SECTION("parameter order, segment ownership and segment outputs") {
    const LeNetMoEConfig config = tiny_config(true);
    LeNetMoE model(config);
    const std::vector<std::string> expected{
        "conv1.weight",   "conv1.bias",     "conv2.weight",   "conv2.bias",      "fc1.weight",
        "fc1.bias",       "fc2.weight",     "fc2.bias",       "fc3.gate.weight", "fc3.experts.w1",
        "fc3.experts.b1", "fc3.experts.w2", "fc3.experts.b2", "fc4.weight",      "fc4.bias"};
    CHECK(names_of(model.parameters()) == expected);
    CHECK(names_of(model.segment_parameters(0)) ==
          std::vector<std::string>(expected.begin(), expected.begin() + 8));
    CHECK(names_of(model.segment_parameters(1)) ==
          std::vector<std::string>{"fc4.weight", "fc4.bias"});
    CHECK(find_parameter(model, "fc3.experts.w1").is_expert);
    CHECK_FALSE(find_parameter(model, "fc2.weight").is_expert);

    const Batch batch = random_batch(config, 5, 3);
    auto cache = model.make_cache();
    const Tensor features = model.forward_segment(0, batch, Tensor(), *cache, true);
    CHECK(features.shape() == Shape{5, 9});
    // ReLU(fc2) feeds the MoE layer, as in DeepSpeed's example.
    for (float v : features.to_vector()) CHECK(v >= 0.0f);
    const Tensor loss = model.forward_segment(1, batch, features, *cache, true);
    REQUIRE(loss.numel() == 1);
    const LossResult result = model.loss(*cache);
    CHECK(result.loss == loss.to_vector()[0]);
    CHECK(result.count == 5);
    CHECK(result.correct >= 0);
    CHECK(result.correct <= 5);

    LeNetMoE dense(tiny_config(false));
    CHECK(names_of(dense.segment_parameters(0)) == names_of(dense.parameters()));
    CHECK(names_of(dense.parameters()).size() == 14);  // conv1, conv2, fc1, fc2, fc3.{fc,proj}, fc4
  }
}

TEST_CASE("LeNetMoE: initialisation is PyTorch's default, reproducible from the seed", "[lenet]") {
  LeNetMoEConfig config;
  config.use_moe = false;
  LeNetMoE model(config);
  const std::vector<std::pair<std::string, std::int64_t>> fan_in{
      {"conv1", 25},  {"conv2", 150},   {"fc1", 256}, {"fc2", 120},
      {"fc3.fc", 84}, {"fc3.proj", 84}, {"fc4", 84}};
  for (const auto& [layer, fan] : fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan));
    for (const std::string suffix : {".weight", ".bias"}) {
      const std::vector<float> v = find_parameter(model, layer + suffix).value.to_vector();
      INFO(layer + suffix);
      double max_abs = 0.0;
      for (float e : v) max_abs = std::max(max_abs, std::abs(static_cast<double>(e)));
      CHECK(max_abs <= bound);
      if (v.size() >= 100) CHECK(max_abs >= 0.9 * bound);  // U(±b) reaches near b in ≥ 100 draws
    }
  }
  // E[x²] = b²/3 for U(±b); over fc1's 30720 weights the estimate's relative standard deviation
  // is √((1/5 − 1/9) / 30720) · 3 ≈ 0.5 %, so 3 % is a 6σ bound.
  const std::vector<float> w = find_parameter(model, "fc1.weight").value.to_vector();
  double sq = 0.0;
  for (float e : w) sq += static_cast<double>(e) * e;
  CHECK(sq / static_cast<double>(w.size()) == Approx(1.0 / (3.0 * 256)).epsilon(0.03));

  LeNetMoE same(config);
  config.init_seed = 1;
  LeNetMoE other(config);
  CHECK(find_parameter(same, "fc4.weight").value.to_vector() ==
        find_parameter(model, "fc4.weight").value.to_vector());
  CHECK(find_parameter(other, "fc4.weight").value.to_vector() !=
        find_parameter(model, "fc4.weight").value.to_vector());
}

TEST_CASE("LeNetMoE: loss matches a naive double-precision reference", "[lenet]") {
  // The float forward rounds at ~1e-7 relative per operation over sums of at most a few hundred
  // terms: 1e-5 relative leaves a wide margin while catching any wrong layer.
  SECTION("dense twin") {
    const LeNetMoEConfig config = tiny_config(false);
    LeNetMoE model(config);
    const Batch batch = random_batch(config, 4, 11);
    ModelRunner runner(model, true);
    const double loss = runner.forward(batch);
    CHECK(loss == Approx(naive_loss(values_of(model), config, batch, kDenseFc3)).epsilon(1e-5));
  }
  SECTION("one expert: the gate weight is softmax over one expert = 1, so fc3 is the expert") {
    LeNetMoEConfig config = tiny_config(true);
    config.moe.num_experts = 1;
    config.moe.k = 1;
    LeNetMoE model(config);
    const Batch batch = random_batch(config, 4, 12);
    ModelRunner runner(model, true);
    const double total = runner.forward(batch, false);
    const double ce = runner.loss().loss;
    CHECK(ce == Approx(naive_loss(values_of(model), config, batch,
                                  {"fc3.experts.w1", "fc3.experts.b1", "fc3.experts.w2",
                                   "fc3.experts.b2"}))
                    .epsilon(1e-5));
    // l_aux = E · mean(gates) · count / S = 1 · 1 · 1 with one expert, added with coefficient 0.01.
    CHECK(total - ce == Approx(0.01).epsilon(1e-5));
  }
}

// The analytic gradients come from the float model, the differences from the double reference
// with h = 1e-6: their truncation (h²) and rounding (1e-16 / h) errors are below 1e-9, and at that
// step a perturbation crosses a ReLU or max-pool kink with negligible probability. What remains is
// the float backward's rounding, ~1e-6 relative per sum of a few hundred terms: atol 1e-5 plus
// 1e-4 relative.
constexpr double kRefStep = 1e-6, kRefAtol = 1e-5, kRefRtol = 1e-4;

TEST_CASE("LeNetMoE: each segment's backward matches central differences", "[lenet]") {
  const LeNetMoEConfig config = tiny_config(true);
  LeNetMoE model(config);
  const Batch batch = random_batch(config, 3, 21);
  const std::vector<float> images = batch.inputs.to_vector();
  auto cache = model.make_cache();
  ParameterValues values = values_of(model);
  zero_all_grads(model);

  SECTION("segment 0: convolutions and fc1, fc2, with a random projection of the output") {
    const Tensor projection = random_tensor({3, 9}, 6);
    const std::vector<float> r = projection.to_vector();
    model.forward_segment(0, batch, Tensor(), *cache, true);
    CHECK_FALSE(model.backward_segment(0, batch, projection, *cache).defined());
    auto objective = [&] {
      double j = 0.0;
      for (std::int64_t n = 0; n < 3; ++n) {
        const Vec y = naive_features(values, config, images, n);
        for (std::size_t i = 0; i < y.size(); ++i)
          j += y[i] * r[static_cast<std::size_t>(n) * y.size() + i];
      }
      return j;
    };
    check_against_reference(model, values, names_of(model.segment_parameters(0)), kRefStep,
                            kRefAtol, kRefRtol, objective);
  }
  SECTION("segment 1: fc4 + loss, with respect to moe_output and fc4's parameters") {
    const Tensor moe_output = random_tensor({3, 9}, 5);
    const std::vector<float> m = moe_output.to_vector();
    Vec moe_values(m.begin(), m.end());
    const double dloss = 0.7;  // a last segment scales by d(total)/d(loss)
    model.forward_segment(0, batch, Tensor(), *cache, true);
    model.forward_segment(1, batch, moe_output, *cache, true);
    const Tensor grad_moe =
        model.backward_segment(1, batch, Tensor::from_vector({0.7f}, {1}), *cache);
    REQUIRE(grad_moe.shape() == Shape{3, 9});
    auto objective = [&] {
      double j = 0.0;
      for (std::int64_t n = 0; n < 3; ++n)
        j +=
            naive_head_loss(values, Vec(moe_values.begin() + n * 9, moe_values.begin() + n * 9 + 9),
                            batch.targets.data<std::int32_t>()[n]);
      return dloss * j / 3.0;
    };
    check_samples(
        "moe_output", grad_moe, kRefAtol, kRefRtol,
        [&](std::int64_t i) {
          return central_difference(moe_values.data(), i, kRefStep, objective);
        },
        10);
    check_against_reference(model, values, {"fc4.weight", "fc4.bias"}, kRefStep, kRefAtol, kRefRtol,
                            objective);
  }
}

TEST_CASE("LeNetMoE: whole-model gradients match central differences", "[lenet]") {
  SECTION("dense twin, against the double-precision reference") {
    const LeNetMoEConfig config = tiny_config(false);
    LeNetMoE model(config);
    const Batch batch = random_batch(config, 3, 31);
    ModelRunner runner(model, true);
    zero_all_grads(model);
    runner.forward(batch);
    runner.backward(batch);
    ParameterValues values = values_of(model);
    CHECK(check_against_reference(
              model, values, names_of(model.parameters()), kRefStep, kRefAtol, kRefRtol,
              [&] { return naive_loss(values, config, batch, kDenseFc3); }) == 14 * 6);
  }
  SECTION("MoE, 3 experts, top-2, no drops: through MoELayer::forward / backward") {
    // The MoE layer has no double reference here, so the differences are of the float model:
    // its loss (with 0.01 · l_aux) is O(1) with ~1e-7 relative rounding, which h = 1e-3 turns into
    // ~1e-4 of noise; the h² curvature term is smaller still. The checked parameters sit after the
    // last ReLU (segment 0's were checked against the reference above), so atol 1e-3 plus 1 %
    // relative separates a correct gradient from a wrong one.
    const LeNetMoEConfig config = tiny_config(true);
    LeNetMoE model(config);
    const Batch batch = random_batch(config, 6, 32);
    ModelRunner runner(model, true);
    runner.output_offsets[0] = Tensor::zeros({6, 9});
    auto objective = [&] { return runner.forward(batch); };
    zero_all_grads(model);
    objective();
    runner.backward(batch);
    int checked = check_gradient("MoE output", runner.output_offsets[0], runner.output_grad(0),
                                 1e-3f, 1e-3, 1e-2, objective, 10);
    std::vector<Parameter*> params = model.moe_layer(0).parameters();
    params.push_back(&find_parameter(model, "fc4.weight"));
    params.push_back(&find_parameter(model, "fc4.bias"));
    for (Parameter* p : params)
      checked += check_gradient(p->name, p->value, p->grad, 1e-3f, 1e-3, 1e-2, objective);
    CHECK(checked == 13 + 7 * 6);
  }
}

TEST_CASE("LeNetMoE: a few SGD steps overfit a tiny batch", "[lenet]") {
  for (const bool use_moe : {true, false}) {
    DYNAMIC_SECTION((use_moe ? "MoE, 2 experts, top-1 with drops" : "dense twin")) {
      LeNetMoEConfig config = tiny_config(use_moe);
      config.moe.num_experts = 2;
      config.moe.k = 1;
      config.moe.drop_tokens = true;
      LeNetMoE model(config);
      const Batch batch = random_batch(config, 6, 41);
      ModelRunner runner(model, true);
      const double first = runner.forward(batch);
      double last = first;
      for (int step = 0; step < 100; ++step) {
        runner.backward(batch);
        sgd_step(model, 0.2f);
        last = runner.forward(batch);
      }
      INFO("loss " << first << " -> " << last);
      CHECK(last < 0.5 * first);
    }
  }
}

TEST_CASE("LeNetMoE: bad configurations and inputs throw clear errors", "[lenet]") {
  auto rejects = [](auto edit) {
    LeNetMoEConfig config = tiny_config(true);
    edit(config);
    CHECK_THROWS_AS(LeNetMoE(config), std::invalid_argument);
  };
  rejects([](LeNetMoEConfig& c) { c.channels = 0; });
  rejects([](LeNetMoEConfig& c) { c.height = 15; });  // second pool would get a 1-row input
  rejects([](LeNetMoEConfig& c) { c.width = -1; });
  rejects([](LeNetMoEConfig& c) { c.num_classes = 1; });
  rejects([](LeNetMoEConfig& c) { c.aux_loss_coef = -0.5f; });
  rejects([](LeNetMoEConfig& c) { c.moe.num_experts = 0; });
  CHECK_THROWS_WITH(LeNetMoE([] {
                      LeNetMoEConfig c = tiny_config(true);
                      c.height = 15;
                      return c;
                    }()),
                    Catch::Contains("height = 15"));

  const LeNetMoEConfig config = tiny_config(true);
  LeNetMoE model(config);
  auto cache = model.make_cache();
  Batch batch = random_batch(config, 4, 51);
  CHECK_THROWS_AS(model.forward_segment(2, batch, Tensor(), *cache, true), std::out_of_range);
  CHECK_THROWS_AS(model.segment_parameters(-1), std::out_of_range);
  CHECK_THROWS_AS(model.moe_layer(1), std::out_of_range);
  CHECK_THROWS_AS(LeNetMoE(tiny_config(false)).moe_layer(0), std::out_of_range);
  CHECK_THROWS_AS(model.loss(*cache), std::logic_error);
  CHECK_THROWS_AS(model.backward_segment(0, batch, Tensor::zeros({4, 9}), *cache),
                  std::logic_error);

  Batch wrong_channels{Tensor::zeros({4, 1, 17, 18}), batch.targets};
  CHECK_THROWS_WITH(model.forward_segment(0, wrong_channels, Tensor(), *cache, true),
                    Catch::Contains("batch.inputs"));
  const Tensor features = model.forward_segment(0, batch, Tensor(), *cache, true);
  CHECK_THROWS_AS(model.forward_segment(1, batch, Tensor::zeros({4, 8}), *cache, true),
                  std::invalid_argument);
  batch.targets.data<std::int32_t>()[2] = 5;  // num_classes = 5
  CHECK_THROWS_AS(model.forward_segment(1, batch, features, *cache, true), std::out_of_range);
  batch.targets.data<std::int32_t>()[2] = 0;
  model.forward_segment(1, batch, features, *cache, true);
  CHECK_THROWS_AS(model.backward_segment(1, batch, Tensor::zeros({2}), *cache),
                  std::invalid_argument);

  struct OtherCache : SegmentCache {};
  OtherCache other;
  CHECK_THROWS_WITH(model.forward_segment(0, batch, Tensor(), other, true),
                    Catch::Contains("make_cache"));
}

}  // namespace troupe::test
