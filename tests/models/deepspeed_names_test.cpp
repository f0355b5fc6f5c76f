// DeepSpeed / PyTorch names for a troupe model's parameters: the names and shapes a PyTorch model
// built as DeepSpeed's MoE tutorial shows has, per-expert tensors that are the stacked tensor's
// rows, a bit-exact round trip, and clear errors for state dicts troupe cannot take.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>

#include "models/deepspeed_names.hpp"
#include "models/lenet_moe.hpp"

using namespace troupe;
using Catch::Matchers::Contains;

namespace {

NamedTensors parameters_of(LeNetMoE& model) {
  NamedTensors out;
  for (Parameter* p : model.parameters()) out.emplace_back(p->name, p->value);
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("a LeNet-MoE state dict under DeepSpeed's names, and back bit for bit") {
  LeNetMoEConfig config;
  config.moe.num_experts = 4;
  config.moe.ffn_hidden_size = 32;
  config.moe.use_residual = true;
  config.init_seed = 7;
  LeNetMoE model(config);
  const NamedTensors troupe_dict = parameters_of(model);
  const NamedTensors exported = to_deepspeed_state_dict(troupe_dict);

  std::map<std::string, Tensor> by_name(exported.begin(), exported.end());
  REQUIRE(by_name.size() == exported.size());
  CHECK(by_name.at("fc3.deepspeed_moe.gate.wg.weight").shape() == Shape{4, 84});
  CHECK(by_name.at("fc3.deepspeed_moe.experts.deepspeed_experts.3.0.weight").shape() ==
        Shape{32, 84});
  CHECK(by_name.at("fc3.deepspeed_moe.experts.deepspeed_experts.0.0.bias").shape() == Shape{32});
  CHECK(by_name.at("fc3.deepspeed_moe.experts.deepspeed_experts.2.2.weight").shape() ==
        Shape{84, 32});
  CHECK(by_name.at("fc3.mlp.2.bias").shape() == Shape{84});
  CHECK(by_name.at("fc3.coefficient.weight").shape() == Shape{2, 84});
  CHECK(by_name.at("fc1.weight").shape() == Shape{120, 256});  // PyTorch's [out, in]
  CHECK(by_name.at("conv1.weight").shape() == Shape{6, 1, 5, 5});
  CHECK(by_name.count("fc3.experts.w1") == 0);
  // 4 experts × 4 tensors replace 4 stacked ones; the residual mlp's 4 keep their count.
  CHECK(exported.size() == troupe_dict.size() + 4 * 4 - 4);

  // Expert 2's first weight is row 2 of the stacked w1.
  const Tensor* w1 = nullptr;
  for (const auto& [name, t] : troupe_dict)
    if (name == "fc3.experts.w1") w1 = &t;
  REQUIRE(w1 != nullptr);
  const Tensor& expert2 = by_name.at("fc3.deepspeed_moe.experts.deepspeed_experts.2.0.weight");
  CHECK(std::memcmp(expert2.raw_data(), w1->data<float>() + 2 * 32 * 84, expert2.nbytes()) == 0);

  const NamedTensors back = from_deepspeed_state_dict(exported);
  REQUIRE(back.size() == troupe_dict.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    INFO(troupe_dict[i].first);
    CHECK(back[i].first == troupe_dict[i].first);
    CHECK(same_bits(back[i].second, troupe_dict[i].second));
  }
}

TEST_CASE("a DeepSpeed state dict troupe cannot take is refused, naming the tensor") {
  const Tensor w = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH(
      from_deepspeed_state_dict({{"m.deepspeed_moe.experts.deepspeed_experts.0.0.weight", w},
                                 {"m.deepspeed_moe.experts.deepspeed_experts.2.0.weight", w}}),
      Contains("expert 1 of m.experts.w1 is missing"));
  CHECK_THROWS_WITH(
      from_deepspeed_state_dict({{"m.deepspeed_moe.experts.deepspeed_experts.0.1.weight", w}}),
      Contains("m.deepspeed_moe.experts.deepspeed_experts.0.1.weight") &&
          Contains("nn.Sequential(Linear, activation, Linear)"));
  CHECK_THROWS_WITH(
      from_deepspeed_state_dict(
          {{"m.deepspeed_moe.experts.deepspeed_experts.0.0.weight", w},
           {"m.deepspeed_moe.experts.deepspeed_experts.1.0.weight", Tensor::zeros({2, 2})}}),
      Contains("differ in shape"));
}
