// `troupe launch [launcher options] CONFIG [troupe train options]` (tools/troupe-launch runs it):
// starts `troupe train` once per rank of this node with the torchrun environment, and watches the
// ranks as one job (tools/process_supervisor.hpp). Without --nproc_per_node, --nnodes or
// --hostfile it starts one `troupe train` in its own place, keeping the environment: that is how
// ranks started by torchrun, Slurm or mpirun use it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tools/launch_plan.hpp"

namespace troupe {

struct LaunchCommand {
  LaunchOptions options;
  std::string hostfile;                // DeepSpeed-style "HOST slots=N" lines
  std::vector<std::string> forwarded;  // CONFIG and the train options, unchanged
};

// Returns the process exit code (see SupervisionResult::exit_code; 2 for bad launcher options).
// The rank program is $TROUPE_BIN, or this executable; TROUPE_SSH replaces "ssh" for other hosts.
int run_launch(const LaunchCommand& command);

}  // namespace troupe
