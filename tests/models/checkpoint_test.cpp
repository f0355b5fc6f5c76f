// Checkpoint files and directories: per-group optimizer state independent of the partitioning,
// run ids, fallback past damaged files, pruning that touches only its own run, and claiming a
// directory.
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
#include "test_util/temp_dir.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

// Two non-expert parameters (5010 elements: two norm chunks) and one expert one (9000: three).
struct TinyModel {
  Parameter w = make_parameter("w", {5000}, false);
  Parameter b = make_parameter("b", {10}, false);
  Parameter e = make_parameter("e", {9000}, true);
  std::vector<Parameter*> all() { return {&w, &b, &e}; }
  void fill(float base) {
    for (auto* p : all())
      for (std::int64_t i = 0; i < p->value.numel(); ++i)
        p->value.data<float>()[i] = base + 0.001f * static_cast<float>(i);
  }
};

Tensor ramp(std::int64_t n, float base) {
  Tensor t = Tensor::empty({n});
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = base + static_cast<float>(i);
  return t;
}

// A group's Adam state split at `cuts` (element offsets), as partitions would hold it.
void add_partitions(std::vector<PartitionState>& out, bool expert, std::int64_t size,
                    const std::vector<std::int64_t>& cuts, float base) {
  const Tensor avg = ramp(size, base);
  const Tensor sq = ramp(size, base + 0.5f);
  std::vector<std::int64_t> bounds = cuts;
  bounds.insert(bounds.begin(), 0);
  bounds.push_back(size);
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i)
    out.push_back({expert,
                   bounds[i],
                   {"exp_avg", "exp_avg_sq"},
                   {avg.slice_rows(bounds[i], bounds[i + 1]).clone(),
                    sq.slice_rows(bounds[i], bounds[i + 1]).clone()}});
}

std::vector<PartitionState> optimizer_state(float base, std::int64_t expert_pieces) {
  std::vector<PartitionState> out;
  add_partitions(out, false, 5010, {4096}, base);
  add_partitions(
      out, true, 9000,
      expert_pieces == 3 ? std::vector<std::int64_t>{4096, 8192} : std::vector<std::int64_t>{},
      base + 100.0f);
  return out;
}

CheckpointMeta meta_for(const std::string& run_id, std::int64_t step) {
  return CheckpointMeta{run_id, step, 1, 7 * step, 42, "tiny"};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(static_cast<const char*>(a.raw_data()),
                                              static_cast<const char*>(a.raw_data()) + a.nbytes(),
                                              static_cast<const char*>(b.raw_data()));
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void flip_middle_16(const fs::path& path) {
  std::string bytes = read_text(path);
  const std::size_t middle = bytes.size() - (5010 + 9000) * 4;  // inside the tensor data
  for (std::size_t i = middle; i < middle + 16; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

void truncate(const fs::path& path) {
  fs::resize_file(path, fs::file_size(path) - 100);
}

// Saves steps `from`..`to` of run `run_id` with parameters filled from the step number.
void save_steps(const fs::path& dir, TinyModel& model, const std::string& run_id, std::int64_t from,
                std::int64_t to, std::int64_t keep = 0) {
  for (std::int64_t step = from; step <= to; ++step) {
    model.fill(static_cast<float>(step));
    save_checkpoint(dir.string(), meta_for(run_id, step), model.all(),
                    optimizer_state(static_cast<float>(step), 3), keep);
  }
}

}  // namespace

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
