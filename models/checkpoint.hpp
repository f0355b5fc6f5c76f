// Training checkpoints: parameters, optimizer state, step, data position and seed in one
// safetensors file per checkpoint, written atomically (temporary file, then rename), plus a
// `latest` file naming the newest one (also replaced atomically). A run resumed from a checkpoint
// continues bit-identically on the CPU: routing noise and data order are functions of
// (seed, step, micro-batch) and (seed, epoch), so the seed and positions are the whole RNG state.
//
// Layout: DIR/step_00000100.safetensors, DIR/latest ("step_00000100.safetensors\n").
// Tensors: "param/<parameter name>", "optim/<partition>/<state name>".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "memory/safetensors.hpp"
#include "models/parameter.hpp"

namespace troupe {

struct CheckpointMeta {
  std::int64_t step = 0;        // optimizer steps completed
  std::int64_t data_epoch = 0;  // data reader position after the last step
  std::int64_t data_index = 0;
  std::uint64_t seed = 0;
  std::string model;  // model name, checked on resume
};

// One optimizer partition's state tensors by name.
struct PartitionState {
  std::vector<std::string> names;
  std::vector<Tensor> tensors;
};

// Writes DIR/step_NNNNNNNN.safetensors, updates DIR/latest, then removes all but the `keep`
// newest step files (keep = 0 keeps every one); returns the new file's path.
std::string save_checkpoint(const std::string& dir, const CheckpointMeta& meta,
                            const std::vector<Parameter*>& parameters,
                            const std::vector<PartitionState>& optimizer, std::int64_t keep = 0);

struct LoadedCheckpoint {
  CheckpointMeta meta;
  std::vector<PartitionState> optimizer;
};

// Reads DIR/latest (or a .safetensors path given directly), copies every parameter's value in
// place and returns the rest. Throws std::runtime_error naming the file and the mismatch when a
// parameter is missing, has another shape, or the model name differs.
LoadedCheckpoint load_checkpoint(const std::string& dir_or_file,
                                 const std::vector<Parameter*>& parameters,
                                 const std::string& model_name);

}  // namespace troupe
