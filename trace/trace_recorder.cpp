// TraceRecorder: in-memory recording and the Chrome trace JSON writer.
#include "trace/trace_recorder.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "memory/file_util.hpp"

namespace troupe {

using nlohmann::json;

namespace {

// A recorder without a rank is the one process of its trace; rank R is process R + 1 (pid 0 is
// the idle task to Perfetto, see trace_recorder.hpp).
constexpr int single_process_pid = 1;
int rank_pid(int rank) {
  return rank + 1;
}

void check_track(std::string_view track, const char* what) {
  if (track.empty())
    throw std::invalid_argument(std::string("TraceRecorder: ") + what + " must not be empty");
}

// Microsecond times kept to the nanosecond, so the file does not carry float noise digits.
double to_ns_precision(double us) {
  return std::round(us * 1000.0) / 1000.0;
}

// Where events are written: the process (the rank) and the shift from recorder time to the
// file's time base (0, or the recorder's start on rank 0's clock).
struct EventFrame {
  int pid;
  double shift_us;

  json metadata(const char* kind, int tid, json args) const {
    return {{"ph", "M"}, {"pid", pid}, {"tid", tid}, {"name", kind}, {"args", std::move(args)}};
  }

  json slice(int tid, double ts, double dur, const std::string& name, std::string_view cat,
             json args) const {
    json e = {{"ph", "X"},
              {"pid", pid},
              {"tid", tid},
              {"ts", to_ns_precision(ts + shift_us)},
              {"dur", to_ns_precision(dur)},
              {"name", name},
              {"cat", cat}};
    if (!args.is_null()) e["args"] = std::move(args);
    return e;
  }

  // Flow events bind to the slice open on their thread at their time: the zero-length message
  // slice written just before them ("bp": "e" makes the receiving end do the same).
  json flow(const char* phase, int tid, double ts, const std::string& type,
            std::uint64_t id) const {
    json e = {{"ph", phase},  {"pid", pid},
              {"tid", tid},   {"ts", to_ns_precision(ts + shift_us)},
              {"name", type}, {"cat", trace_category::message},
              {"id", id}};
    if (std::string_view(phase) == "f") e["bp"] = "e";
    return e;
  }
};

}  // namespace

TraceRecorder::TraceRecorder(std::string process_name, bool enabled)
    : process_name_(std::move(process_name)),
      start_(std::chrono::steady_clock::now()),
      enabled_(enabled) {}

double TraceRecorder::now_us() const {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start_)
      .count();
}

void TraceRecorder::set_rank(int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw std::invalid_argument("TraceRecorder::set_rank: rank " + std::to_string(rank) +
                                " of world size " + std::to_string(world_size) +
                                ": need 0 <= rank < world_size");
  std::lock_guard lock(mutex_);
  rank_ = Rank{rank, world_size};
}

void TraceRecorder::set_clock_offset(double offset_us, double rtt_us) {
  if (!std::isfinite(offset_us) || !std::isfinite(rtt_us) || rtt_us < 0)
    throw std::invalid_argument("TraceRecorder::set_clock_offset: offset " +
                                std::to_string(offset_us) + " us, rtt " + std::to_string(rtt_us) +
                                " us: need a finite offset and a finite rtt >= 0");
  std::lock_guard lock(mutex_);
  clock_offset_ = ClockOffset{offset_us, rtt_us};
}

int TraceRecorder::track_id_locked(std::string_view track) {
  auto it = tracks_.find(track);
  if (it == tracks_.end())
    it = tracks_.emplace(std::string(track), static_cast<int>(tracks_.size()) + 1).first;
  return it->second;
}

SpanId TraceRecorder::begin_span(std::string_view track, std::string_view name,
                                 std::string_view category, json args) {
  if (!enabled()) return no_span;
  check_track(track, "span track");
  if (!args.is_null() && !args.is_object())
    throw std::invalid_argument("TraceRecorder::begin_span: args must be a JSON object, got " +
                                args.dump());
  const double start = now_us();
  std::lock_guard lock(mutex_);
  const SpanId id = next_span_++;
  open_spans_.emplace(id, Span{track_id_locked(track), start, start, std::string(name),
                               std::string(category), std::move(args)});
  return id;
}

void TraceRecorder::end_span(SpanId id) {
  if (id == no_span) return;
  const double end = now_us();
  std::lock_guard lock(mutex_);
  auto it = open_spans_.find(id);
  if (it == open_spans_.end())
    throw std::invalid_argument("TraceRecorder::end_span: span " + std::to_string(id) +
                                " is not open (ended twice, or from another recorder?)");
  it->second.end_us = end;
  spans_.push_back(std::move(it->second));
  open_spans_.erase(it);
}

void TraceRecorder::message(std::string_view from_track, std::string_view to_track,
                            std::string_view message_type, std::int64_t micro_batch,
                            std::uint64_t bytes, double send_us, double receive_us) {
  if (!enabled()) return;
  check_track(from_track, "message sender track");
  check_track(to_track, "message receiver track");
  if (receive_us < send_us)
    throw std::invalid_argument("TraceRecorder::message: " + std::string(message_type) +
                                " received at " + std::to_string(receive_us) +
                                " us, before it was sent at " + std::to_string(send_us) + " us");
  std::lock_guard lock(mutex_);
  const int from = track_id_locked(from_track);
  const int to = track_id_locked(to_track);
  messages_.push_back(
      Message{from, to, std::string(message_type), micro_batch, bytes, send_us, receive_us});
}

json TraceRecorder::chrome_trace_json() const {
  const double now = now_us();
  std::lock_guard lock(mutex_);

  EventFrame frame{rank_ ? rank_pid(rank_->rank) : single_process_pid, 0.0};
  json other_data = json::object();
  json events = json::array();
  if (rank_) {
    other_data["rank"] = rank_->rank;
    other_data["world_size"] = rank_->world_size;
    events.push_back(frame.metadata(
        "process_name", 0, {{"name", process_name_ + " rank " + std::to_string(rank_->rank)}}));
    events.push_back(frame.metadata("process_sort_index", 0, {{"sort_index", rank_->rank}}));
  } else {
    events.push_back(frame.metadata("process_name", 0, {{"name", process_name_}}));
  }
  if (clock_offset_) {
    const double start_us =
        std::chrono::duration<double, std::micro>(start_.time_since_epoch()).count();
    frame.shift_us = start_us + clock_offset_->offset_us;
    other_data["clock_offset_us"] = clock_offset_->offset_us;
    other_data["clock_rtt_us"] = clock_offset_->rtt_us;
  }
  for (const auto& [name, tid] : tracks_)
    events.push_back(frame.metadata("thread_name", tid, {{"name", name}}));

  // Timed events sorted by start, longer first, then by emission order: a parent precedes the
  // spans it encloses, and each flow event directly follows the message slice it binds to.
  struct Timed {
    double ts;
    double dur;
    std::size_t order;
    json event;
  };
  std::vector<Timed> timed;
  auto add = [&timed](double ts, double dur, json event) {
    timed.push_back(Timed{ts, dur, timed.size(), std::move(event)});
  };
  auto add_span = [&add, &frame](const Span& s, double end, json args) {
    add(s.start_us, end - s.start_us,
        frame.slice(s.tid, s.start_us, end - s.start_us, s.name, s.category, std::move(args)));
  };
  for (const Span& s : spans_) add_span(s, s.end_us, s.args);
  for (const auto& [id, s] : open_spans_) {
    json args = s.args.is_null() ? json::object() : s.args;
    args["unfinished"] = true;
    add_span(s, std::max(now, s.start_us), std::move(args));
  }
  std::uint64_t flow_id = 0;
  for (const Message& m : messages_) {
    ++flow_id;
    json args = {{"type", m.type}, {"micro_batch", m.micro_batch}, {"bytes", m.bytes}};
    add(m.send_us, 0,
        frame.slice(m.from_tid, m.send_us, 0, "send " + m.type, trace_category::message, args));
    add(m.send_us, 0, frame.flow("s", m.from_tid, m.send_us, m.type, flow_id));
    add(m.receive_us, 0,
        frame.slice(m.to_tid, m.receive_us, 0, "recv " + m.type, trace_category::message,
                    std::move(args)));
    add(m.receive_us, 0, frame.flow("f", m.to_tid, m.receive_us, m.type, flow_id));
  }
  std::sort(timed.begin(), timed.end(), [](const Timed& a, const Timed& b) {
    return std::tie(a.ts, b.dur, a.order) < std::tie(b.ts, a.dur, b.order);
  });
  for (Timed& t : timed) events.push_back(std::move(t.event));
  json trace = {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
  if (!other_data.empty()) trace["otherData"] = std::move(other_data);
  return trace;
}

void TraceRecorder::write_chrome_trace(const std::string& path) const {
  const std::string text = chrome_trace_json().dump();
  write_atomically(path, [&text](std::ostream& out) { out << text; });
}

}  // namespace troupe
