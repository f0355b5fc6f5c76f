// `troupe export INPUT --format deepspeed|troupe -o FILE`: a trained model for PyTorch and
// DeepSpeed users, and back.
//   deepspeed: INPUT is a troupe checkpoint (directory → its newest intact file, or a file),
//              verified as --resume verifies it; FILE gets its parameters under the names a
//              PyTorch model built as DeepSpeed's MoE tutorial shows has
//              (models/deepspeed_names.hpp), a plain safetensors state dict with metadata
//              {"format": "pt"}; no optimizer state.
//   troupe:    INPUT is such a DeepSpeed-named safetensors file (made by troupe or by PyTorch);
//              FILE is a troupe parameter file (models/parameter_file.hpp) that
//              `troupe train CONFIG --init_from FILE` starts from.
// docs/INTEROP.md shows the PyTorch side.
#pragma once

#include <string>

namespace troupe {

struct ExportCommand {
  std::string input;
  std::string format = "deepspeed";
  std::string output;
};

// Throws std::runtime_error / std::invalid_argument naming the file and the problem.
void export_deepspeed(const std::string& checkpoint, const std::string& output);
void import_deepspeed(const std::string& state_dict, const std::string& output);

// Returns the exit code: 0, or 1 after logging the error; prints the written file's path.
int run_export(const ExportCommand& command);

}  // namespace troupe
