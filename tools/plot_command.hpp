// `troupe plot FILE… -o DIR`: metrics files (JSON lines) are drawn together (runs overlaid), each
// trace (a .json Chrome trace) as the timeline of one step. Also what `troupe train --plot` runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct PlotCommand {
  std::vector<std::string> inputs;  // *.json: Chrome traces; anything else: metrics JSON lines
  std::string out_dir = "plots";
  std::int64_t step = 0;  // the traced step to draw (1-based within the trace); 0: the middle one
};

// Writes the plots and returns the PNG files written; throws what the readers and gnuplot throw.
std::vector<std::string> write_plots(const PlotCommand& command);

// Returns the process exit code: 0 when every plot was written, 1 otherwise (the error is logged).
int run_plot(const PlotCommand& command);

}  // namespace troupe
