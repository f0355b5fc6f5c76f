// Checkpoint files and directories: per-group optimizer state independent of the partitioning,
// a rank's sub-range of it, run ids, fallback past damaged files, pruning that touches only its own
// run, and claiming a directory.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "memory/safetensors_crc.hpp"
#include "models/checkpoint.hpp"
#include "models/checkpoint_dir.hpp"
#include "models/checkpoint_test_util.hpp"
#include "test_util/temp_dir.hpp"

using namespace troupe;
using namespace troupe::test;
namespace fs = std::filesystem;

TEST_CASE("a checkpoint stores whole-group optimizer state whatever the partitioning") {
  const test::TempDir scratch("ckpt_groups");
  TinyModel model;
  model.fill(1.0f);
  const auto three = optimizer_state(3.0f, 3);
  const std::string path =
      save_checkpoint(scratch.path.string(), meta_for("00000000000000aa", 4), model.all(), three);
  const std::string file_bytes = read_text(path);
  // Written with one expert partition instead of three: the same file, byte for byte.
  const test::TempDir other("ckpt_groups_one");
  const std::string path_one = save_checkpoint(other.path.string(), meta_for("00000000000000aa", 4),
                                               model.all(), optimizer_state(3.0f, 1));
  CHECK(read_text(path_one) == file_bytes);

  const SafetensorsFile raw = load_safetensors(path);
  CHECK(raw.at("optim/expert/exp_avg").shape() == Shape{9000});
  CHECK(raw.at("optim/non_expert/exp_avg_sq").shape() == Shape{5010});
  CHECK(raw.metadata.at("format") == "troupe-checkpoint");
  CHECK(raw.metadata.at("format_version") == "2");
  CHECK(raw.metadata.at("run_id") == "00000000000000aa");

  model.fill(0.0f);
  const LoadedCheckpoint loaded = load_checkpoint(scratch.path.string(), model.all(), "tiny");
  CHECK(loaded.meta.run_id == "00000000000000aa");
  CHECK(loaded.meta.step == 4);
  CHECK(loaded.meta.data_index == 28);
  CHECK(loaded.skipped.empty());
  CHECK(model.e.value.data<float>()[8999] == 1.0f + 0.001f * 8999.0f);
  // Any partitioning takes its slices: here two expert partitions where three were saved.
  const PartitionState first = loaded.partition_state(true, 0, 4096);
  const PartitionState second = loaded.partition_state(true, 4096, 9000 - 4096);
  REQUIRE(first.names == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
  CHECK(same_bits(first.tensors[0], three[2].tensors[0]));
  CHECK(second.tensors[1].data<float>()[0] == 103.5f + 4096.0f);
  CHECK(second.tensors[1].data<float>()[9000 - 4096 - 1] == 103.5f + 8999.0f);
  CHECK_THROWS_WITH(loaded.partition_state(true, 8192, 1000), Catch::Contains("9000 elements"));
}

TEST_CASE("a rank's sub-range of the optimizer state round-trips, and only its range resumes") {
  const test::TempDir scratch("ckpt_range");
  TinyModel model;
  model.fill(2.0f);
  // A ZeRO-1 rank's partitions: non-expert [4096, 5010), expert [4096, 8192) and [8192, 9000).
  std::vector<PartitionState> all = optimizer_state(2.0f, 3);
  std::vector<PartitionState> mine;
  for (const auto& p : all)
    if (p.group_begin >= 4096) mine.push_back(p);
  const std::string path =
      save_checkpoint(scratch.path.string(), meta_for("00000000000000ab", 3), model.all(), mine);
  const SafetensorsFile raw = load_safetensors(path);
  CHECK(raw.at("optim/expert/exp_avg").shape() == Shape{9000 - 4096});
  CHECK(raw.at("optim/non_expert/exp_avg_sq").shape() == Shape{5010 - 4096});
  CHECK(raw.metadata.at("optim_expert_begin") == "4096");
  CHECK(raw.metadata.at("optim_non_expert_begin") == "4096");

  const LoadedCheckpoint loaded = load_checkpoint(path, model.all(), "tiny");
  CHECK(loaded.optimizer.at("expert").begin == 4096);
  CHECK(loaded.optimizer.at("expert").size == 9000 - 4096);
  // The same partitions take back exactly what they saved.
  for (const auto& p : mine) {
    const PartitionState back =
        loaded.partition_state(p.expert_group, p.group_begin, p.tensors[0].numel());
    REQUIRE(back.names == p.names);
    CHECK(same_bits(back.tensors[0], p.tensors[0]));
    CHECK(same_bits(back.tensors[1], p.tensors[1]));
  }
  // Any range inside the stored one, e.g. one partition where two were saved.
  CHECK(same_bits(loaded.partition_state(true, 4096, 9000 - 4096).tensors[0],
                  ramp(9000, 102.0f).slice_rows(4096, 9000)));
  // A range outside it (a rank of a run of another world size) names what is stored and wanted.
  try {
    loaded.partition_state(true, 0, 8192);
    FAIL("a range outside the stored one was served");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains(path));
    CHECK_THAT(what, Catch::Contains("expert"));
    CHECK_THAT(what, Catch::Contains("[4096, 9000)"));
    CHECK_THAT(what, Catch::Contains("[0, 8192)"));
  }
  CHECK_THROWS_WITH(loaded.partition_state(false, 4096, 1000),
                    Catch::Contains("non_expert") && Catch::Contains("[4096, 5010)") &&
                        Catch::Contains("[4096, 5096)"));
}

TEST_CASE("a rank holding nothing of a group saves no state of it") {
  const test::TempDir scratch("ckpt_no_group");
  TinyModel model;
  model.fill(1.0f);
  std::vector<PartitionState> experts_only;
  add_partitions(experts_only, true, 9000, {4096}, 5.0f);
  // A partition with no elements of the other group is as good as none.
  experts_only.push_back({false, 8192, {"exp_avg", "exp_avg_sq"}, {ramp(0, 0), ramp(0, 0)}});
  const std::string path = save_checkpoint(scratch.path.string(), meta_for("00000000000000ac", 1),
                                           model.all(), experts_only);
  const SafetensorsFile raw = load_safetensors(path);
  CHECK_THROWS_AS(raw.at("optim/non_expert/exp_avg"), std::out_of_range);
  CHECK(raw.metadata.count("optim_non_expert_begin") == 0);
  CHECK(raw.metadata.at("optim_expert_begin") == "0");
  const LoadedCheckpoint loaded = load_checkpoint(path, model.all(), "tiny");
  CHECK(loaded.optimizer.count("non_expert") == 0);
  CHECK_THROWS_WITH(
      loaded.partition_state(false, 0, 4096),
      Catch::Contains("no optimizer state of the non_expert") && Catch::Contains("[0, 4096)"));
}

TEST_CASE("save_checkpoint refuses partitions that leave a gap or overrun the group") {
  const test::TempDir scratch("ckpt_bad_range");
  TinyModel model;
  std::vector<PartitionState> state = optimizer_state(1.0f, 3);
  SECTION("a gap") {
    state.erase(state.begin() + 3);  // expert [4096, 8192)
    CHECK_THROWS_AS(
        save_checkpoint(scratch.path.string(), meta_for("00000000000000ad", 1), model.all(), state),
        std::invalid_argument);
  }
  SECTION("past the group's end") {
    for (auto& p : state)
      if (p.expert_group) p.group_begin += 4096;
    CHECK_THROWS_WITH(
        save_checkpoint(scratch.path.string(), meta_for("00000000000000ad", 1), model.all(), state),
        Catch::Contains("[4096, 13096)") && Catch::Contains("9000 elements"));
  }
}

TEST_CASE(
    "a file without optim_<group>_begin holds the whole group, and a range must fit the group") {
  const test::TempDir scratch("ckpt_old_file");
  TinyModel model;
  model.fill(1.0f);
  const auto state = optimizer_state(4.0f, 3);
  const std::string path =
      save_checkpoint(scratch.path.string(), meta_for("00000000000000ae", 2), model.all(), state);
  // Rewritten as files were before ranges existed: the same tensors, no begin keys.
  SafetensorsFile raw = load_safetensors(path);
  const NamedTensors tensors = raw.tensors;
  raw.metadata.erase("optim_expert_begin");
  SECTION("no begin key: begin 0") {
    raw.metadata.erase("optim_non_expert_begin");
    save_safetensors_with_crc(path, tensors, raw.metadata, "crc32");
    const LoadedCheckpoint loaded = load_checkpoint(path, model.all(), "tiny");
    CHECK(loaded.optimizer.at("expert").begin == 0);
    CHECK(same_bits(loaded.partition_state(true, 8192, 808).tensors[1], state[4].tensors[1]));
    CHECK(same_bits(loaded.partition_state(false, 0, 4096).tensors[0], state[0].tensors[0]));
  }
  SECTION("a whole group's state said to begin further on does not fit") {
    raw.metadata["optim_expert_begin"] = "4096";
    save_safetensors_with_crc(path, tensors, raw.metadata, "crc32");
    CHECK_THROWS_WITH(load_checkpoint(path, model.all(), "tiny"),
                      Catch::Contains(path) && Catch::Contains("optim/expert/") &&
                          Catch::Contains("from element 4096"));
  }
}

TEST_CASE("a damaged newest checkpoint falls back to the previous intact one of the run") {
  const test::TempDir scratch("ckpt_fallback");
  const fs::path& dir = scratch.path;
  TinyModel model;
  save_steps(dir, model, "00000000000000bb", 1, 3);

  SECTION("16 flipped bytes in the middle of the tensor data") {
    flip_middle_16(dir / "step_00000003.safetensors");
  }
  SECTION("a truncated file") {
    truncate(dir / "step_00000003.safetensors");
  }
  SECTION("the newest file gone") {
    fs::remove(dir / "step_00000003.safetensors");
  }

  model.fill(0.0f);
  const LoadedCheckpoint loaded = load_checkpoint(dir.string(), model.all(), "tiny");
  CHECK(loaded.meta.step == 2);
  CHECK(loaded.path == (dir / "step_00000002.safetensors").string());
  CHECK(model.w.value.data<float>()[0] == 2.0f);
  REQUIRE(loaded.skipped.size() == 1);
  CHECK_THAT(loaded.skipped[0], Catch::Contains("step_00000003.safetensors"));
}

TEST_CASE("with every checkpoint damaged, the error lists each file tried and why") {
  const test::TempDir scratch("ckpt_none_intact");
  const fs::path& dir = scratch.path;
  TinyModel model;
  save_steps(dir, model, "00000000000000cc", 1, 3);
  flip_middle_16(dir / "step_00000003.safetensors");
  truncate(dir / "step_00000002.safetensors");
  flip_middle_16(dir / "step_00000001.safetensors");
  try {
    load_checkpoint(dir.string(), model.all(), "tiny");
    FAIL("damaged checkpoints were accepted");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("no intact checkpoint"));
    CHECK_THAT(what, Catch::Contains("step_00000003.safetensors: CRC-32"));
    CHECK_THAT(what, Catch::Contains("step_00000002.safetensors: "));
    CHECK_THAT(what, Catch::Contains("step_00000001.safetensors: CRC-32"));
  }
}

TEST_CASE("an unknown format version, another run's file and another model are refused") {
  const test::TempDir scratch("ckpt_refused");
  const fs::path& dir = scratch.path;
  TinyModel model;
  save_steps(dir, model, "00000000000000dd", 1, 2);

  SECTION("format version 3") {
    const std::string path = (dir / "future.safetensors").string();
    save_safetensors_with_crc(path, {{"param/w", model.w.value}},
                              {{"format", "troupe-checkpoint"}, {"format_version", "3"}}, "crc32");
    CHECK_THROWS_WITH(load_checkpoint(path, model.all(), "tiny"),
                      Catch::Contains(path) && Catch::Contains("version '3'"));
  }
  SECTION("an older step file of another run is not a fallback") {
    save_steps(dir, model, "00000000000000ee", 3, 3);
    flip_middle_16(dir / "step_00000003.safetensors");
    // step 2 is run dd's, and 'latest' names run ee.
    CHECK_THROWS_WITH(load_checkpoint(dir.string(), model.all(), "tiny"),
                      Catch::Contains("belongs to run 00000000000000dd"));
  }
  SECTION("another model") {
    CHECK_THROWS_WITH(load_checkpoint(dir.string(), model.all(), "other"),
                      Catch::Contains("step_00000002.safetensors") && Catch::Contains("'tiny'"));
  }
}

TEST_CASE("keep prunes only the run's own files, oldest first, never the newest") {
  const test::TempDir scratch("ckpt_prune");
  const fs::path& dir = scratch.path;
  TinyModel model;
  save_steps(dir, model, "00000000000000a1", 5, 7);  // an earlier run's higher steps
  save_steps(dir, model, "00000000000000b2", 1, 3, 2);
  std::vector<std::string> names;
  for (const auto& f : list_checkpoint_files(dir.string())) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"step_00000002.safetensors", "step_00000003.safetensors",
                                          "step_00000005.safetensors", "step_00000006.safetensors",
                                          "step_00000007.safetensors"});
  const auto latest = read_latest(dir.string());
  REQUIRE(latest);
  CHECK(latest->name == "step_00000003.safetensors");
  CHECK(latest->run_id == "00000000000000b2");
  CHECK(checkpoint_run_id((dir / "step_00000005.safetensors").string()) == "00000000000000a1");

  // The run resumed at step 1 of its own history with newer files of its own: keep = 1 leaves
  // only the file just written.
  model.fill(1.0f);
  save_checkpoint(dir.string(), meta_for("00000000000000b2", 1), model.all(),
                  optimizer_state(1.0f, 3), 1);
  CHECK(fs::exists(dir / "step_00000001.safetensors"));
  CHECK_FALSE(fs::exists(dir / "step_00000002.safetensors"));
  CHECK_FALSE(fs::exists(dir / "step_00000003.safetensors"));
  CHECK(fs::exists(dir / "step_00000007.safetensors"));
}

TEST_CASE("a run claims a directory only when it holds no other run's checkpoints") {
  const test::TempDir scratch("ckpt_claim");
  const fs::path& dir = scratch.path;
  TinyModel model;
  CHECK(claim_checkpoint_dir((dir / "absent").string(), "00000000000000f1", false, false)
            .removed_checkpoints.empty());
  save_steps(dir, model, "00000000000000f1", 1, 2);
  std::ofstream(dir / "step_00000003.safetensors.tmp.123.0") << "half";
  std::ofstream(dir / "notes.txt") << "mine";

  // The same run, resumed: nothing to refuse; the interrupted write's leftover goes.
  const ClaimResult same = claim_checkpoint_dir(dir.string(), "00000000000000f1", true, false);
  CHECK(same.removed_checkpoints.empty());
  CHECK(same.removed_temporaries ==
        std::vector<std::string>{"step_00000003.safetensors.tmp.123.0"});

  try {
    claim_checkpoint_dir(dir.string(), "00000000000000f2", false, false);
    FAIL("a fresh run claimed another run's directory");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains(dir.string()));
    CHECK_THAT(what, Catch::Contains("run 00000000000000f1"));
    CHECK_THAT(what, Catch::Contains("--resume " + dir.string()));
    CHECK_THAT(what, Catch::Contains("--overwrite_checkpoints"));
  }
  CHECK(fs::exists(dir / "latest"));

  const ClaimResult overwritten =
      claim_checkpoint_dir(dir.string(), "00000000000000f2", false, true);
  CHECK(overwritten.removed_checkpoints.size() == 3);  // two step files and latest
  CHECK(list_checkpoint_files(dir.string()).empty());
  CHECK_FALSE(fs::exists(dir / "latest"));
  CHECK(fs::exists(dir / "notes.txt"));  // not a checkpoint file: left alone
}
