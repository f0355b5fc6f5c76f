// Running the real `troupe` binary from a test (TROUPE_BINARY, defined for the test): spawning
// `troupe train` (or any other command), waiting for it, and reading what it logged.
#pragma once

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern char** environ;

namespace troupe::test {

// Starts `troupe ARGS...` with its output (stdout and stderr) to LOG and, when `crash_at` is set,
// TROUPE_TEST_CRASH_AT in its environment.
inline pid_t spawn_troupe_command(const std::vector<std::string>& troupe_args,
                                  const std::filesystem::path& log,
                                  const std::string& crash_at = "") {
  std::vector<std::string> args{TROUPE_BINARY};
  args.insert(args.end(), troupe_args.begin(), troupe_args.end());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "TROUPE_TEST_CRASH_AT=", 21) != 0) env.emplace_back(*e);
  env.emplace_back("OPENBLAS_NUM_THREADS=1");
  if (!crash_at.empty()) env.push_back("TROUPE_TEST_CRASH_AT=" + crash_at);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

// Starts `troupe train CONFIG --metrics METRICS [extra...]` (see spawn_troupe_command).
inline pid_t spawn_troupe(const std::filesystem::path& config, const std::filesystem::path& metrics,
                          const std::filesystem::path& log, const std::vector<std::string>& extra,
                          const std::string& crash_at = "") {
  std::vector<std::string> args{"train", config.string(), "--metrics", metrics.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return spawn_troupe_command(args, log, crash_at);
}

// Waits for `pid`; returns its wait status.
inline int wait_for(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

inline bool exited_ok(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace troupe::test
