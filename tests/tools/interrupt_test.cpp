// A saved model by default: `troupe train` writes a checkpoint when the run ends and names it on
// its last line; SIGINT or SIGTERM stops the run at a step boundary, saves, and exits with 128 +
// the signal, and the saved checkpoint resumes. Spawns the real `troupe` binary on the tiny
// Fashion-MNIST-shaped data set with no periodic checkpoints (runtime.checkpoint.interval 0).
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/checkpoint_dir.hpp"
#include "test_util/temp_dir.hpp"
#include "test_util/training_run.hpp"
#include "test_util/troupe_process.hpp"

namespace fs = std::filesystem;
using namespace troupe;

namespace {

// The small config with `steps` steps and only the final checkpoint, into DIR/checkpoints.
fs::path final_only_config(const fs::path& dir, const fs::path& data, std::int64_t steps) {
  const fs::path path = test::write_small_config(dir, "config", data, dir / "checkpoints",
                                                 test::SmallRun{steps, 2, false, 0.0});
  std::ifstream in(path);
  nlohmann::json config = nlohmann::json::parse(in);
  in.close();
  config["runtime"]["checkpoint"] = {{"dir", (dir / "checkpoints").string()}};
  std::ofstream(path) << config.dump(2);
  return path;
}

std::string last_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

}  // namespace

TEST_CASE("a completed run saves its final checkpoint and names it on the last line") {
  test::TempDir scratch{"final_checkpoint"};
  test::write_tiny_fashion_mnist(scratch.path / "data");
  const fs::path config = final_only_config(scratch.path / "run", scratch.path / "data", 3);
  const int status = test::wait_for(
      test::spawn_troupe(config, scratch.path / "metrics.jsonl", scratch.path / "log", {}));
  const std::string log = test::read_text(scratch.path / "log");
  INFO("log:\n" << log);
  REQUIRE(test::exited_ok(status));
  const auto files = list_checkpoint_files((scratch.path / "run" / "checkpoints").string());
  REQUIRE(files.size() == 1);
  CHECK(files[0].step == 3);
  CHECK(last_line(log) == "checkpoint: " + files[0].path);
}

TEST_CASE("SIGINT or SIGTERM stops a run at a step boundary with a checkpoint that resumes") {
  test::TempDir scratch{"interrupt"};
  test::write_tiny_fashion_mnist(scratch.path / "data");
  for (const int signal : {SIGINT, SIGTERM}) {
    INFO("signal " << signal);
    const fs::path dir = scratch.path / ("signal" + std::to_string(signal));
    const fs::path config = final_only_config(dir, scratch.path / "data", 1000000);
    const fs::path metrics = dir / "metrics.jsonl";
    const pid_t pid = test::spawn_troupe(config, metrics, dir / "log", {});
    // Mid-run: once two steps are logged.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (test::train_losses(metrics).size() < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(::kill(pid, signal) == 0);
    const int status = test::wait_for(pid);
    const std::string log = test::read_text(dir / "log");
    INFO("log:\n" << log);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + signal);

    // The checkpoint is of the last step the run logged, and the last line names it.
    const auto losses = test::train_losses(metrics);
    REQUIRE(losses.size() >= 2);
    const std::int64_t last_step = losses.rbegin()->first;
    const auto files = list_checkpoint_files((dir / "checkpoints").string());
    REQUIRE(files.size() == 1);
    CHECK(files[0].step == last_step);
    CHECK(last_line(log) == "checkpoint: " + files[0].path);

    // It resumes: one more step from there.
    const int resumed = test::wait_for(test::spawn_troupe(
        config, dir / "resumed.jsonl", dir / "resumed.log",
        {"--resume", (dir / "checkpoints").string(), "--steps", std::to_string(last_step + 1)}));
    INFO("resumed log:\n" << test::read_text(dir / "resumed.log"));
    REQUIRE(test::exited_ok(resumed));
    const auto resumed_losses = test::train_losses(dir / "resumed.jsonl");
    REQUIRE(resumed_losses.size() == 1);
    CHECK(resumed_losses.begin()->first == last_step + 1);
  }
}
