// The launcher's process supervision (see process_supervisor.hpp).
#include "tools/process_supervisor.hpp"

#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

namespace troupe {
namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void remember_stop_signal(int signal) {
  g_stop_signal.store(signal);
}

struct Running {
  pid_t pid = -1;
  bool exited = false;
};

pid_t start(const ChildSpec& spec) {
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : spec.environment) env_strings.push_back(name + "=" + value);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0)
    throw std::runtime_error("cannot start " + spec.name + ": fork: " + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the launcher died before prctl took effect
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execvpe(argv[0], argv.data(), envp.data());
    const char message[] = "troupe launch: cannot execute the rank's program\n";
    [[maybe_unused]] auto ignored = write(STDERR_FILENO, message, sizeof message - 1);
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before we might signal it
  return pid;
}

void signal_all(const std::vector<Running>& running, int signal) {
  for (const auto& r : running)
    if (!r.exited && r.pid > 0) kill(-r.pid, signal);
}

}  // namespace

std::string ChildExit::describe() const {
  if (signal != 0)
    return name + " was killed by signal " + std::to_string(signal) + " (" + strsignal(signal) +
           ")";
  return name + " exited with code " + std::to_string(exit_code);
}

int SupervisionResult::exit_code() const {
  if (first_failure) {
    if (first_failure->signal != 0) return 128 + first_failure->signal;
    return first_failure->exit_code;
  }
  return interrupted_by != 0 ? 128 + interrupted_by : 0;
}

SupervisionResult supervise(const std::vector<ChildSpec>& children,
                            std::chrono::milliseconds grace) {
  g_stop_signal.store(0);
  struct sigaction action {};
  action.sa_handler = remember_stop_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  std::vector<Running> running(children.size());
  SupervisionResult result;
  try {
    for (std::size_t i = 0; i < children.size(); ++i) running[i].pid = start(children[i]);
  } catch (...) {
    signal_all(running, SIGKILL);
    for (auto& r : running)
      if (r.pid > 0) waitpid(r.pid, nullptr, 0);
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    throw;
  }

  std::size_t alive = children.size();
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  while (alive > 0) {
    // Every rank that has ended since the last look. When one death makes the others fail at
    // once, several end within one look: the rank killed by a signal is the cause, not the ranks
    // whose collectives failed because of it.
    std::vector<ChildExit> ended;
    for (int status = 0;;) {
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (std::size_t i = 0; i < running.size(); ++i) {
        if (running[i].pid != pid) continue;
        running[i].exited = true;
        --alive;
        ChildExit exit{children[i].name, 0, 0};
        if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
        ended.push_back(exit);
      }
    }
    const ChildExit* cause = nullptr;
    for (const auto& exit : ended) {
      if (exit.exit_code == 0 && exit.signal == 0) continue;
      if (!cause || (cause->signal == 0 && exit.signal != 0)) cause = &exit;
    }
    if (cause && !result.first_failure && !kill_at) {
      spdlog::error("troupe launch: {}; stopping the others", cause->describe());
      result.first_failure = *cause;
      signal_all(running, SIGTERM);
      kill_at = std::chrono::steady_clock::now() + grace;
    }
    if (!ended.empty()) continue;
    if (const int stop = g_stop_signal.exchange(0); stop != 0 && !kill_at) {
      spdlog::warn("troupe launch: got signal {}; stopping every rank", stop);
      result.interrupted_by = stop;
      signal_all(running, SIGTERM);
      kill_at = std::chrono::steady_clock::now() + grace;
    }
    if (kill_at && std::chrono::steady_clock::now() >= *kill_at) {
      signal_all(running, SIGKILL);
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace troupe
