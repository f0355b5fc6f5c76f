// A model's parameters alone, as a file a run can start from (`troupe train --init_from FILE`):
// what `troupe export --format troupe` writes when it imports a DeepSpeed-named state dict. A
// safetensors file with one tensor per parameter, under troupe's parameter names, and metadata
// {"format": "troupe-parameters"}; no optimizer state, step or run id.
#pragma once

#include <string>
#include <vector>

#include "memory/safetensors.hpp"
#include "models/parameter.hpp"

namespace troupe {

inline constexpr const char* kParameterFileFormat = "troupe-parameters";

// Writes `parameters` atomically.
void save_parameter_file(const std::string& path, const NamedTensors& parameters);

// Reads a parameter file; throws std::runtime_error naming the file when it is not one.
NamedTensors load_parameter_file(const std::string& path);

// Sets `parameters` from the file at `path` (fine-tuning's starting point): every parameter must
// be there with its shape, and the file must hold nothing else; throws std::runtime_error naming
// the file and the first missing, mis-shaped or unknown tensor.
void init_parameters_from(const std::string& path, const std::vector<Parameter*>& parameters);

}  // namespace troupe
