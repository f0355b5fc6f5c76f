// Records what troupe's actors do, as spans of work and the messages between them, and writes it
// as a Chrome trace (JSON object format) that Perfetto and chrome://tracing open.
//
// Each actor is a track, named by the actor ("gate.l0", "expert_shard.l0.s1", "trainer"), shown
// as one thread of one process. A span is work on a track (a kernel, a transfer, an optimizer
// step) and must nest properly with the other spans of its track, as an actor does one thing at a
// time. A message is drawn as a zero-length slice on the sender at the send time and one on the
// receiver at the receive time, joined by a flow arrow.
//
// The recorder is meant to stay in production builds: when disabled, begin_span and message cost
// one relaxed atomic load. Times are microseconds of a steady clock since the recorder was made.
//
// Several ranks: each rank records its own file. After set_rank(R, W) its tracks are the rank's
// own process (pid R + 1, named "<process name> rank R", sorted by R), so several files loaded
// together in Perfetto show one group per rank. Not pid R: Perfetto treats pid 0 as the kernel's
// idle task and asks synthesized traces to start at 1 (google/perfetto#394). After
// set_clock_offset() the clock offset is applied when writing: timestamps are then rank 0's steady
// clock in microseconds (this process's steady clock plus the offset the rendezvous measured,
// comm/rendezvous.hpp), so the ranks' files line up as they are, in Perfetto and in `troupe trace
// summarize`. Rank 0 sets its offset too (its own measurement, about 0) so that its file is on the
// same time base. The file's top-level "otherData" records what was applied (the reader returns it,
// trace/trace_reader.hpp):
//   "rank", "world_size"              after set_rank
//   "clock_offset_us", "clock_rtt_us" after set_clock_offset (the offset is within ±rtt/2)
// Without either the output is the single-process trace: pid 1, times since the recorder started
// (so rank 0's pid is the single process's).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe {

using SpanId = std::uint64_t;
inline constexpr SpanId no_span = 0;  // what begin_span returns while recording is off

// The span categories the runtime uses, so summaries can group by them.
namespace trace_category {
inline constexpr std::string_view compute = "compute";      // kernels
inline constexpr std::string_view comm = "comm";            // transfers, all-to-all, reductions
inline constexpr std::string_view message = "message";      // actor messages (set by message())
inline constexpr std::string_view optimizer = "optimizer";  // parameter updates
inline constexpr std::string_view data = "data";            // batch loading
}  // namespace trace_category

// Comm spans whose name starts with this are the expert-parallel token exchange (on track
// "comm.ep": "all_to_all_dispatch", "all_to_all_combine", from issue to completion); the trace
// summary reports how much of their time compute on the rank's other tracks hides.
inline constexpr std::string_view all_to_all_span_prefix = "all_to_all";

class TraceRecorder {
 public:
  explicit TraceRecorder(std::string process_name = "troupe", bool enabled = true);
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  // Spans already open still end normally after recording is switched off.
  void set_enabled(bool enabled) { enabled_.store(enabled, std::memory_order_relaxed); }

  // Microseconds since construction, sub-microsecond resolution (short CPU kernels matter).
  double now_us() const;

  // This recorder traces rank `rank` of `world_size` (see the top of this file). Throws
  // std::invalid_argument unless 0 <= rank < world_size.
  void set_rank(int rank, int world_size);
  // Writes times on rank 0's clock: `offset_us` added to this process's steady clock (µs since
  // its epoch) gives rank 0's, to within ±rtt_us / 2 (RendezvousClient::measure_clock_offset).
  // Applies to everything written afterwards, events recorded before the call included. Throws
  // std::invalid_argument for a non-finite offset or a negative or non-finite rtt.
  void set_clock_offset(double offset_us, double rtt_us);

  // Opens a span on `track` starting now; returns no_span while disabled. `args` (a JSON object
  // or null) is shown with the span. Throws std::invalid_argument for an empty track name.
  SpanId begin_span(std::string_view track, std::string_view name, std::string_view category,
                    nlohmann::json args = nullptr);
  // Closes a span now. no_span is ignored; an id that is not open throws std::invalid_argument.
  void end_span(SpanId id);

  // A message of `message_type` for `micro_batch` carrying `bytes`, sent at `send_us` and
  // received at `receive_us` (both from now_us()). Throws std::invalid_argument when it would be
  // received before it was sent or a track name is empty.
  void message(std::string_view from_track, std::string_view to_track,
               std::string_view message_type, std::int64_t micro_batch, std::uint64_t bytes,
               double send_us, double receive_us);

  // Writes everything recorded so far (atomically: a reader never sees half a file). Spans still
  // open are written as ending now, with args.unfinished = true.
  void write_chrome_trace(const std::string& path) const;

 private:
  struct Span {
    int tid;
    double start_us;
    double end_us;
    std::string name;
    std::string category;
    nlohmann::json args;
  };
  struct Message {
    int from_tid;
    int to_tid;
    std::string type;
    std::int64_t micro_batch;
    std::uint64_t bytes;
    double send_us;
    double receive_us;
  };

  struct Rank {
    int rank;
    int world_size;
  };
  struct ClockOffset {
    double offset_us;
    double rtt_us;
  };

  int track_id_locked(std::string_view track);
  nlohmann::json chrome_trace_json() const;

  const std::string process_name_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> enabled_;

  mutable std::mutex mutex_;
  std::optional<Rank> rank_;
  std::optional<ClockOffset> clock_offset_;
  std::map<std::string, int, std::less<>> tracks_;  // name -> tid, numbered from 1 by first use
  std::unordered_map<SpanId, Span> open_spans_;
  std::vector<Span> spans_;
  std::vector<Message> messages_;
  SpanId next_span_ = no_span + 1;
};

// Ends its span when it goes out of scope, so an exception cannot leave it open.
class ScopedSpan {
 public:
  ScopedSpan(TraceRecorder& recorder, std::string_view track, std::string_view name,
             std::string_view category, nlohmann::json args = nullptr)
      : recorder_(recorder), id_(recorder.begin_span(track, name, category, std::move(args))) {}
  ~ScopedSpan() { recorder_.end_span(id_); }
  ScopedSpan(const ScopedSpan&) = delete;
  ScopedSpan& operator=(const ScopedSpan&) = delete;

 private:
  TraceRecorder& recorder_;
  SpanId id_;
};

}  // namespace troupe
