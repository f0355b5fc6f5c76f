// Parameters: construction, the expert / non-expert split, zeroing gradients.
#include <catch2/catch.hpp>

#include "models/parameter.hpp"

using namespace troupe;

TEST_CASE("split_moe_param_groups splits by is_expert and keeps order") {
  Parameter gate = make_parameter("moe.gate.weight", {4, 3}, false);
  Parameter w1 = make_parameter("moe.experts.w1", {4, 5, 3}, true);
  Parameter mlp = make_parameter("moe.residual_mlp.w1", {1, 5, 3}, false);
  Parameter b1 = make_parameter("moe.experts.b1", {4, 5}, true);
  CHECK(gate.grad.shape() == gate.value.shape());
  CHECK(w1.is_expert);

  const ParamGroups groups = split_moe_param_groups({&gate, &w1, &mlp, &b1});
  CHECK(groups.non_expert == std::vector<Parameter*>{&gate, &mlp});
  CHECK(groups.expert == std::vector<Parameter*>{&w1, &b1});
  CHECK_THROWS_AS(split_moe_param_groups({&gate, nullptr}), std::invalid_argument);
}

TEST_CASE("zero_grads clears every gradient") {
  Parameter a = make_parameter("a", {2, 3}, false);
  Parameter b = make_parameter("b", {5}, true);
  a.grad.fill(1.5f);
  b.grad.fill(-2.0f);
  zero_grads({&a, &b});
  for (float v : a.grad.to_vector()) CHECK(v == 0.0f);
  for (float v : b.grad.to_vector()) CHECK(v == 0.0f);
  CHECK_THROWS_AS(zero_grads({nullptr}), std::invalid_argument);
}
