// `troupe launch` (see launch_command.hpp).
#include "tools/launch_command.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "tools/process_supervisor.hpp"
#include "tools/rank_environment.hpp"

namespace troupe {
namespace {

std::string this_executable() {
  return std::filesystem::read_symlink("/proc/self/exe").string();
}

std::string rank_program() {
  if (const char* bin = std::getenv("TROUPE_BIN"); bin != nullptr && *bin != '\0') return bin;
  return this_executable();
}

bool is_single_rank_passthrough(const LaunchCommand& command) {
  const auto& o = command.options;
  return command.hostfile.empty() && !o.nproc_per_node && !o.nnodes && o.node_rank == 0 &&
         !o.world_size && !o.rank_offset;
}

}  // namespace

int run_launch(const LaunchCommand& command) {
  if (command.forwarded.empty()) {
    spdlog::error("troupe launch: give the run config (troupe launch [options] CONFIG ...)");
    return 2;
  }
  const std::string program = rank_program();
  std::vector<std::string> train_argv{program, "train"};
  train_argv.insert(train_argv.end(), command.forwarded.begin(), command.forwarded.end());

  if (is_single_rank_passthrough(command)) {
    std::vector<char*> argv;
    for (auto& a : train_argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    spdlog::error("troupe launch: cannot execute {}: {}", program, std::strerror(errno));
    return 127;
  }

  LaunchOptions options = command.options;
  NodePlan plan;
  try {
    if (!command.hostfile.empty()) {
      std::ifstream in(command.hostfile);
      if (!in) throw std::invalid_argument("cannot read --hostfile " + command.hostfile);
      std::stringstream text;
      text << in.rdbuf();
      options.hosts = parse_hostfile(text.str(), command.hostfile);
    }
    plan = plan_node(options);
  } catch (const std::invalid_argument& e) {
    spdlog::error("troupe launch: {}", e.what());
    return 2;
  }

  const auto environment = current_environment();
  std::vector<ChildSpec> children;
  for (std::int64_t local = 0; local < plan.local_world_size; ++local) {
    const std::int64_t rank = plan.first_rank + local;
    children.push_back({"rank " + std::to_string(rank) + " (node " +
                            std::to_string(plan.node_rank) + ", local rank " +
                            std::to_string(local) + ")",
                        train_argv, rank_environment(plan, local, environment)});
  }
  if (!options.hosts.empty() && plan.node_rank == 0) {
    const char* ssh = std::getenv("TROUPE_SSH");
    // Other hosts run this same executable from the same path, in the same working directory.
    const std::vector<std::string> launcher{this_executable(), "launch"};
    for (std::size_t node = 1; node < options.hosts.size(); ++node) {
      auto argv = remote_node_command(ssh ? ssh : "ssh", options, static_cast<std::int64_t>(node),
                                      std::filesystem::current_path().string(), launcher,
                                      command.forwarded, environment);
      children.push_back(
          {"node " + std::to_string(node) + " (host " + options.hosts[node].host + ")", argv,
           environment});
    }
  }
  spdlog::info("troupe launch: node {} of {}, ranks {}..{} of {}, master {}:{}", plan.node_rank,
               options.hosts.empty() ? options.nnodes.value_or(1)
                                     : static_cast<std::int64_t>(options.hosts.size()),
               plan.first_rank, plan.first_rank + plan.local_world_size - 1, plan.world_size,
               plan.master_addr, plan.master_port);
  try {
    const SupervisionResult result = supervise(children);
    if (result.first_failure)
      spdlog::error("troupe launch: failed: {}", result.first_failure->describe());
    return result.exit_code();
  } catch (const std::exception& e) {
    spdlog::error("troupe launch: {}", e.what());
    return 1;
  }
}

}  // namespace troupe
