// Checkpoint and resume through the `troupe train` command: a run stopped at a checkpoint and
// resumed with --resume produces losses bit-identical to an uninterrupted run (CPU), because
// parameters, Adam state, step, data position and seed are all restored. Uses the real
// Fashion-MNIST files (tools/setup.sh installs them) on a small slice of the training set.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util/temp_dir.hpp"
#include "tools/train_command.hpp"

namespace fs = std::filesystem;
using namespace troupe;

namespace {

fs::path source_dir() {
  if (const char* dir = std::getenv("TROUPE_SOURCE_DIR")) return dir;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

// A small, fast variant of the shipped Fashion-MNIST config.
fs::path write_config(const fs::path& dir, const std::string& name, const fs::path& checkpoints) {
  std::ifstream in(source_dir() / "configs" / "fashion_mnist_moe.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["train_batch_size"] = 16;
  config["train_micro_batch_size_per_gpu"] = 8;
  config["data"]["limit_train_samples"] = 256;
  config["runtime"].erase("epochs");
  config["runtime"]["train_steps"] = 6;
  config["runtime"]["eval_batches"] = 2;
  config["runtime"]["log_interval"] = 1;
  config["runtime"]["checkpoint"] = {{"dir", checkpoints.string()}, {"interval", 3}, {"keep", 1}};
  config["model"]["moe"]["noisy_gate_policy"] = "Jitter";  // noise must resume too
  const fs::path path = dir / (name + ".json");
  std::ofstream(path) << config.dump(2);
  return path;
}

std::vector<std::string> train_losses(const fs::path& metrics) {
  std::vector<std::string> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train")
      out.push_back(std::to_string(j["step"].get<int>()) + ":" + j["loss"].dump());
  }
  return out;
}

}  // namespace

TEST_CASE("a resumed run continues bit-identically") {
  const test::TempDir scratch("resume");
  const fs::path& dir = scratch.path;

  TrainCommand full;
  full.config_path = write_config(dir, "full", dir / "ckpt_full").string();
  full.metrics_file = (dir / "full.jsonl").string();
  REQUIRE(run_train(full) == 0);

  TrainCommand first_half = full;
  first_half.config_path = write_config(dir, "split", dir / "ckpt_split").string();
  first_half.metrics_file = (dir / "split.jsonl").string();
  first_half.steps = 3;
  REQUIRE(run_train(first_half) == 0);
  REQUIRE(fs::exists(dir / "ckpt_split" / "latest"));
  REQUIRE(fs::exists(dir / "ckpt_split" / "step_00000003.safetensors"));

  TrainCommand second_half = first_half;
  second_half.steps = 0;
  second_half.resume = (dir / "ckpt_split").string();
  REQUIRE(run_train(second_half) == 0);
  // keep = 1: only the newest checkpoint (step 6) is left.
  CHECK(fs::exists(dir / "ckpt_split" / "step_00000006.safetensors"));
  CHECK_FALSE(fs::exists(dir / "ckpt_split" / "step_00000003.safetensors"));

  const auto expected = train_losses(dir / "full.jsonl");
  const auto resumed = train_losses(dir / "split.jsonl");
  REQUIRE(expected.size() == 6);
  CHECK(resumed == expected);  // steps 1–3 from the first half, 4–6 after the resume
}

TEST_CASE("a bad config is refused with exit code 2, a missing checkpoint with 1") {
  const test::TempDir scratch("bad_config");
  const fs::path& dir = scratch.path;
  TrainCommand bad;
  bad.config_path = scratch.write("bad.json", R"({"train_batch_size": 64, "optimiser": {}})");
  CHECK(run_train(bad) == 2);

  TrainCommand missing;
  missing.config_path = write_config(dir, "ok", dir / "ckpt").string();
  missing.resume = (dir / "nowhere").string();
  CHECK(run_train(missing) == 1);
}
