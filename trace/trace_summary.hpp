// Reads a Chrome trace written by TraceRecorder back and condenses it into the numbers a person
// asks first: how busy each actor was, how much it waited, what it sent and received, and how
// much of the communication was hidden behind computation. Several ranks' traces (one file each)
// are summarized side by side on their common clock, with the share of the expert-parallel
// all-to-all that compute hid, per rank and over all of them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "trace/trace_reader.hpp"

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
  std::optional<TraceRank> rank;     // as the trace states it (absent: single-process)
  std::optional<TraceClock> clock;
  bool timed = false;                // whether any track has a timed event
  double first_us = 0;               // the earliest of them, in the file's time
  double wall_us = 0;                // from the earliest event to the latest end, over all tracks
  double comm_us = 0;                // union of "comm" spans over all tracks
  double comm_overlapped_us = 0;     // the part of comm_us during which a "compute" span runs
  double comm_overlap_fraction = 0;  // comm_overlapped_us / comm_us; 0 when there is no comm
  // Time during which an all-to-all span ("comm", name starting with all_to_all_span_prefix)
  // is open, and the part of it during which a "compute" span is open on another track of the
  // same process (rank): compute the exchange does not wait for. Summed over processes.
  double all_to_all_us = 0;
  double all_to_all_hidden_us = 0;
  double all_to_all_hidden_fraction = 0;  // hidden / all_to_all_us; 0 when there is none
};

// Summarizes a trace read with read_chrome_trace (trace/trace_reader.hpp). Spans are "X" events,
// messages are flow events: "s" counts as sent on its thread, "f" as received, by the flow's name.
TraceSummary summarize_trace(ChromeTrace trace);

// summarize_trace(read_chrome_trace(path)): throws std::runtime_error when the file cannot be
// read and std::invalid_argument, naming the event, when it is not such a trace.
TraceSummary summarize_chrome_trace(const std::string& path);

// A fixed-width table, one row per track, then the totals.
std::string format_summary(const TraceSummary& summary);

// Several ranks' traces of one run, ordered by rank. The recorders applied the clock offsets when
// writing, so the files share rank 0's clock as they are; aligning them is placing each rank's
// first event against the earliest of all.
struct RankTraceSummary {
  std::string path;
  double start_us = 0;  // its first event after the earliest of all ranks (0: it has none)
  TraceSummary summary;
};

struct RunTraceSummary {
  std::vector<RankTraceSummary> ranks;  // by rank; one file without rank metadata is allowed alone
  double wall_us = 0;                   // the earliest event of any rank to the latest end
  double all_to_all_us = 0;             // sums over the ranks
  double all_to_all_hidden_us = 0;
  double all_to_all_hidden_fraction = 0;  // hidden / all_to_all_us; 0 when there is none
};

// Reads and summarizes one trace per rank. With several files, each must be a rank's trace with
// its clock offset applied (otherData rank, world_size, clock_offset_us), ranks distinct and of
// one world size; otherwise std::invalid_argument names the file and what is missing. Read
// errors are read_chrome_trace's.
RunTraceSummary summarize_rank_traces(const std::vector<std::string>& paths);

// Each rank's table under a heading (rank, file, clock offset, start), then the run's totals;
// one trace without a rank is format_summary alone.
std::string format_rank_summaries(const RunTraceSummary& run);

}  // namespace troupe
