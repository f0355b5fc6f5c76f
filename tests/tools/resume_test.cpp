// Checkpoint and resume through the `troupe train` command: a run stopped at a checkpoint and
// resumed with --resume produces losses, parameters and Adam moments bit-identical to an
// uninterrupted run (CPU), because parameters, Adam state, step, data position and seed are all
// restored — also across an epoch boundary (the reshuffle) and with another optimizer partition
// count (with and without ZeRO-Offload). Runs on a tiny Fashion-MNIST-shaped data set.
#include <catch2/catch.hpp>

#include <filesystem>

#include "models/checkpoint_dir.hpp"
#include "test_util/temp_dir.hpp"
#include "test_util/training_run.hpp"
#include "tools/train_command.hpp"

namespace fs = std::filesystem;
using namespace troupe;
using test::SmallRun;

namespace {

struct Split {
  SmallRun first;   // the run that stops
  SmallRun second;  // the run that resumes
  std::int64_t stop_after = 3;
};

// Trains `reference` uninterrupted and `split` in two halves; compares losses and final tensors.
void check_split_run(const test::TempDir& scratch, const SmallRun& reference, const Split& split) {
  const fs::path& dir = scratch.path;
  const fs::path data = dir / "data";
  test::write_tiny_fashion_mnist(data);
  TrainCommand full;
  full.config_path =
      test::write_small_config(dir, "full", data, dir / "ckpt_full", reference).string();
  full.metrics_file = (dir / "full.jsonl").string();
  REQUIRE(run_train(full) == 0);

  TrainCommand first_half;
  first_half.config_path =
      test::write_small_config(dir, "first", data, dir / "ckpt_split", split.first).string();
  first_half.metrics_file = (dir / "split.jsonl").string();
  first_half.steps = split.stop_after;
  REQUIRE(run_train(first_half) == 0);
  REQUIRE(fs::exists(dir / "ckpt_split" / "latest"));
  REQUIRE(fs::exists(dir / "ckpt_split" / checkpoint_file_name(split.stop_after)));

  TrainCommand second_half;
  second_half.config_path =
      test::write_small_config(dir, "second", data, dir / "ckpt_split", split.second).string();
  second_half.metrics_file = first_half.metrics_file;  // appended to
  second_half.resume = (dir / "ckpt_split").string();
  REQUIRE(run_train(second_half) == 0);
  // keep = 2: only the two newest checkpoints are left.
  CHECK(list_checkpoint_files((dir / "ckpt_split").string()).size() == 2);
  CHECK(fs::exists(dir / "ckpt_split" / checkpoint_file_name(reference.steps)));

  const auto expected = test::train_losses(dir / "full.jsonl");
  REQUIRE(expected.size() == static_cast<std::size_t>(reference.steps));
  CHECK(test::train_losses(dir / "split.jsonl") == expected);
  test::check_same_tensors(test::latest_checkpoint(dir / "ckpt_full"),
                           test::latest_checkpoint(dir / "ckpt_split"));
}

}  // namespace

TEST_CASE("a resumed run continues bit-identically across an epoch boundary") {
  const test::TempDir scratch("resume");
  // Stopped in the middle of epoch 0; steps 5–7 run on epoch 1's reshuffled order.
  check_split_run(scratch, SmallRun{}, Split{SmallRun{}, SmallRun{}, 3});
}

TEST_CASE("a run resumes with another optimizer partition count and gets the same bits") {
  const test::TempDir scratch("resume_partitions");
  const SmallRun two{6, 2, false, 1.0};
  const SmallRun three{6, 3, false, 1.0};
  SECTION("2 → 3 partitions, stopped at the epoch boundary") {
    check_split_run(scratch, three, Split{two, three, 4});
  }
  SECTION("ZeRO-Offload, 2 → 3 partitions") {
    SmallRun two_offload = two;
    two_offload.offload = true;
    SmallRun three_offload = three;
    three_offload.offload = true;
    check_split_run(scratch, three, Split{two_offload, three_offload, 4});
  }
}

TEST_CASE("a fresh run refuses another run's checkpoint directory unless told to overwrite it") {
  const test::TempDir scratch("resume_refuse");
  const fs::path& dir = scratch.path;
  test::write_tiny_fashion_mnist(dir / "data");
  TrainCommand first;
  first.config_path =
      test::write_small_config(dir, "c", dir / "data", dir / "ckpt", SmallRun{2}).string();
  first.metrics_file = (dir / "m.jsonl").string();
  REQUIRE(run_train(first) == 0);
  const std::string old_run = test::latest_checkpoint(dir / "ckpt").metadata.at("run_id");

  TrainCommand again = first;
  CHECK(run_train(again) == 1);  // refused: the directory holds run `old_run`'s checkpoints
  CHECK(test::latest_checkpoint(dir / "ckpt").metadata.at("run_id") == old_run);

  again.overwrite_checkpoints = true;
  REQUIRE(run_train(again) == 0);
  const std::string new_run = test::latest_checkpoint(dir / "ckpt").metadata.at("run_id");
  CHECK(new_run != old_run);
  for (const auto& file : list_checkpoint_files((dir / "ckpt").string()))
    CHECK(checkpoint_run_id(file.path) == new_run);

  // --resume adopts the run id: the resumed run's checkpoints belong to the same run.
  TrainCommand resumed = first;
  resumed.config_path =
      test::write_small_config(dir, "c4", dir / "data", dir / "ckpt", SmallRun{4}).string();
  resumed.resume = (dir / "ckpt").string();
  REQUIRE(run_train(resumed) == 0);
  const auto after = test::latest_checkpoint(dir / "ckpt");
  CHECK(after.metadata.at("step") == "4");
  CHECK(after.metadata.at("run_id") == new_run);
}

TEST_CASE("a bad config is refused with exit code 2, a missing checkpoint with 1") {
  const test::TempDir scratch("bad_config");
  const fs::path& dir = scratch.path;
  TrainCommand bad;
  bad.config_path = scratch.write("bad.json", R"({"train_batch_size": 64, "optimiser": {}})");
  CHECK(run_train(bad) == 2);

  test::write_tiny_fashion_mnist(dir / "data");
  TrainCommand missing;
  missing.config_path = test::write_small_config(dir, "ok", dir / "data", dir / "ckpt").string();
  missing.resume = (dir / "nowhere").string();
  CHECK(run_train(missing) == 1);
}
