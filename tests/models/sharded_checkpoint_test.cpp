// A checkpoint of several ranks: the manifest rank 0 writes, and the choice of the step every
// rank resumes from when shards are intact, damaged, missing, or written for another world size.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/checkpoint.hpp"
#include "models/checkpoint_dir.hpp"
#include "models/checkpoint_test_util.hpp"
#include "models/sharded_checkpoint.hpp"
#include "test_util/temp_dir.hpp"

using namespace troupe;
using namespace troupe::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kRun = "0000000000000abc";

// Rank `rank` of 2 under ZeRO-1: rank 0 owns non-expert [0, 4096) and expert [0, 8192), rank 1
// the rest, as contiguous ranges at multiples of the norm chunk.
std::vector<PartitionState> rank_state(float base, std::int64_t rank) {
  std::vector<PartitionState> out;
  for (auto& p : optimizer_state(base, 3)) {
    const std::int64_t cut = p.expert_group ? 8192 : 4096;
    if ((p.group_begin < cut) == (rank == 0)) out.push_back(std::move(p));
  }
  return out;
}

// Both ranks save steps from..to of run `run_id` into DIR/rankR; after each step rank 0 writes the
// manifest from the CRCs the ranks report, as the trainer does once every shard is confirmed.
void save_sharded_steps(const fs::path& dir, const std::string& run_id, std::int64_t from,
                        std::int64_t to, bool manifest = true) {
  TinyModel model;
  for (std::int64_t step = from; step <= to; ++step) {
    std::vector<std::string> crcs;
    for (std::int64_t rank = 0; rank < 2; ++rank) {
      model.fill(static_cast<float>(step + 10 * rank));
      const std::string path =
          save_checkpoint(checkpoint_shard_dir(dir.string(), rank), meta_for(run_id, step),
                          model.all(), rank_state(static_cast<float>(step), rank));
      crcs.push_back(checkpoint_crc(path));
    }
    if (manifest) write_sharded_latest(dir.string(), checkpoint_file_name(step), run_id, crcs);
  }
}

fs::path shard(const fs::path& dir, std::int64_t rank, std::int64_t step) {
  return fs::path(checkpoint_shard_dir(dir.string(), rank)) / checkpoint_file_name(step);
}

}  // namespace

TEST_CASE("the manifest names every rank's shard, readable as a one-process latest too") {
  const test::TempDir scratch("sharded_manifest");
  const std::string dir = scratch.path.string();
  CHECK_FALSE(read_sharded_latest(dir));
  write_sharded_latest(dir, "step_00000007.safetensors", kRun, {"0123abcd", "ffff0000"});
  CHECK(read_text(scratch.path / "latest") ==
        "step_00000007.safetensors\nrun_id 0000000000000abc\nworld_size 2\n"
        "rank 0 crc32 0123abcd\nrank 1 crc32 ffff0000\n");
  const auto manifest = read_sharded_latest(dir);
  REQUIRE(manifest);
  CHECK(manifest->name == "step_00000007.safetensors");
  CHECK(manifest->run_id == kRun);
  CHECK(manifest->shard_crcs == std::vector<std::string>{"0123abcd", "ffff0000"});
  const auto one_process = read_latest(dir);
  REQUIRE(one_process);
  CHECK(one_process->name == "step_00000007.safetensors");
  CHECK(one_process->run_id == kRun);

  CHECK_THROWS_AS(write_sharded_latest(dir, "step_00000008.safetensors", kRun, {"0123ABCD"}),
                  std::invalid_argument);
  CHECK_THROWS_AS(write_sharded_latest(dir, "latest", kRun, {"0123abcd"}), std::invalid_argument);
  // A one-process run's latest is not a manifest.
  write_latest(dir, {"step_00000007.safetensors", kRun});
  CHECK_THROWS_WITH(read_sharded_latest(dir), Catch::Contains(dir) && Catch::Contains("line 3") &&
                                                  Catch::Contains("world_size"));
}

TEST_CASE("with every shard intact, the ranks resume from the step the manifest names") {
  const test::TempDir scratch("sharded_intact");
  save_sharded_steps(scratch.path, kRun, 1, 3);
  const ShardedResume resume = resolve_sharded_checkpoint(scratch.path.string(), 2);
  CHECK(resume.name == "step_00000003.safetensors");
  CHECK(resume.step == 3);
  CHECK(resume.run_id == kRun);
  CHECK(resume.skipped.empty());
  REQUIRE(resume.shard_paths.size() == 2);
  CHECK(resume.shard_paths[1] == shard(scratch.path, 1, 3).string());

  // Rank 1 loads its shard and its partitions take back their ranges.
  TinyModel model;
  const LoadedCheckpoint loaded = load_checkpoint(resume.shard_paths[1], model.all(), "tiny");
  CHECK(model.w.value.data<float>()[0] == 13.0f);
  for (const auto& p : rank_state(3.0f, 1))
    CHECK(same_bits(
        loaded.partition_state(p.expert_group, p.group_begin, p.tensors[0].numel()).tensors[0],
        p.tensors[0]));
}

TEST_CASE("a damaged, missing or replaced shard makes every rank fall back to the previous step") {
  const test::TempDir scratch("sharded_fallback");
  const fs::path& dir = scratch.path;
  save_sharded_steps(dir, kRun, 1, 3);
  std::string why;
  SECTION("one flipped byte in rank 1's shard") {
    std::string bytes = read_text(shard(dir, 1, 3));
    bytes[bytes.size() - 5] = static_cast<char>(~bytes[bytes.size() - 5]);
    std::ofstream(shard(dir, 1, 3), std::ios::binary | std::ios::trunc) << bytes;
    why = "CRC-32";
  }
  SECTION("rank 1's shard gone") {
    fs::remove(shard(dir, 1, 3));
    why = "is missing";
  }
  SECTION("rank 0's shard intact but not the one the manifest confirmed") {
    TinyModel model;
    model.fill(99.0f);
    save_checkpoint(checkpoint_shard_dir(dir.string(), 0), meta_for(kRun, 3), model.all(),
                    rank_state(99.0f, 0));
    why = "the manifest says";
  }
  const ShardedResume resume = resolve_sharded_checkpoint(dir.string(), 2);
  CHECK(resume.name == "step_00000002.safetensors");
  CHECK(resume.step == 2);
  REQUIRE(resume.skipped.size() == 1);
  CHECK_THAT(resume.skipped[0], Catch::StartsWith("step_00000003.safetensors: rank "));
  CHECK_THAT(resume.skipped[0], Catch::Contains(why));
}

TEST_CASE("an older step with a shard of another run is no fallback") {
  const test::TempDir scratch("sharded_other_run");
  const fs::path& dir = scratch.path;
  save_sharded_steps(dir, "0000000000000def", 1, 2);  // an earlier run's files
  save_sharded_steps(dir, kRun, 3, 3);
  fs::remove(shard(dir, 0, 3));
  try {
    resolve_sharded_checkpoint(dir.string(), 2);
    FAIL("another run's shards were resumed from");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("no intact sharded checkpoint"));
    CHECK_THAT(what, Catch::Contains("step_00000003.safetensors: rank 0: "));
    CHECK_THAT(what, Catch::Contains("step_00000002.safetensors: rank 0: "));
    CHECK_THAT(what, Catch::Contains("belongs to run 0000000000000def"));
    CHECK_THAT(what, Catch::Contains("step_00000001.safetensors: rank 0: "));
  }
}

TEST_CASE("a manifest of another world size is an error naming both sizes") {
  const test::TempDir scratch("sharded_world");
  save_sharded_steps(scratch.path, kRun, 1, 1);
  CHECK_THROWS_WITH(resolve_sharded_checkpoint(scratch.path.string(), 4),
                    Catch::Contains("of 2 ranks") && Catch::Contains("this run has 4"));
}

TEST_CASE("without a manifest, the newest step whose shards are all intact is resumed") {
  const test::TempDir scratch("sharded_no_latest");
  const fs::path& dir = scratch.path;
  CHECK_THROWS_WITH(resolve_sharded_checkpoint(dir.string(), 2),
                    Catch::Contains("nothing to resume from"));
  save_sharded_steps(dir, kRun, 1, 3, false);
  CHECK(resolve_sharded_checkpoint(dir.string(), 2).name == "step_00000003.safetensors");

  // A crash after rank 0 saved step 4 but before rank 1 did: step 3 is the last complete one.
  TinyModel model;
  save_checkpoint(checkpoint_shard_dir(dir.string(), 0), meta_for(kRun, 4), model.all(),
                  rank_state(4.0f, 0));
  const ShardedResume resume = resolve_sharded_checkpoint(dir.string(), 2);
  CHECK(resume.name == "step_00000003.safetensors");
  CHECK(resume.run_id == kRun);
  REQUIRE(resume.skipped.size() == 1);
  CHECK_THAT(resume.skipped[0], Catch::Contains("step_00000004.safetensors: rank 1: ") &&
                                    Catch::Contains("is missing"));
}

TEST_CASE("a sharded directory given where one checkpoint is expected says how to use it") {
  const test::TempDir scratch("sharded_as_one");
  save_sharded_steps(scratch.path, kRun, 1, 1);
  CHECK_THROWS_WITH(read_checkpoint_parameters(scratch.path.string()),
                    Catch::Contains("holds a checkpoint of several ranks") &&
                        Catch::Contains("--nproc_per_node") &&
                        Catch::Contains((scratch.path / "rank0").string()));
  // One rank's shard is an ordinary checkpoint directory.
  const CheckpointParameters shard0 =
      read_checkpoint_parameters(checkpoint_shard_dir(scratch.path.string(), 0));
  CHECK(shard0.meta.step == 1);
}
