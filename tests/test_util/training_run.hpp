// What the tests that run `troupe train` share (tests/tools/): a tiny Fashion-MNIST-shaped data
// set written as IDX files (so a run takes a fraction of a second), the shipped Fashion-MNIST
// config shrunk onto it with a checkpoint after every step, the per-step losses a run logged, and
// a bit-for-bit comparison of two checkpoints' tensors.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "memory/safetensors.hpp"
#include "models/checkpoint_dir.hpp"

namespace troupe::test {

inline std::filesystem::path source_dir() {
  if (const char* dir = std::getenv("TROUPE_SOURCE_DIR")) return dir;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// IDX files (uncompressed) of `count` 28×28 images with deterministic pixels and labels.
inline void write_idx_split(const std::filesystem::path& dir, const std::string& prefix,
                            std::uint32_t count, std::uint32_t seed) {
  auto be32 = [](std::ofstream& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.put(static_cast<char>((v >> shift) & 0xff));
  };
  std::mt19937 rng(seed);
  std::ofstream images(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary);
  be32(images, 0x803);
  for (std::uint32_t d : {count, 28u, 28u}) be32(images, d);
  for (std::uint32_t i = 0; i < count * 28 * 28; ++i) images.put(static_cast<char>(rng() & 0xff));
  std::ofstream labels(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary);
  be32(labels, 0x801);
  be32(labels, count);
  for (std::uint32_t i = 0; i < count; ++i) labels.put(static_cast<char>(rng() % 10));
}

// 64 training images (4 steps of 16 per epoch, so a run of more steps crosses an epoch boundary
// and reshuffles) and 16 test images in `dir`.
inline void write_tiny_fashion_mnist(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_idx_split(dir, "train", 64, 1);
  write_idx_split(dir, "t10k", 16, 2);
}

struct SmallRun {
  std::int64_t steps = 7;
  std::int64_t optimizer_partitions = 2;
  bool offload = false;  // ZeRO-Offload
  double gradient_clipping = 0.0;
};

// Writes DIR/NAME.json: configs/fashion_mnist_moe.json on the data in `data`, batches of 16, Jitter
// noise (which must resume too), a checkpoint into `checkpoints` after every step, the newest 2
// kept. Returns its path.
inline std::filesystem::path write_small_config(const std::filesystem::path& dir,
                                                const std::string& name,
                                                const std::filesystem::path& data,
                                                const std::filesystem::path& checkpoints,
                                                const SmallRun& run = {}) {
  std::ifstream in(source_dir() / "configs" / "fashion_mnist_moe.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["train_batch_size"] = 16;
  config["train_micro_batch_size_per_gpu"] = 8;
  config["gradient_clipping"] = run.gradient_clipping;
  if (run.offload) config["zero_optimization"]["offload_optimizer"]["device"] = "cpu";
  config["data"]["path"] = data.string();
  config["runtime"].erase("epochs");
  config["runtime"]["train_steps"] = run.steps;
  config["runtime"]["optimizer_partitions"] = run.optimizer_partitions;
  config["runtime"]["log_interval"] = 1;
  config["runtime"]["checkpoint"] = {{"dir", checkpoints.string()}, {"interval", 1}, {"keep", 2}};
  config["model"]["moe"]["noisy_gate_policy"] = "Jitter";
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / (name + ".json");
  std::ofstream(path) << config.dump(2);
  return path;
}

// Step → loss (its JSON text, so equality is exact) of the train lines of a metrics file; a line
// torn by a kill is skipped.
inline std::map<std::int64_t, std::string> train_losses(const std::filesystem::path& metrics) {
  std::map<std::int64_t, std::string> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j["type"] != "train") continue;
    out[j["step"].get<std::int64_t>()] = j["loss"].dump();
  }
  return out;
}

// The checkpoint `latest` names in `dir`.
inline SafetensorsFile latest_checkpoint(const std::filesystem::path& dir) {
  const auto latest = read_latest(dir.string());
  REQUIRE(latest);
  return load_safetensors((dir / latest->name).string());
}

// Same step, and every parameter and both Adam moments of both groups bit for bit.
inline void check_same_tensors(const SafetensorsFile& expected, const SafetensorsFile& actual) {
  REQUIRE(expected.metadata.at("step") == actual.metadata.at("step"));
  REQUIRE(expected.tensors.size() == actual.tensors.size());
  int moments = 0;
  for (std::size_t i = 0; i < expected.tensors.size(); ++i) {
    const auto& [name, want] = expected.tensors[i];
    INFO("tensor " << name);
    REQUIRE(actual.tensors[i].first == name);
    const Tensor& got = actual.tensors[i].second;
    REQUIRE(got.shape() == want.shape());
    CHECK(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
    if (name.rfind("optim/", 0) == 0) ++moments;
  }
  CHECK(moments == 4);  // exp_avg and exp_avg_sq of the non-expert and expert groups
}

}  // namespace troupe::test
