// The `troupe` command: train a config, launch ranks, plot metrics and traces, summarize traces.
//
//   troupe train CONFIG [--deepspeed_config DS_CONFIG] [--resume DIR] [--trace FILE]
//                       [--metrics FILE] [--steps N] [--plot]
//                       [--overwrite_checkpoints] [--init_from PARAMETERS]
//   troupe launch [--nproc_per_node N] [--nnodes K] [--node_rank R] [--master_addr A]
//                 [--master_port P] [--hostfile FILE] CONFIG [train options]
//   troupe plot METRICS.jsonl… | TRACE.json [-o DIR] [--step N]
//   troupe export CHECKPOINT --format deepspeed -o model.safetensors  (and --format troupe back)
//   troupe trace summarize FILE...   (one file, or one per rank of a run)
//   troupe config-keys --markdown   (docs/CONFIG-KEYS.md: what troupe does with each DeepSpeed key)
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "configs/deepspeed_keys.hpp"
#include "tools/export_command.hpp"
#include "tools/launch_command.hpp"
#include "tools/plot_command.hpp"
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
  train_cmd
      ->add_option("--init_from", train.init_from,
                   "Start from these parameters (a file `troupe export --format troupe` wrote): "
                   "fine-tuning, with fresh optimizer state at step 0")
      ->check(CLI::ExistingFile)
      ->excludes("--resume");
  train_cmd->add_option("--trace", train.trace_file, "Write a Chrome-trace JSON (Perfetto) here");
  train_cmd->add_option("--metrics", train.metrics_file, "Write JSON-lines metrics here");
  train_cmd->add_option("--steps", train.steps, "Optimizer steps (overrides the config)")
      ->check(CLI::PositiveNumber);
  train_cmd->add_flag("--plot", train.plot,
                      "When the run ends, write PNG plots of the metrics (and the trace) next to "
                      "the metrics file");

  troupe::PlotCommand plot;
  auto* plot_cmd = app.add_subcommand(
      "plot", "Draw PNG plots: metrics files (runs overlaid) or a trace's step timeline");
  plot_cmd
      ->add_option("files", plot.inputs, "metrics JSON lines (*.jsonl) or Chrome traces (*.json)")
      ->required()
      ->check(CLI::ExistingFile);
  plot_cmd->add_option("-o,--output", plot.out_dir, "Folder for the PNG files")
      ->capture_default_str();
  plot_cmd
      ->add_option("--step", plot.step, "Traced step to draw (1-based; default: the middle one)")
      ->check(CLI::PositiveNumber);

  troupe::ExportCommand exporter;
  auto* export_cmd = app.add_subcommand(
      "export",
      "Write a checkpoint's parameters under DeepSpeed/PyTorch names (--format deepspeed), or "
      "such a file back as parameters `troupe train --init_from` starts from (--format troupe)");
  export_cmd
      ->add_option("input", exporter.input,
                   "deepspeed: checkpoint directory or file; troupe: a DeepSpeed-named "
                   ".safetensors state dict")
      ->required()
      ->check(CLI::ExistingPath);
  export_cmd->add_option("--format", exporter.format, "deepspeed or troupe")
      ->check(CLI::IsMember({"deepspeed", "troupe"}))
      ->capture_default_str();
  export_cmd->add_option("-o,--output", exporter.output, "File to write (.safetensors)")
      ->required();

  troupe::LaunchCommand launch;
  auto* launch_cmd = app.add_subcommand(
      "launch",
      "Start `troupe train` once per rank of this node (torchrun's options); the "
      "first argument that is not an option is CONFIG, and it and the rest go to train");
  launch_cmd->prefix_command();  // everything from CONFIG on is forwarded unchanged
  auto& lo = launch.options;
  launch_cmd->add_option("--nproc_per_node", lo.nproc_per_node, "Ranks on this node");
  launch_cmd->add_option("--nnodes", lo.nnodes, "Nodes (each runs the launcher)");
  launch_cmd->add_option("--node_rank", lo.node_rank, "This node's index, 0 to nnodes - 1");
  launch_cmd->add_option("--master_addr", lo.master_addr, "Rank 0's host (default 127.0.0.1)");
  launch_cmd->add_option("--master_port", lo.master_port, "Rank 0's rendezvous port (29500)");
  launch_cmd
      ->add_option("--hostfile", launch.hostfile,
                   "DeepSpeed-style hostfile (HOST slots=N); starts the other hosts over ssh "
                   "(TROUPE_SSH)")
      ->check(CLI::ExistingFile);
  launch_cmd->add_option("--world_size", lo.world_size,
                         "Set by the first host's launcher for the others");
  launch_cmd->add_option("--rank_offset", lo.rank_offset,
                         "Set by the first host's launcher for the others");

  std::vector<std::string> trace_paths;
  auto* trace_cmd = app.add_subcommand("trace", "Work with Chrome-trace files troupe wrote");
  trace_cmd->require_subcommand(1);
  auto* summarize = trace_cmd->add_subcommand(
      "summarize",
      "Per-actor busy/idle time, messages, overlap, and the all-to-all hidden under compute; "
      "several files: one per rank, side by side on rank 0's clock");
  summarize->add_option("files", trace_paths, "Trace JSON (one per rank)")
      ->required()
      ->check(CLI::ExistingFile);

  auto* keys_cmd = app.add_subcommand(
      "config-keys", "What troupe does with each DeepSpeed config key (docs/CONFIG-KEYS.md)");
  bool markdown = false;
  keys_cmd->add_flag("--markdown", markdown, "Print the table as Markdown (the only format)")
      ->required();

  CLI11_PARSE(app, argc, argv);
  if (train_cmd->parsed()) return troupe::run_train(train);
  if (launch_cmd->parsed()) {
    launch.forwarded = launch_cmd->remaining();
    return troupe::run_launch(launch);
  }
  if (plot_cmd->parsed()) return troupe::run_plot(plot);
  if (export_cmd->parsed()) return troupe::run_export(exporter);
  if (keys_cmd->parsed()) {
    std::fputs(troupe::render_config_keys_markdown().c_str(), stdout);
    return 0;
  }
  try {
    std::fputs(troupe::format_rank_summaries(troupe::summarize_rank_traces(trace_paths)).c_str(),
               stdout);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
