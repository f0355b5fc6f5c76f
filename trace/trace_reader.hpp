// Reads a Chrome trace (the JSON TraceRecorder writes, or any trace of "X" spans and "s"/"f" flow
// events) back into tracks of spans and messages, for the summary and the timeline plot, with the
// rank and clock offset a rank's recorder notes in "otherData" (trace/trace_recorder.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct TraceSpan {
  double start_us = 0;
  double end_us = 0;
  std::string name;
  std::string category;  // "cat"; empty when absent
};

// One end of a message: an "s" (sent) or "f" (received) flow event.
struct TraceFlow {
  double ts_us = 0;
  std::string type;      // the flow's name: the message type
  std::int64_t id = -1;  // binds the "s" to its "f"; -1 when the event has none
};

struct TraceTrack {
  std::string name;  // the thread name ("<process>/<thread>" when the trace has several processes)
  std::int64_t pid = 0;          // the process (a rank's recorder writes rank + 1); 0 when absent
  double first_us = 0;           // start of the track's earliest timed event (0 when it has none)
  double last_us = 0;            // end of its latest
  bool timed = false;            // whether it has any timed event (metadata alone leaves it false)
  std::vector<TraceSpan> spans;  // "X" events in file order, zero-length ones included
  std::vector<TraceFlow> sent;
  std::vector<TraceFlow> received;
};

// A message whose send and receive were both found (flow ids match), between track indices.
struct TraceMessage {
  std::size_t from = 0;
  std::size_t to = 0;
  std::string type;
  double send_us = 0;
  double receive_us = 0;
};

// Which rank of a multi-process run wrote the trace ("otherData" rank, world_size).
struct TraceRank {
  int rank = 0;
  int world_size = 1;
};

// The clock offset the recorder applied ("otherData" clock_offset_us, clock_rtt_us): the trace's
// times are rank 0's steady clock, and this rank's share of that is within ±rtt_us / 2.
struct TraceClock {
  double offset_us = 0;
  double rtt_us = 0;
};

struct ChromeTrace {
  std::vector<TraceTrack> tracks;      // ordered by (pid, tid), i.e. by first use in the recorder
  std::vector<TraceMessage> messages;  // ordered by send time
  std::optional<TraceRank> rank;       // absent: a single-process trace
  std::optional<TraceClock> clock;     // absent: times since the recorder started
};

// Reads `path` (JSON object format with "traceEvents", or a bare event array). Throws
// std::runtime_error when the file cannot be read and std::invalid_argument, naming the event
// or the "otherData" key, when it is not such a trace.
ChromeTrace read_chrome_trace(const std::string& path);

}  // namespace troupe
