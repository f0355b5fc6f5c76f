// `troupe export` (see export_command.hpp).
#include "tools/export_command.hpp"

#include <cstdio>
#include <exception>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "memory/safetensors.hpp"
#include "models/checkpoint.hpp"
#include "models/deepspeed_names.hpp"
#include "models/parameter_file.hpp"

namespace troupe {

void export_deepspeed(const std::string& checkpoint, const std::string& output) {
  const CheckpointParameters ckpt = read_checkpoint_parameters(checkpoint);
  for (const auto& skipped : ckpt.skipped)
    spdlog::warn("skipping a damaged checkpoint: {}", skipped);
  spdlog::info("exporting {} (model {}, run {}, step {})", ckpt.path, ckpt.meta.model,
               ckpt.meta.run_id, ckpt.meta.step);
  save_safetensors(output, to_deepspeed_state_dict(ckpt.parameters), {{"format", "pt"}});
}

void import_deepspeed(const std::string& state_dict, const std::string& output) {
  const SafetensorsFile file = load_safetensors(state_dict);
  save_parameter_file(output, from_deepspeed_state_dict(file.tensors));
}

int run_export(const ExportCommand& command) {
  try {
    if (command.format == "deepspeed") {
      export_deepspeed(command.input, command.output);
    } else if (command.format == "troupe") {
      import_deepspeed(command.input, command.output);
    } else {
      throw std::invalid_argument("--format " + command.format +
                                  " is not a format (allowed: deepspeed, troupe)");
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  std::printf("wrote %s\n", command.output.c_str());
  return 0;
}

}  // namespace troupe
