// The launcher's plan (see launch_plan.hpp).
#include "tools/launch_plan.hpp"

#include <numeric>
#include <sstream>
#include <stdexcept>

namespace troupe {
namespace {

std::int64_t positive(const char* option, std::int64_t value) {
  if (value < 1)
    throw std::invalid_argument(std::string(option) + " = " + std::to_string(value) +
                                ": must be at least 1");
  return value;
}

// Variables a rank on another host needs from the launcher's environment: the transports' and
// troupe's own settings and the thread counts.
bool forwarded_to_remote(const std::string& name) {
  for (const char* prefix : {"NCCL_", "UCX_", "TROUPE_", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"})
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace

std::vector<HostSlots> parse_hostfile(const std::string& text, const std::string& path) {
  std::vector<HostSlots> hosts;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string host, slots_word, extra;
    if (!(words >> host)) continue;
    const auto where = "hostfile " + path + " line " + std::to_string(number) + ": ";
    HostSlots entry{host, 1};
    if (words >> slots_word) {
      if (slots_word.rfind("slots=", 0) != 0)
        throw std::invalid_argument(where + "'" + slots_word + "' is not slots=N");
      try {
        std::size_t used = 0;
        entry.slots = std::stoll(slots_word.substr(6), &used);
        if (used != slots_word.size() - 6) throw std::invalid_argument("trailing characters");
      } catch (const std::exception&) {
        throw std::invalid_argument(where + "'" + slots_word + "': N must be a whole number");
      }
      if (entry.slots < 1)
        throw std::invalid_argument(where + "slots = " + std::to_string(entry.slots) +
                                    ": must be at least 1");
    }
    if (words >> extra)
      throw std::invalid_argument(where + "unexpected '" + extra + "' (expected HOST slots=N)");
    for (const auto& seen : hosts)
      if (seen.host == host)
        throw std::invalid_argument(where + "host " + host + " is listed twice");
    hosts.push_back(entry);
  }
  if (hosts.empty()) throw std::invalid_argument("hostfile " + path + " lists no hosts");
  return hosts;
}

NodePlan plan_node(const LaunchOptions& options) {
  NodePlan plan;
  plan.node_rank = options.node_rank;
  plan.master_port = options.master_port;
  if (options.master_port < 1 || options.master_port > 65535)
    throw std::invalid_argument("--master_port = " + std::to_string(options.master_port) +
                                ": must be a TCP port, 1 to 65535");
  std::int64_t nnodes = 0;
  if (!options.hosts.empty()) {
    nnodes = static_cast<std::int64_t>(options.hosts.size());
    if (options.nnodes && *options.nnodes != nnodes)
      throw std::invalid_argument("--nnodes = " + std::to_string(*options.nnodes) +
                                  " but the hostfile lists " + std::to_string(nnodes) + " hosts");
    if (options.nproc_per_node)
      throw std::invalid_argument(
          "--nproc_per_node cannot be combined with --hostfile: the hostfile's slots=N gives "
          "each host's process count");
    if (options.node_rank < 0 || options.node_rank >= nnodes)
      throw std::invalid_argument("--node_rank = " + std::to_string(options.node_rank) +
                                  ": must be 0 to " + std::to_string(nnodes - 1));
    const auto node = static_cast<std::size_t>(options.node_rank);
    plan.local_world_size = options.hosts[node].slots;
    plan.first_rank = 0;
    for (std::size_t h = 0; h < node; ++h) plan.first_rank += options.hosts[h].slots;
    plan.world_size = 0;
    for (const auto& h : options.hosts) plan.world_size += h.slots;
    plan.master_addr = options.master_addr.value_or(options.hosts.front().host);
    return plan;
  }
  nnodes = positive("--nnodes", options.nnodes.value_or(1));
  plan.local_world_size = positive("--nproc_per_node", options.nproc_per_node.value_or(1));
  if (options.node_rank < 0 || options.node_rank >= nnodes)
    throw std::invalid_argument("--node_rank = " + std::to_string(options.node_rank) +
                                ": must be 0 to " + std::to_string(nnodes - 1) + " (--nnodes " +
                                std::to_string(nnodes) + ")");
  plan.first_rank = options.rank_offset.value_or(options.node_rank * plan.local_world_size);
  plan.world_size = options.world_size.value_or(nnodes * plan.local_world_size);
  if (plan.first_rank < 0 || plan.first_rank + plan.local_world_size > plan.world_size)
    throw std::invalid_argument("ranks " + std::to_string(plan.first_rank) + " to " +
                                std::to_string(plan.first_rank + plan.local_world_size - 1) +
                                " do not fit in a world of " + std::to_string(plan.world_size));
  plan.master_addr = options.master_addr.value_or("127.0.0.1");
  return plan;
}

std::map<std::string, std::string> rank_environment(const NodePlan& node, std::int64_t local_rank,
                                                    std::map<std::string, std::string> base) {
  base["RANK"] = std::to_string(node.first_rank + local_rank);
  base["WORLD_SIZE"] = std::to_string(node.world_size);
  base["LOCAL_RANK"] = std::to_string(local_rank);
  base["LOCAL_WORLD_SIZE"] = std::to_string(node.local_world_size);
  base["GROUP_RANK"] = std::to_string(node.node_rank);
  base["MASTER_ADDR"] = node.master_addr;
  base["MASTER_PORT"] = std::to_string(node.master_port);
  return base;
}

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\"'\"'";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::vector<std::string> remote_node_command(
    const std::string& ssh_command, const LaunchOptions& options, std::int64_t node_rank,
    const std::string& working_dir, const std::vector<std::string>& launcher,
    const std::vector<std::string>& forwarded,
    const std::map<std::string, std::string>& environment) {
  LaunchOptions remote = options;
  remote.node_rank = node_rank;
  const NodePlan plan = plan_node(remote);
  std::vector<std::string> command;
  std::istringstream words(ssh_command.empty() ? std::string("ssh") : ssh_command);
  for (std::string word; words >> word;) command.push_back(word);
  command.push_back(options.hosts.at(static_cast<std::size_t>(node_rank)).host);

  std::string line = "cd " + shell_quote(working_dir) + " && env";
  for (const auto& [name, value] : environment)
    if (forwarded_to_remote(name)) line += " " + shell_quote(name + "=" + value);
  for (const auto& word : launcher) line += " " + shell_quote(word);
  const std::pair<const char*, std::string> node_options[] = {
      {"--nproc_per_node", std::to_string(plan.local_world_size)},
      {"--nnodes", std::to_string(options.hosts.size())},
      {"--node_rank", std::to_string(node_rank)},
      {"--master_addr", plan.master_addr},
      {"--master_port", std::to_string(plan.master_port)},
      {"--world_size", std::to_string(plan.world_size)},
      {"--rank_offset", std::to_string(plan.first_rank)}};
  for (const auto& [option, value] : node_options)
    line += " " + std::string(option) + " " + shell_quote(value);
  for (const auto& word : forwarded) line += " " + shell_quote(word);
  command.push_back(line);
  return command;
}

}  // namespace troupe
