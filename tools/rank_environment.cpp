// Reading a rank's identity from its launcher's environment (see rank_environment.hpp).
#include "tools/rank_environment.hpp"

#include <optional>

extern char** environ;
#include <stdexcept>

namespace troupe {
namespace {

std::optional<std::int64_t> whole_number(const std::map<std::string, std::string>& env,
                                         const std::string& name) {
  const auto it = env.find(name);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  std::size_t used = 0;
  std::int64_t value = 0;
  try {
    value = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || value < 0)
    throw std::invalid_argument("environment variable " + name + " = '" + it->second +
                                "' is not a whole number >= 0");
  return value;
}

// SLURM_NTASKS_PER_NODE may read "2(x3)" (2 tasks on each of 3 nodes): the count comes first.
std::optional<std::int64_t> local_size(const std::map<std::string, std::string>& env,
                                       const std::string& name) {
  const auto it = env.find(name);
  if (it == env.end()) return std::nullopt;
  const auto paren = it->second.find('(');
  if (paren == std::string::npos) return whole_number(env, name);
  return whole_number({{name, it->second.substr(0, paren)}}, name);
}

struct Names {
  const char* launcher;
  const char* rank;
  const char* world_size;
  const char* local_rank;
  const char* local_world_size;
};

}  // namespace

RankEnvironment read_rank_environment(const std::map<std::string, std::string>& environment) {
  constexpr Names kLaunchers[] = {
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
      {"mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
  };
  RankEnvironment out;
  for (const Names& names : kLaunchers) {
    const auto world = whole_number(environment, names.world_size);
    if (!world) continue;
    out.launcher = names.launcher;
    out.world_size = *world;
    out.rank = whole_number(environment, names.rank).value_or(0);
    out.local_rank = whole_number(environment, names.local_rank).value_or(0);
    out.local_world_size = local_size(environment, names.local_world_size).value_or(1);
    if (out.world_size < 1 || out.rank >= out.world_size)
      throw std::invalid_argument(std::string(names.rank) + " = " + std::to_string(out.rank) +
                                  " does not fit " + names.world_size + " = " +
                                  std::to_string(out.world_size));
    if (out.local_rank >= out.local_world_size)
      throw std::invalid_argument(
          std::string(names.local_rank) + " = " + std::to_string(out.local_rank) +
          " does not fit " + names.local_world_size + " = " + std::to_string(out.local_world_size));
    break;
  }
  if (const auto it = environment.find("MASTER_ADDR"); it != environment.end())
    out.master_addr = it->second;
  out.master_port = whole_number(environment, "MASTER_PORT").value_or(0);
  return out;
}

std::map<std::string, std::string> current_environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) out[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return out;
}

}  // namespace troupe
