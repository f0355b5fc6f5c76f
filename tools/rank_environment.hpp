// Who this process is in a multi-process run, read from the environment its launcher set:
// troupe-launch and torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE)
// or Open MPI's mpirun (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE). The torchrun
// variables win when several launchers' variables are present, as they do for DeepSpeed.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace troupe {

struct RankEnvironment {
  std::string launcher = "none";  // "torchrun" (also troupe-launch), "slurm", "mpi" or "none"
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
  std::int64_t local_rank = 0;
  std::int64_t local_world_size = 1;
  std::string master_addr;  // empty when the launcher sets none (Slurm, MPI)
  std::int64_t master_port = 0;
};

// Reads `environment`; throws std::invalid_argument naming the variable when a value is not a
// whole number or the rank does not fit in the world size.
RankEnvironment read_rank_environment(const std::map<std::string, std::string>& environment);

// The calling process's environment as a map.
std::map<std::string, std::string> current_environment();

}  // namespace troupe
