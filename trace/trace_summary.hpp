// Reads a Chrome trace written by TraceRecorder back and condenses it into the numbers a person
// asks first: how busy each actor was, how much it waited, what it sent and received, and how
// much of the communication was hidden behind computation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace troupe {

struct TrackSummary {
  std::string name;  // the thread name ("<process>/<thread>" when the trace has several processes)
  double first_us = 0;  // start of the track's earliest event
  double last_us = 0;   // end of its latest event
  double busy_us = 0;   // union of its spans: time inside nested spans counts once
  double idle_us = 0;   // (last_us - first_us) - busy_us
  // Union of the track's spans of each category; nested spans of different categories both
  // count, so these may add up to more than busy_us.
  std::map<std::string, double> busy_by_category_us;
  std::int64_t messages_sent = 0;
  std::int64_t messages_received = 0;
  std::map<std::string, std::int64_t> sent_by_type;
  std::map<std::string, std::int64_t> received_by_type;
};

struct TraceSummary {
  std::vector<TrackSummary> tracks;  // ordered by (pid, tid), i.e. by first use in the recorder
  double wall_us = 0;                // from the earliest event to the latest end, over all tracks
  double comm_us = 0;                // union of "comm" spans over all tracks
  double comm_overlapped_us = 0;     // the part of comm_us during which a "compute" span runs
  double comm_overlap_fraction = 0;  // comm_overlapped_us / comm_us; 0 when there is no comm
};

// Reads `path` with read_chrome_trace (trace/trace_reader.hpp). Spans are "X"
// events, messages are flow events: "s" counts as sent on its thread, "f" as received, by the
// flow's name. Throws std::runtime_error when the file cannot be read and std::invalid_argument,
// naming the event, when it is not such a trace.
TraceSummary summarize_chrome_trace(const std::string& path);

// A fixed-width table, one row per track, then the totals.
std::string format_summary(const TraceSummary& summary);

}  // namespace troupe
