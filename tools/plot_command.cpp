// Sorts `troupe plot` inputs into metrics and traces and hands them to their plotters.
#include "tools/plot_command.hpp"

#include <spdlog/spdlog.h>

#include <exception>
#include <filesystem>

#include "tools/plot_metrics.hpp"
#include "tools/plot_trace.hpp"

namespace troupe {

std::vector<std::string> write_plots(const PlotCommand& command) {
  std::vector<std::string> metrics, traces;
  for (const auto& input : command.inputs)
    (std::filesystem::path(input).extension() == ".json" ? traces : metrics).push_back(input);
  std::vector<std::string> written;
  if (!metrics.empty()) written = plot_metrics(metrics, command.out_dir);
  for (const auto& trace : traces)
    written.push_back(plot_trace(trace, command.out_dir, command.step));
  return written;
}

int run_plot(const PlotCommand& command) {
  try {
    for (const auto& path : write_plots(command)) spdlog::info("plot: {}", path);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

}  // namespace troupe
