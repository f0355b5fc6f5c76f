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
#include "test_util/troupe_process.hpp"

namespace fs = std::filesystem;
using namespace troupe;
using troupe::test::exited_ok;
using troupe::test::read_text;
using troupe::test::spawn_troupe;
using troupe::test::wait_for;

namespace {

constexpr std::int64_t kSteps = 8;

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
