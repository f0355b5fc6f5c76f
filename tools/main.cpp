// The `troupe` command: train a config, summarize a trace.
//
//   troupe train CONFIG [--resume DIR] [--trace FILE] [--metrics FILE] [--steps N]
//   troupe trace summarize FILE
#include <cstdio>
#include <exception>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "tools/train_command.hpp"
#include "trace/trace_summary.hpp"

int main(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  CLI::App app{"troupe: Mixture-of-Experts training as an actor system"};
  app.require_subcommand(1);

  troupe::TrainCommand train;
  auto* train_cmd = app.add_subcommand("train", "Train the model a run config describes");
  train_cmd->add_option("config", train.config_path, "Run config (JSON)")
      ->required()
      ->check(CLI::ExistingFile);
  train_cmd->add_option("--resume", train.resume,
                        "Checkpoint directory (or file) to continue from");
  train_cmd->add_option("--trace", train.trace_file, "Write a Chrome-trace JSON (Perfetto) here");
  train_cmd->add_option("--metrics", train.metrics_file, "Write JSON-lines metrics here");
  train_cmd->add_option("--steps", train.steps, "Optimizer steps (overrides the config)")
      ->check(CLI::PositiveNumber);

  std::string trace_path;
  auto* trace_cmd = app.add_subcommand("trace", "Work with Chrome-trace files troupe wrote");
  trace_cmd->require_subcommand(1);
  auto* summarize =
      trace_cmd->add_subcommand("summarize", "Per-actor busy/idle time, messages, overlap");
  summarize->add_option("file", trace_path, "Trace JSON")->required()->check(CLI::ExistingFile);

  CLI11_PARSE(app, argc, argv);
  if (train_cmd->parsed()) return troupe::run_train(train);
  try {
    std::fputs(troupe::format_summary(troupe::summarize_chrome_trace(trace_path)).c_str(), stdout);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
