// `troupe plot METRICS.jsonl…`: reads the JSON-lines metrics `troupe train` writes and draws them
// with gnuplot as PNG files: loss and the evaluation metric against step and wall time (runs
// overlaid), the learning rate, and each run's expert load per MoE layer as a heat map.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/gnuplot.hpp"

namespace troupe {

struct TrainPoint {  // a {"type": "train"} line
  std::int64_t step = 0;
  double elapsed_s = 0;
  double loss = 0;
  double lr = 0;
  std::vector<std::vector<std::int64_t>> exp_counts;  // [layer][expert]; empty for dense models
  std::int64_t dropped = 0;                           // choices dropped for capacity, all layers
};

struct EvalPoint {  // a {"type": "eval"} line
  std::int64_t step = 0;
  double elapsed_s = 0;  // NaN in files written before eval lines carried it
  double loss = 0;
  double metric = 0;  // the run's eval_metric
};

struct MetricsRun {
  std::string label;  // the legend entry: the file's stem, or its folder for ".../metrics.jsonl"
  std::string eval_metric = "accuracy";  // or "bits_per_char" for language models
  std::vector<TrainPoint> train;
  std::vector<EvalPoint> eval;
};

// Throws std::runtime_error when the file cannot be read and std::invalid_argument, naming the
// file, line and key, when a line is not JSON or lacks a field a plot needs.
MetricsRun read_metrics(const std::string& path);

// The series handed to gnuplot, one row per point. x is the step, or wall time in seconds.
enum class PlotAxis { step, wall_time };
GnuplotRows train_loss_series(const MetricsRun& run, PlotAxis x);  // {x, loss}
GnuplotRows eval_series(const MetricsRun& run, PlotAxis x);  // {x, metric}; no NaN-timed points
GnuplotRows learning_rate_series(const MetricsRun& run);     // {step, lr}
GnuplotRows dropped_series(const MetricsRun& run);           // {step, dropped}

// Tokens per expert of MoE layer `layer` as a gnuplot matrix: one row per expert, one column per
// group of consecutive training steps (at most max_columns groups; a column is the mean over its
// group, so a single-step group is that step's exp_counts). first_step / step_width place the
// columns on the step axis. Throws std::invalid_argument when a line has no such layer.
struct ExpertLoad {
  GnuplotRows tokens;  // [expert][column]
  double first_step = 0;
  double step_width = 1;
};
ExpertLoad expert_load(const MetricsRun& run, std::size_t layer, std::size_t max_columns);

// Reads every file and writes loss.png, eval.png, lr.png and expert_load_<label>.png (MoE runs)
// under out_dir (created). Returns the files written.
std::vector<std::string> plot_metrics(const std::vector<std::string>& paths,
                                      const std::string& out_dir);

}  // namespace troupe
