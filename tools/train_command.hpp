// `troupe train CONFIG`: trains the config's model with the actor runtime, shows progress, writes
// metrics (JSON lines), checkpoints, optionally a Chrome trace and plots, and ends with the
// evaluation result ("test accuracy: NN.NN%" for classifiers, validation loss in bits per character
// for language models).
#pragma once

#include <cstdint>
#include <string>

namespace troupe {

struct TrainCommand {
  std::string config_path;
  // DeepSpeed's --deepspeed_config: the DeepSpeed sections come from this file, unchanged.
  std::string deepspeed_config_path;
  std::string resume;        // checkpoint directory (or file) to continue from
  std::string init_from;     // parameter file to start from (fresh optimizer, step 0)
  std::string trace_file;    // overrides runtime.trace_file
  std::string metrics_file;  // overrides runtime.metrics_file
  std::int64_t steps = 0;    // overrides the number of optimizer steps when > 0
  bool plot = false;         // write PNG plots next to the metrics file when the run ends
  // Deletes another run's checkpoints in runtime.checkpoint.dir instead of refusing to start.
  bool overwrite_checkpoints = false;
};

// Returns the process exit code: 0 on success, 2 for a bad config, 1 for a failed run, 128 + the
// signal's number for a run SIGINT or SIGTERM stopped (tools/stop_signals.hpp). The run's newest
// checkpoint is named on the last line of stdout ("checkpoint: PATH").
int run_train(const TrainCommand& command);

}  // namespace troupe
