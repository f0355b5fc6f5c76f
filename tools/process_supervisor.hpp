// Starts a set of processes and watches them as one job: the launcher's failure rule. When any
// process exits non-zero or dies from a signal, the others are stopped (SIGTERM to each one's
// process group, SIGKILL after a grace period), so a dead rank never leaves the rest hanging in a
// collective. SIGINT and SIGTERM sent to the launcher are passed on the same way.
//
// Each child runs in a process group of its own (so stopping it also stops what it started, such
// as an ssh session or a shell) and gets SIGKILL if the launcher itself dies (PR_SET_PDEATHSIG).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct ChildSpec {
  std::string name;                                // for messages: "rank 3", "node 1 (host b)"
  std::vector<std::string> argv;                   // argv[0] is the program (looked up in PATH)
  std::map<std::string, std::string> environment;  // the child's whole environment
};

struct ChildExit {
  std::string name;
  int exit_code = 0;             // when it exited
  int signal = 0;                // when a signal killed it (then exit_code is 0)
  std::string describe() const;  // "rank 3 exited with code 1" / "rank 3 was killed by signal 9"
};

struct SupervisionResult {
  std::optional<ChildExit> first_failure;  // empty: every child exited with code 0
  int interrupted_by = 0;  // SIGINT / SIGTERM the launcher got, after which it stopped the children
  // The launcher's exit code: 0, the failed child's code, 128 + its signal, or 128 + the signal
  // that interrupted the launcher.
  int exit_code() const;
};

// Runs every child to completion under the rule above. `grace` is how long stopped children get
// between SIGTERM and SIGKILL. Throws std::runtime_error when a child cannot be started (after
// stopping the ones already running).
SupervisionResult supervise(const std::vector<ChildSpec>& children,
                            std::chrono::milliseconds grace = std::chrono::seconds(10));

}  // namespace troupe
