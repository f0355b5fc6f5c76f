// Killed at any moment, a run stays resumable: spawns the real `troupe` binary on a tiny
// Fashion-MNIST-shaped data set with a checkpoint after every step, kills it (SIGKILL) at random
// moments and at every named crash point inside checkpoint saving and pruning
// (TROUPE_TEST_CRASH_AT, memory/crash_point.hpp), resumes with --resume, and requires the steps
// after the checkpoint it resumed from to be bit-identical to an uninterrupted run: every
// per-step loss in metrics.jsonl, and every tensor of the final checkpoint.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "memory/safetensors.hpp"
#include "models/checkpoint_dir.hpp"
#include "test_util/temp_dir.hpp"
#include "test_util/training_run.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace troupe;

namespace {

constexpr std::int64_t kSteps = 8;

// Starts `troupe train CONFIG --metrics METRICS [extra...]` with output to LOG and, when
// `crash_at` is set, TROUPE_TEST_CRASH_AT in its environment.
pid_t spawn_troupe(const fs::path& config, const fs::path& metrics, const fs::path& log,
                   const std::vector<std::string>& extra, const std::string& crash_at = "") {
  std::vector<std::string> args{TROUPE_BINARY, "train", config.string(), "--metrics",
                                metrics.string()};
  args.insert(args.end(), extra.begin(), extra.end());
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

// Waits for `pid`; returns its wait status.
int wait_for(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

bool exited_ok(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Reference {
  std::map<std::int64_t, std::string> losses;
  SafetensorsFile final;
  double seconds = 0.0;
};

struct Fixture {
  test::TempDir scratch{"crash_resume"};
  Reference reference;
  int trial = 0;

  // A run of kSteps steps with gradient clipping, checkpointing into DIR/checkpoints.
  fs::path trial_config(const fs::path& dir) const {
    return test::write_small_config(dir, "config", scratch.path / "data", dir / "checkpoints",
                                    test::SmallRun{kSteps, 2, false, 1.0});
  }

  Fixture() {
    test::write_tiny_fashion_mnist(scratch.path / "data");
    const fs::path config = trial_config(scratch.path / "reference");
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid =
        spawn_troupe(config, scratch.path / "reference.jsonl", scratch.path / "reference.log", {});
    const int status = wait_for(pid);
    INFO("reference run log:\n" << read_text(scratch.path / "reference.log"));
    REQUIRE(exited_ok(status));
    reference.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    reference.losses = test::train_losses(scratch.path / "reference.jsonl");
    REQUIRE(reference.losses.size() == static_cast<std::size_t>(kSteps));
    reference.final = test::latest_checkpoint(scratch.path / "reference" / "checkpoints");
  }

  // Runs one interrupted run: `start` begins it in a fresh directory and kills it; then it is
  // resumed (or, killed before its first checkpoint, started again) and compared with the
  // reference. Returns the step it resumed from.
  template <class Start>
  std::int64_t interrupted_run(const std::string& what, Start start) {
    INFO("trial " << trial << ": " << what);
    const fs::path dir = scratch.path / ("trial" + std::to_string(trial++));
    const fs::path config_path = trial_config(dir);
    const fs::path checkpoints = dir / "checkpoints";
    start(config_path, dir / "killed.jsonl", dir / "log");
    // Whatever the killed run logged before it died matches the reference.
    for (const auto& [step, loss] : test::train_losses(dir / "killed.jsonl"))
      CHECK(reference.losses.at(step) == loss);

    const bool resumable =
        fs::exists(checkpoints / "latest") || !list_checkpoint_files(checkpoints.string()).empty();
    const std::vector<std::string> extra =
        resumable ? std::vector<std::string>{"--resume", checkpoints.string()}
                  : std::vector<std::string>{};
    const pid_t pid = spawn_troupe(config_path, dir / "resumed.jsonl", dir / "log", extra);
    const int status = wait_for(pid);
    INFO("log:\n" << read_text(dir / "log"));
    REQUIRE(exited_ok(status));

    const auto resumed = test::train_losses(dir / "resumed.jsonl");
    const std::int64_t from = resumed.empty() ? kSteps : resumed.begin()->first - 1;
    CHECK(static_cast<std::int64_t>(resumed.size()) == kSteps - from);
    for (const auto& [step, loss] : resumed) CHECK(reference.losses.at(step) == loss);

    test::check_same_tensors(reference.final, test::latest_checkpoint(checkpoints));
    for (const auto& entry : fs::directory_iterator(checkpoints))
      CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
    return from;
  }
};

}  // namespace

TEST_CASE("a run killed at random moments or at each crash point resumes bit-identically") {
  Fixture f;
  std::uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("TROUPE_CRASH_TEST_SEED")) seed = std::stoull(s);
  std::printf(
      "crash_resume_test: seed %llu (TROUPE_CRASH_TEST_SEED=%llu repeats it); "
      "reference run %.2f s\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed),
      f.reference.seconds);
  INFO("seed " << seed);

  // A named crash point reached the n-th time, and the step the run must resume from.
  struct Point {
    const char* spec;
    std::int64_t resume_from;
  };
  for (const Point& point :
       {Point{"after_temp_write@3", 2}, Point{"after_rename@3", 2}, Point{"before_latest@3", 2},
        Point{"after_latest@3", 3}, Point{"mid_prune@2", 4}}) {
    const std::int64_t from = f.interrupted_run(
        point.spec, [&](const fs::path& config, const fs::path& metrics, const fs::path& log) {
          const int status = wait_for(spawn_troupe(config, metrics, log, {}, point.spec));
          REQUIRE(WIFSIGNALED(status));
          CHECK(WTERMSIG(status) == SIGKILL);
        });
    CHECK(from == point.resume_from);
  }

  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> delay(0.0, f.reference.seconds);
  for (int i = 0; i < 10; ++i) {
    const double seconds = delay(rng);
    f.interrupted_run("SIGKILL after " + std::to_string(seconds) + " s",
                      [&](const fs::path& config, const fs::path& metrics, const fs::path& log) {
                        const pid_t pid = spawn_troupe(config, metrics, log, {});
                        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
                        ::kill(pid, SIGKILL);
                        wait_for(pid);
                      });
  }
}
