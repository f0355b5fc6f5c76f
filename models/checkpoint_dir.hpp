// A checkpoint directory's files and which run owns them: step files (step_NNNNNNNN.safetensors,
// each carrying its run id in its metadata), `latest` (the newest step file's name and its run
// id), pruning a run's old files, and claiming a directory before a run writes into it. The file
// format itself is models/checkpoint.hpp's; a run of several ranks has one such directory per rank
// under a common manifest (models/sharded_checkpoint.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

struct CheckpointFile {
  std::string path;
  std::string name;  // step_NNNNNNNN.safetensors
  std::int64_t step = 0;
};

// "step_NNNNNNNN.safetensors": zero-padded, so names sort in step order.
std::string checkpoint_file_name(std::int64_t step);
// The step a step file's name carries; -1 for any other name.
std::int64_t checkpoint_file_step(std::string_view name);

// The step files in `dir`, by step (none when `dir` does not exist). Temporary files of an
// interrupted write are not step files.
std::vector<CheckpointFile> list_checkpoint_files(const std::string& dir);

// The run id a step file's metadata names; empty when its header cannot be read.
std::string checkpoint_run_id(const std::string& path);

// DIR/latest: "<step file name>\nrun_id <id>\n".
struct LatestCheckpoint {
  std::string name;
  std::string run_id;  // empty in a file written before run ids existed
};
std::optional<LatestCheckpoint> read_latest(const std::string& dir);
// DIR/latest's path.
std::string latest_path(const std::string& dir);
// Replaces DIR/latest atomically.
void write_latest(const std::string& dir, const LatestCheckpoint& latest);

// Removes the oldest step files of run `run_id` (by step) until `keep` of its files remain; the
// file `newest` (just written) is never removed, nor is any other run's file (keep ≤ 0: none).
// Passes crash_point("mid_prune") after each removal.
void prune_checkpoints(const std::string& dir, const std::string& run_id, std::int64_t keep,
                       const std::string& newest);

// What claim_checkpoint_dir removed.
struct ClaimResult {
  std::vector<std::string> removed_checkpoints;  // another run's files (--overwrite_checkpoints)
  std::vector<std::string> removed_temporaries;  // leftovers of writes a crash interrupted
};

// Before run `run_id` writes checkpoints into `dir`: any step file or `latest` that belongs to
// another run (for a fresh run: any at all; for a resumed run, a file whose header cannot be read
// counts as its own, damaged) makes it throw std::runtime_error naming the directory, the other
// run id(s) and the two ways out (--resume DIR, --overwrite_checkpoints), unless `overwrite`,
// which removes those files instead. Temporary files of interrupted writes are removed either way.
ClaimResult claim_checkpoint_dir(const std::string& dir, const std::string& run_id, bool resumed,
                                 bool overwrite);

}  // namespace troupe
