// `troupe export`: a checkpoint's parameters out under DeepSpeed's names (safetensors, format pt,
// no optimizer state) and back in as a parameter file, bit for bit; `--init_from` loads exactly
// those values and names a missing or mis-shaped parameter; docs/INTEROP.md lists the keys and
// shapes the shipped config's export has.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "memory/safetensors.hpp"
#include "models/checkpoint.hpp"
#include "models/lenet_moe.hpp"
#include "models/parameter_file.hpp"
#include "test_util/temp_dir.hpp"
#include "test_util/training_run.hpp"
#include "tools/export_command.hpp"

using namespace troupe;

namespace {

// The shipped configs/fashion_mnist_moe.json model: conv1 padded by 2, fc3 an 8-expert top-2 MoE.
LeNetMoEConfig shipped_model(std::uint64_t init_seed) {
  LeNetMoEConfig c;
  c.conv1_padding = 2;
  c.moe.num_experts = 8;
  c.moe.k = 2;
  c.init_seed = init_seed;
  return c;
}

void check_same_values(const std::vector<Parameter*>& expected,
                       const std::vector<Parameter*>& actual) {
  REQUIRE(expected.size() == actual.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO(expected[i]->name);
    REQUIRE(expected[i]->value.shape() == actual[i]->value.shape());
    CHECK(std::memcmp(expected[i]->value.raw_data(), actual[i]->value.raw_data(),
                      expected[i]->value.nbytes()) == 0);
  }
}

}  // namespace

TEST_CASE("export to DeepSpeed names and import back round-trip bit for bit") {
  test::TempDir dir{"export"};
  LeNetMoE trained(shipped_model(1));
  std::int64_t dense = 0;
  for (auto* p : trained.parameters())
    if (!p->is_expert) dense += p->value.numel();
  const PartitionState adam{false, 0, {"exp_avg"}, {Tensor::zeros({dense})}};
  save_checkpoint(dir.file("checkpoints"),
                  CheckpointMeta{"0123456789abcdef", 5, 0, 80, 42, trained.name()},
                  trained.parameters(), {adam});
  export_deepspeed(dir.file("checkpoints"), dir.file("model.safetensors"));

  const SafetensorsFile exported = load_safetensors(dir.file("model.safetensors"));
  CHECK(exported.metadata == SafetensorsMetadata{{"format", "pt"}});
  for (const auto& [name, tensor] : exported.tensors) {
    INFO(name);
    CHECK(name.rfind("optim/", 0) == std::string::npos);
    CHECK(name.rfind("param/", 0) == std::string::npos);
  }
  CHECK(exported.tensors.size() == 8 + 1 + 8 * 4 + 2);  // 4 dense layers, gate, experts, fc4

  import_deepspeed(dir.file("model.safetensors"), dir.file("params.safetensors"));
  LeNetMoE fresh(shipped_model(7));  // other initial values
  init_parameters_from(dir.file("params.safetensors"), fresh.parameters());
  check_same_values(trained.parameters(), fresh.parameters());

  // The command's front door: an unknown format is refused, a good one writes the file.
  CHECK(run_export({dir.file("model.safetensors"), "onnx", dir.file("x.onnx")}) == 1);
  CHECK(run_export({dir.file("checkpoints"), "deepspeed", dir.file("again.safetensors")}) == 0);
  CHECK(load_safetensors(dir.file("again.safetensors")).tensors.size() == exported.tensors.size());
}

TEST_CASE("init_from names a missing, mis-shaped or unknown parameter") {
  test::TempDir dir{"init_from"};
  LeNetMoE model(shipped_model(1));
  NamedTensors values;
  for (auto* p : model.parameters()) values.emplace_back(p->name, p->value);

  NamedTensors missing(values.begin() + 1, values.end());
  save_parameter_file(dir.file("missing.safetensors"), missing);
  CHECK_THROWS_WITH(init_parameters_from(dir.file("missing.safetensors"), model.parameters()),
                    Catch::Contains("has no parameter " + values[0].first));

  NamedTensors misshaped = values;
  misshaped[0].second = Tensor::zeros({3});
  save_parameter_file(dir.file("misshaped.safetensors"), misshaped);
  CHECK_THROWS_WITH(init_parameters_from(dir.file("misshaped.safetensors"), model.parameters()),
                    Catch::Contains("parameter " + values[0].first + " has shape"));

  NamedTensors extra = values;
  extra.emplace_back("fc9.weight", Tensor::zeros({2}));
  save_parameter_file(dir.file("extra.safetensors"), extra);
  CHECK_THROWS_WITH(init_parameters_from(dir.file("extra.safetensors"), model.parameters()),
                    Catch::Contains("fc9.weight"));

  save_safetensors(dir.file("not_params.safetensors"), values, {{"format", "pt"}});
  CHECK_THROWS_WITH(init_parameters_from(dir.file("not_params.safetensors"), model.parameters()),
                    Catch::Contains("troupe export FILE --format troupe"));
}

TEST_CASE("docs/INTEROP.md lists the keys and shapes of the shipped config's export") {
  test::TempDir dir{"interop_doc"};
  LeNetMoE model(shipped_model(1));
  save_checkpoint(dir.file("checkpoints"),
                  CheckpointMeta{"0123456789abcdef", 1, 0, 0, 42, model.name()}, model.parameters(),
                  {});
  export_deepspeed(dir.file("checkpoints"), dir.file("model.safetensors"));
  std::set<std::string> exported;
  for (const auto& [name, tensor] : load_safetensors(dir.file("model.safetensors")).tensors) {
    std::string shape;
    for (auto d : tensor.shape()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    exported.insert(name + " [" + shape + "]");
  }
  // The doc's lines "#   <key> [<shape>]" (the comment block of its Python example).
  std::ifstream doc(test::source_dir() / "docs" / "INTEROP.md");
  REQUIRE(doc);
  std::set<std::string> documented;
  for (std::string line; std::getline(doc, line);)
    if (line.rfind("#   ", 0) == 0 && line.back() == ']' && line.find(" [") != std::string::npos)
      documented.insert(line.substr(4));
  CHECK(documented == exported);
}
