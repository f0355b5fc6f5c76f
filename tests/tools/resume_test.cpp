// Checkpoint and resume through the `troupe train` command: a run stopped at a checkpoint and
// resumed with --resume produces losses, parameters and Adam moments bit-identical to an
// uninterrupted run (CPU), because parameters, Adam state, step, data position and seed are all
// restored — also across an epoch boundary (the reshuffle) and with another optimizer partition
// count (with and without ZeRO-Offload). Uses the real Fashion-MNIST files (tools/setup.sh
// installs them) on a small slice of the training set.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "memory/safetensors.hpp"
#include "models/checkpoint_dir.hpp"
#include "test_util/temp_dir.hpp"
#include "tools/train_command.hpp"

namespace fs = std::filesystem;
using namespace troupe;

namespace {

fs::path source_dir() {
  if (const char* dir = std::getenv("TROUPE_SOURCE_DIR")) return dir;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

struct RunShape {
  std::int64_t steps = 7;
  std::int64_t partitions = 2;
  bool offload = false;
  double gradient_clipping = 0.0;
};

// A small, fast variant of the shipped Fashion-MNIST config: 64 training samples in batches of
// 16, so an epoch is 4 steps; a checkpoint after every step, the newest 2 kept.
fs::path write_config(const fs::path& dir, const std::string& name, const fs::path& checkpoints,
                      const RunShape& shape = {}) {
  std::ifstream in(source_dir() / "configs" / "fashion_mnist_moe.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["train_batch_size"] = 16;
  config["train_micro_batch_size_per_gpu"] = 8;
  config["gradient_clipping"] = shape.gradient_clipping;
  if (shape.offload) config["zero_optimization"]["offload_optimizer"]["device"] = "cpu";
  config["data"]["limit_train_samples"] = 64;
  config["runtime"].erase("epochs");
  config["runtime"]["train_steps"] = shape.steps;
  config["runtime"]["optimizer_partitions"] = shape.partitions;
  config["runtime"]["eval_batches"] = 2;
  config["runtime"]["log_interval"] = 1;
  config["runtime"]["checkpoint"] = {{"dir", checkpoints.string()}, {"interval", 1}, {"keep", 2}};
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

// The tensors of the checkpoint `latest` names in `dir`.
SafetensorsFile latest_checkpoint(const fs::path& dir) {
  const auto latest = read_latest(dir.string());
  REQUIRE(latest);
  return load_safetensors((dir / latest->name).string());
}

// Every parameter and both Adam moments of every group, bit for bit.
void check_same_tensors(const SafetensorsFile& expected, const SafetensorsFile& actual) {
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

struct Split {
  RunShape first;   // the run that stops
  RunShape second;  // the run that resumes
  std::int64_t stop_after = 3;
};

// Trains `reference` uninterrupted and `split` in two halves; compares losses and final tensors.
void check_split_run(const test::TempDir& scratch, const RunShape& reference, const Split& split) {
  const fs::path& dir = scratch.path;
  TrainCommand full;
  full.config_path = write_config(dir, "full", dir / "ckpt_full", reference).string();
  full.metrics_file = (dir / "full.jsonl").string();
  REQUIRE(run_train(full) == 0);

  TrainCommand first_half;
  first_half.config_path = write_config(dir, "first", dir / "ckpt_split", split.first).string();
  first_half.metrics_file = (dir / "split.jsonl").string();
  first_half.steps = split.stop_after;
  REQUIRE(run_train(first_half) == 0);
  REQUIRE(fs::exists(dir / "ckpt_split" / "latest"));
  REQUIRE(fs::exists(dir / "ckpt_split" / checkpoint_file_name(split.stop_after)));

  TrainCommand second_half;
  second_half.config_path = write_config(dir, "second", dir / "ckpt_split", split.second).string();
  second_half.metrics_file = first_half.metrics_file;  // appended to
  second_half.resume = (dir / "ckpt_split").string();
  REQUIRE(run_train(second_half) == 0);
  // keep = 2: only the two newest checkpoints are left.
  CHECK(list_checkpoint_files((dir / "ckpt_split").string()).size() == 2);
  CHECK(fs::exists(dir / "ckpt_split" / checkpoint_file_name(reference.steps)));

  const auto expected = train_losses(dir / "full.jsonl");
  const auto resumed = train_losses(dir / "split.jsonl");
  REQUIRE(expected.size() == static_cast<std::size_t>(reference.steps));
  CHECK(resumed == expected);
  check_same_tensors(latest_checkpoint(dir / "ckpt_full"), latest_checkpoint(dir / "ckpt_split"));
}

}  // namespace

TEST_CASE("a resumed run continues bit-identically across an epoch boundary") {
  const test::TempDir scratch("resume");
  // Stopped in the middle of epoch 0; steps 5–7 run on epoch 1's reshuffled order.
  check_split_run(scratch, RunShape{}, Split{RunShape{}, RunShape{}, 3});
}

TEST_CASE("a run resumes with another optimizer partition count and gets the same bits") {
  const test::TempDir scratch("resume_partitions");
  RunShape two{6, 2, false, 1.0};
  RunShape three{6, 3, false, 1.0};
  SECTION("2 → 3 partitions, stopped at the epoch boundary") {
    check_split_run(scratch, three, Split{two, three, 4});
  }
  SECTION("ZeRO-Offload, 2 → 3 partitions") {
    RunShape two_offload = two;
    two_offload.offload = true;
    RunShape three_offload = three;
    three_offload.offload = true;
    check_split_run(scratch, three, Split{two_offload, three_offload, 4});
  }
}

TEST_CASE("a fresh run refuses another run's checkpoint directory unless told to overwrite it") {
  const test::TempDir scratch("resume_refuse");
  const fs::path& dir = scratch.path;
  TrainCommand first;
  first.config_path = write_config(dir, "c", dir / "ckpt", RunShape{2}).string();
  first.metrics_file = (dir / "m.jsonl").string();
  REQUIRE(run_train(first) == 0);
  const std::string old_run = latest_checkpoint(dir / "ckpt").metadata.at("run_id");

  TrainCommand again = first;
  CHECK(run_train(again) == 1);  // refused: the directory holds run `old_run`'s checkpoints
  CHECK(latest_checkpoint(dir / "ckpt").metadata.at("run_id") == old_run);

  again.overwrite_checkpoints = true;
  REQUIRE(run_train(again) == 0);
  const auto latest = latest_checkpoint(dir / "ckpt");
  CHECK(latest.metadata.at("run_id") != old_run);
  for (const auto& file : list_checkpoint_files((dir / "ckpt").string()))
    CHECK(checkpoint_run_id(file.path) == latest.metadata.at("run_id"));

  // --resume adopts the run id: the resumed run's checkpoints belong to the same run.
  TrainCommand resumed = first;
  resumed.config_path = write_config(dir, "c4", dir / "ckpt", RunShape{4}).string();
  resumed.resume = (dir / "ckpt").string();
  REQUIRE(run_train(resumed) == 0);
  const auto after = latest_checkpoint(dir / "ckpt");
  CHECK(after.metadata.at("step") == "4");
  CHECK(after.metadata.at("run_id") == latest.metadata.at("run_id"));
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
