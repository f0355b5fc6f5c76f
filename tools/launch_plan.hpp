// What `troupe launch` starts where: the pure part of the launcher, unit-tested without processes.
//
// As with torchrun, every node runs the launcher; the launcher on node n starts that node's ranks,
// numbered n·nproc_per_node + local rank, and gives each the torchrun environment (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). With a DeepSpeed-style
// hostfile ("host slots=N" per line) the launcher on the first host also starts the launchers of
// the other hosts, through ssh (or the command in TROUPE_SSH), with --node_rank set; ranks are
// numbered host by host, so a host's ranks are contiguous even when slot counts differ.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct HostSlots {
  std::string host;
  std::int64_t slots = 1;
};

// Parses a hostfile: one "HOST slots=N" per line; '#' starts a comment; blank lines are skipped.
// Throws std::invalid_argument naming the file, the line and what is wrong.
std::vector<HostSlots> parse_hostfile(const std::string& text, const std::string& path);

// The launcher's options, as torchrun names them; unset ones take their defaults (1 process, 1
// node, master 127.0.0.1:29500) or, with a hostfile, come from it.
struct LaunchOptions {
  std::optional<std::int64_t> nproc_per_node;
  std::optional<std::int64_t> nnodes;
  std::int64_t node_rank = 0;
  std::optional<std::string> master_addr;
  std::int64_t master_port = 29500;
  std::vector<HostSlots> hosts;  // from --hostfile; empty without one
  // Set by the first host's launcher when it starts another host's (slot counts may differ
  // between hosts, so node_rank · nproc_per_node is not that host's first rank).
  std::optional<std::int64_t> world_size;
  std::optional<std::int64_t> rank_offset;
};

// The ranks one node starts.
struct NodePlan {
  std::int64_t node_rank = 0;
  std::int64_t first_rank = 0;  // global rank of local rank 0
  std::int64_t local_world_size = 1;
  std::int64_t world_size = 1;
  std::string master_addr;
  std::int64_t master_port = 0;
};

// This node's plan. With hosts, nnodes and each node's slot count come from the hostfile (and
// --nnodes / --nproc_per_node must not contradict it); MASTER_ADDR is the first host unless given.
// Throws std::invalid_argument naming the option and the allowed values.
NodePlan plan_node(const LaunchOptions& options);

// The environment of one rank: `base` (the launcher's own environment) with the torchrun variables
// set for `local_rank` of `node`.
std::map<std::string, std::string> rank_environment(const NodePlan& node, std::int64_t local_rank,
                                                    std::map<std::string, std::string> base);

// The command that starts node `node_rank`'s launcher on its host: `ssh_command` (TROUPE_SSH, or
// "ssh"), the host, then one shell command line that changes to `working_dir`, exports the
// variables a run needs remotely (NCCL_*, UCX_*, TROUPE_*, OMP_/OPENBLAS_ thread settings from
// `environment`), and runs `launcher` (a program and its leading arguments) with the node's
// options and `forwarded` (CONFIG and the train options). Arguments are shell-quoted.
std::vector<std::string> remote_node_command(const std::string& ssh_command,
                                             const LaunchOptions& options, std::int64_t node_rank,
                                             const std::string& working_dir,
                                             const std::vector<std::string>& launcher,
                                             const std::vector<std::string>& forwarded,
                                             const std::map<std::string, std::string>& environment);

// POSIX shell quoting: 'it'"'"'s' style, so any argument survives one shell.
std::string shell_quote(const std::string& word);

}  // namespace troupe
