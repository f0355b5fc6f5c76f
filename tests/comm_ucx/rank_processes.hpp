// Test harness: runs a body as W real rank processes (fork), each with its own UCX context,
// meeting through a rendezvous store on a port-0 server.
//
// The store runs in a process of its own, forked first, so the parent stays single-threaded and
// every rank is forked from a process without threads: forking while another thread (the store's
// Asio thread) holds a lock — the allocator's, the dynamic loader's — can leave a child
// deadlocked before it ever reaches the store (seen as a rank hanging at start-up).
//
// A child reports failure by throwing (RankFailure or anything else): it prints the message with
// its rank and exits 1. It never runs Catch assertions (the parent's Catch state is not its own)
// and leaves with _exit, so no inherited destructor or atexit handler runs twice. The parent waits
// for every child under a watchdog: past the deadline it kills the ones left and fails the test,
// so a hung collective can never hang CI.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "comm/rendezvous.hpp"

namespace troupe::test {

struct RankFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void expect(bool ok, const std::string& what) {
  if (!ok) throw RankFailure(what);
}

// How each child ended: its exit code, or the signal that killed it.
struct RankExit {
  bool exited = false;
  int code = -1;
  int signal = 0;
};

// The rendezvous store in a child process (see the file comment); killed when this goes away.
class StoreProcess {
 public:
  StoreProcess() {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    std::fflush(nullptr);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      close(fds[0]);
      try {
        RendezvousServer server("127.0.0.1", 0);
        const std::uint16_t port = server.port();
        if (write(fds[1], &port, sizeof port) != sizeof port) _exit(1);
        close(fds[1]);
        for (;;) pause();  // serves on its own thread until the parent kills it
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rendezvous store process failed: %s\n", e.what());
      }
      _exit(1);
    }
    close(fds[1]);
    const bool got_port = read(fds[0], &port_, sizeof port_) == sizeof port_;
    close(fds[0]);
    REQUIRE(got_port);
  }
  ~StoreProcess() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  StoreProcess(const StoreProcess&) = delete;
  StoreProcess& operator=(const StoreProcess&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// Forks `world` children running body(rank, store); returns how each ended. Children still running
// at `deadline` are killed with SIGKILL and the test fails.
inline std::vector<RankExit> run_ranks(int world,
                                       const std::function<void(int, RendezvousClient&)>& body,
                                       std::chrono::seconds deadline = std::chrono::seconds(30)) {
  const StoreProcess store_process;
  const std::uint16_t port = store_process.port();
  std::fflush(nullptr);  // or buffered output would be written by the children too
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 0;
      try {
        RendezvousClient store("127.0.0.1", port, std::chrono::seconds(10));
        body(rank, store);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d of %d failed: %s\n", rank, world, e.what());
        code = 1;
      }
      std::fflush(nullptr);
      _exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<RankExit> exits(world);
  int running = world;
  const auto stop_at = std::chrono::steady_clock::now() + deadline;
  while (running > 0 && std::chrono::steady_clock::now() < stop_at) {
    for (int rank = 0; rank < world; ++rank) {
      if (pids[rank] == 0) continue;
      int status = 0;
      if (waitpid(pids[rank], &status, WNOHANG) == pids[rank]) {
        exits[rank] = {WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                       WIFSIGNALED(status) ? WTERMSIG(status) : 0};
        pids[rank] = 0;
        --running;
      }
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a watchdog poll
  }
  for (int rank = 0; rank < world; ++rank) {
    if (pids[rank] == 0) continue;
    kill(pids[rank], SIGKILL);
    waitpid(pids[rank], nullptr, 0);
    FAIL_CHECK("rank " << rank << " of " << world << " still ran after " << deadline.count()
                       << " s: killed (a hang)");
  }
  return exits;
}

// Runs the ranks and requires every one to exit 0.
inline void run_ranks_ok(int world, const std::function<void(int, RendezvousClient&)>& body) {
  const auto exits = run_ranks(world, body);
  for (int rank = 0; rank < world; ++rank) {
    INFO("rank " << rank << " of " << world << " (its message is on stderr)");
    CHECK(exits[rank].exited);
    CHECK(exits[rank].code == 0);
  }
}

}  // namespace troupe::test
