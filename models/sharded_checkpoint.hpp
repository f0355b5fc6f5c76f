// A checkpoint of a run of several ranks: one shard per rank and a manifest naming them all.
//
// Layout: DIR/rankR/ is rank R's own checkpoint directory (models/checkpoint_dir.hpp: its step
// files, each with its CRC-32 and the run id, and its own DIR/rankR/latest), and DIR/latest is the
// manifest, which rank 0 writes (atomically) only once every rank has confirmed its shard of a
// step, so a crash never leaves a manifest naming a shard that is not there:
//
//   step_00000100.safetensors
//   run_id 0123456789abcdef
//   world_size 2
//   rank 0 crc32 1a2b3c4d
//   rank 1 crc32 5e6f7a8b
//
// Its first two lines are those of a one-process `latest`, so read_latest reads it too.
// Resuming (resolve_sharded_checkpoint) verifies every rank's shard of the step the manifest
// names and falls back to the newest older step whose shards are all intact and of the same run;
// every rank computes the same choice from the same files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

// DIR/rankR: rank R's checkpoint directory.
std::string checkpoint_shard_dir(const std::string& dir, std::int64_t rank);

// DIR/latest of a run of several ranks.
struct ShardedLatest {
  std::string name;  // the step file name, the same in every rank's directory
  std::string run_id;
  std::vector<std::string> shard_crcs;  // rank R's shard's CRC-32 (8 hex digits); one per rank
};

// Replaces DIR/latest atomically with the manifest above (world size = shard_crcs.size()).
// Throws std::invalid_argument when a CRC is not 8 lowercase hex digits or there are none.
void write_sharded_latest(const std::string& dir, const std::string& name,
                          const std::string& run_id, const std::vector<std::string>& shard_crcs);

// DIR/latest as a manifest; std::nullopt when there is no DIR/latest. Throws std::runtime_error
// naming the file and the line when it is not a manifest (e.g. a one-process run's `latest`).
std::optional<ShardedLatest> read_sharded_latest(const std::string& dir);

// Where every rank of a run of `world_size` ranks resumes from.
struct ShardedResume {
  std::string name;  // step file name
  std::int64_t step = 0;
  std::string run_id;
  std::vector<std::string> shard_paths;  // DIR/rankR/name, by rank
  // Newer steps skipped: "step_NNNNNNNN.safetensors: rank R: why" each, newest first.
  std::vector<std::string> skipped;
};

// Chooses the step to resume from in DIR. With DIR/latest: the step it names, if every rank's
// shard DIR/rankK/<name> exists, is intact (verify_checkpoint), is of the manifest's run and
// carries the manifest's CRC; else the newest older step whose shards are all intact and of that
// run. Without DIR/latest (a crash before rank 0 confirmed any step): the newest step whose
// shards are all intact and of one run. Throws std::runtime_error naming both sizes when the
// manifest is for another world size, and listing every step tried and why when none is left.
ShardedResume resolve_sharded_checkpoint(const std::string& dir, std::int64_t world_size);

}  // namespace troupe
