// The `troupe` command: train a config, summarize a trace.
//
//   troupe train CONFIG [--deepspeed_config DS_CONFIG] [--resume DIR] [--trace FILE]
//                       [--metrics FILE] [--steps N] [--overwrite_checkpoints]
//   troupe trace summarize FILE
//   troupe config-keys --markdown   (docs/CONFIG-KEYS.md: what troupe does with each DeepSpeed key)
#include <cstdio>
#include <exception>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "configs/deepspeed_keys.hpp"
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
  train_cmd
      ->add_option("--deepspeed_config", train.deepspeed_config_path,
                   "DeepSpeed config (JSON) holding the DeepSpeed sections; CONFIG then holds "
                   "model, data and runtime")
      ->check(CLI::ExistingFile);
  train_cmd->add_option("--resume", train.resume,
                        "Checkpoint directory (or file) to continue from");
  train_cmd->add_flag("--overwrite_checkpoints", train.overwrite_checkpoints,
                      "Delete another run's checkpoints in runtime.checkpoint.dir first (a new "
                      "run refuses a directory holding them)");
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

  auto* keys_cmd = app.add_subcommand(
      "config-keys", "What troupe does with each DeepSpeed config key (docs/CONFIG-KEYS.md)");
  bool markdown = false;
  keys_cmd->add_flag("--markdown", markdown, "Print the table as Markdown (the only format)")
      ->required();

  CLI11_PARSE(app, argc, argv);
  if (train_cmd->parsed()) return troupe::run_train(train);
  if (keys_cmd->parsed()) {
    std::fputs(troupe::render_config_keys_markdown().c_str(), stdout);
    return 0;
  }
  try {
    std::fputs(troupe::format_summary(troupe::summarize_chrome_trace(trace_path)).c_str(), stdout);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
