// `troupe plot TRACE.json`: a per-actor timeline of one training step from a Chrome trace troupe
// wrote: each actor's busy spans by category over its idle time, the messages between actors, and
// the critical path (the chain of work and messages that ended last) drawn over them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trace/trace_reader.hpp"

namespace troupe {

// Training steps as the trace shows them: each step ends with a round of optimizer spans (a
// cluster of "optimizer" spans with no "compute" span starting inside it). Step 1 begins at the
// trace's first event, step k at the end of step k-1; steps are numbered from 1 within the trace.
// An evaluation run between two steps falls into the window of the later one.
struct StepWindow {
  std::int64_t step = 0;
  double start_us = 0;
  double end_us = 0;
};
std::vector<StepWindow> step_windows(const ChromeTrace& trace);

struct TimelineSpan {  // a span clipped to the step's window
  std::size_t track = 0;
  double start_us = 0;
  double end_us = 0;
  std::string category;
};

struct StepTimeline {
  StepWindow window;
  std::vector<std::string> tracks;     // every track of the trace, in its order
  std::vector<TimelineSpan> spans;     // spans of positive length inside the window
  std::vector<TraceMessage> messages;  // messages sent and received inside the window
  // The critical path, latest first: busy time on the path, and the dependencies it follows from
  // one actor to another. Walking back from the work that ended last, the idle gap before each
  // busy interval is blamed on the last traced message that arrived in it or, when none did
  // (replies are not traced), on the work elsewhere that ended last in it (a message of type
  // "(untraced)").
  std::vector<TimelineSpan> critical;
  std::vector<TraceMessage> critical_messages;
};

// The timeline of step `step` (1-based within the trace); 0 picks the middle step. Throws
// std::invalid_argument naming the steps the trace has when there is no such step.
StepTimeline step_timeline(const ChromeTrace& trace, std::int64_t step);

// Reads `trace_path`, draws step `step` (0: the middle one) as <out_dir>/timeline_step<N>.png and
// returns that path.
std::string plot_trace(const std::string& trace_path, const std::string& out_dir,
                       std::int64_t step);

}  // namespace troupe
