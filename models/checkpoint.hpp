// Training checkpoints: parameters, optimizer state, step, data position, seed and run id in one
// safetensors file per checkpoint, written atomically (temporary file, then rename), plus a
// `latest` file naming the newest one (also replaced atomically; models/checkpoint_dir.hpp). A
// run resumed from a checkpoint continues bit-identically on the CPU: routing noise and data order
// are functions of (seed, step, micro-batch) and (seed, epoch), so the seed and positions are the
// whole RNG state.
//
// Layout: DIR/step_00000100.safetensors, DIR/latest ("step_00000100.safetensors\nrun_id <id>\n").
// A run of several ranks keeps one such directory per rank (DIR/rankR) plus a manifest DIR/latest
// naming every rank's shard: models/sharded_checkpoint.hpp.
// Tensors: "param/<parameter name>"; "optim/<group>/exp_avg" and "optim/<group>/exp_avg_sq"
// for group "non_expert" and "expert", each covering one contiguous range [begin, begin + size)
// of the group's flat buffer in its order (models/parameter.hpp). One process saves the whole
// group (begin 0, size the group's), so its checkpoint does not depend on how the optimizer state
// was partitioned: a run may resume with another runtime.optimizer_partitions. A rank of a ZeRO-1
// run saves only the range its partitions own (none of a group it holds nothing of), so its shard
// resumes only partitions inside that range, i.e. the same world size. Adam's step count is the
// metadata's "step".
// Metadata (all strings): format "troupe-checkpoint", format_version "2", run_id (16 hex digits,
// made at the start of a fresh run and kept by --resume), step, data_epoch, data_index, seed,
// model, optim_<group>_begin for each group with optimizer state (its range's begin; absent, as
// in files written before ranges existed, means 0), and crc32: the CRC-32 of the whole file with
// these 8 digits read as zeros (memory/safetensors_crc.hpp). Loading checks the format, version
// and CRC.
//
// Crash points (memory/crash_point.hpp) a save passes, in order: "after_temp_write" (the step file
// is complete under its temporary name), "after_rename" (it is in place), "before_latest",
// "after_latest" (latest names it), then "mid_prune" after each old file pruning removes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "memory/safetensors.hpp"
#include "models/parameter.hpp"

namespace troupe {

inline constexpr const char* kCheckpointFormat = "troupe-checkpoint";
inline constexpr int kCheckpointVersion = 2;

struct CheckpointMeta {
  std::string run_id;
  std::int64_t step = 0;        // optimizer steps completed (Adam's step count)
  std::int64_t data_epoch = 0;  // data reader position after the last step
  std::int64_t data_index = 0;
  std::uint64_t seed = 0;
  std::string model;  // model name, checked on resume
};

// A fresh run's id: 64 random bits as 16 lowercase hex digits.
std::string new_run_id();

// "expert" or "non_expert": the optimizer state tensors' group part.
const char* optimizer_group_name(bool expert_group);

// One optimizer partition's state: its range of its parameter group's flat buffer.
struct PartitionState {
  bool expert_group = false;
  std::int64_t group_begin = 0;  // the range's first element in the group's flat buffer
  std::vector<std::string> names;
  std::vector<Tensor> tensors;  // [range size] each, in range order
};

// Writes DIR/step_NNNNNNNN.safetensors (the partitions' states joined per group: the partitions
// of a group, empty ones aside, must tile one contiguous range of it, all with the same state
// names; std::invalid_argument otherwise), updates DIR/latest, then prunes run meta.run_id's files
// to the `keep` newest (prune_checkpoints; keep = 0 keeps every one); returns the new file's path.
std::string save_checkpoint(const std::string& dir, const CheckpointMeta& meta,
                            const std::vector<Parameter*>& parameters,
                            const std::vector<PartitionState>& optimizer, std::int64_t keep = 0);

// The optimizer state a checkpoint stores of one group: the range [begin, begin + size).
struct StoredGroupState {
  std::int64_t begin = 0;
  std::int64_t size = 0;
  std::map<std::string, Tensor> tensors;  // state name → [size]
};

struct LoadedCheckpoint {
  std::string path;  // the file resumed from
  CheckpointMeta meta;
  std::map<std::string, StoredGroupState> optimizer;  // by group name
  // Newer checkpoints of the run that were skipped as damaged: "FILE: why" each.
  std::vector<std::string> skipped;

  // The state of the range [begin, begin + size) of a group: what the partition owning it holds.
  // Throws std::runtime_error naming the file, the group, the stored range and the wanted one when
  // the wanted range is not inside the stored one (e.g. a shard of a run of another world size).
  PartitionState partition_state(bool expert_group, std::int64_t begin, std::int64_t size) const;
};

// Resumes from a .safetensors file, or from a directory: the file `latest` names, else (damaged:
// unreadable, truncated, wrong CRC, unknown format or version, another run's) the newest older
// step file of the same run that is intact, noting each skipped one in `skipped`; a directory
// without `latest` starts from its newest step file. When no file is intact, throws
// std::runtime_error listing every file tried and why it failed. Then copies every parameter's
// value in place; throws std::runtime_error naming the file and the mismatch when a parameter is
// missing or has another shape, an optimizer state's range does not fit in its group, or the
// model name differs.
LoadedCheckpoint load_checkpoint(const std::string& dir_or_file,
                                 const std::vector<Parameter*>& parameters,
                                 const std::string& model_name);

// A checkpoint's parameters, without a model to load them into (`troupe export`).
struct CheckpointParameters {
  std::string path;  // the file read
  CheckpointMeta meta;
  NamedTensors parameters;           // under the parameters' own names (no "param/"), in file order
  std::vector<std::string> skipped;  // as LoadedCheckpoint::skipped
};

// Checks that the file at `path` is an intact checkpoint (the checks resuming makes: format,
// version, the CRC over every byte, read in blocks) of run `run_id` (any run when empty), without
// keeping its tensors; returns its metadata. Throws std::runtime_error naming the file and what is
// wrong.
CheckpointMeta verify_checkpoint(const std::string& path, const std::string& run_id = "");

// The CRC-32 that save_checkpoint recorded in the file's metadata, as its 8 hex digits, read from
// the header alone (not checked against the bytes: verify_checkpoint does that). A rank reports
// it for its shard once save_checkpoint has returned. Throws std::runtime_error naming the file
// when the header cannot be read or holds no such value.
std::string checkpoint_crc(const std::string& path);

// The same choice of file and the same checks as load_checkpoint, then the "param/" tensors.
CheckpointParameters read_checkpoint_parameters(const std::string& dir_or_file);

// Copies each parameter's value from the tensor of its name in `values`; throws
// std::runtime_error "<where> has no parameter N" or "<where>: parameter N has shape S, the model
// has S'" at the first mismatch. Tensors the model lacks are ignored.
void assign_parameters(const NamedTensors& values, const std::vector<Parameter*>& parameters,
                       const std::string& where);

}  // namespace troupe
