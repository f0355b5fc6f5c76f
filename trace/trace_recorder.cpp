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

// All tracks live in one process of the trace; one recorder is one process.
constexpr int trace_pid = 1;

void check_track(std::string_view track, const char* what) {
  if (track.empty())
    throw std::invalid_argument(std::string("TraceRecorder: ") + what + " must not be empty");
}

// Microsecond times kept to the nanosecond, so the file does not carry float noise digits.
double to_ns_precision(double us) {
  return std::round(us * 1000.0) / 1000.0;
}

json metadata_event(const char* kind, int tid, const std::string& name) {
  return {
      {"ph", "M"}, {"pid", trace_pid}, {"tid", tid}, {"name", kind}, {"args", {{"name", name}}}};
}

json slice_event(int tid, double ts, double dur, const std::string& name, std::string_view cat,
                 json args) {
  json e = {{"ph", "X"},
            {"pid", trace_pid},
            {"tid", tid},
            {"ts", to_ns_precision(ts)},
            {"dur", to_ns_precision(dur)},
            {"name", name},
            {"cat", cat}};
  if (!args.is_null()) e["args"] = std::move(args);
  return e;
}

// Flow events bind to the slice open on their thread at their time: the zero-length message
// slice written just before them ("bp": "e" makes the receiving end do the same).
json flow_event(const char* phase, int tid, double ts, const std::string& type, std::uint64_t id) {
  json e = {{"ph", phase},  {"pid", trace_pid},
            {"tid", tid},   {"ts", to_ns_precision(ts)},
            {"name", type}, {"cat", trace_category::message},
            {"id", id}};
  if (std::string_view(phase) == "f") e["bp"] = "e";
  return e;
}

}  // namespace

TraceRecorder::TraceRecorder(std::string process_name, bool enabled)
    : process_name_(std::move(process_name)),
      start_(std::chrono::steady_clock::now()),
      enabled_(enabled) {}

double TraceRecorder::now_us() const {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start_)
      .count();
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

  json events = json::array();
  events.push_back(metadata_event("process_name", 0, process_name_));
  for (const auto& [name, tid] : tracks_)
    events.push_back(metadata_event("thread_name", tid, name));

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
  auto add_span = [&add](const Span& s, double end, json args) {
    add(s.start_us, end - s.start_us,
        slice_event(s.tid, s.start_us, end - s.start_us, s.name, s.category, std::move(args)));
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
        slice_event(m.from_tid, m.send_us, 0, "send " + m.type, trace_category::message, args));
    add(m.send_us, 0, flow_event("s", m.from_tid, m.send_us, m.type, flow_id));
    add(m.receive_us, 0,
        slice_event(m.to_tid, m.receive_us, 0, "recv " + m.type, trace_category::message,
                    std::move(args)));
    add(m.receive_us, 0, flow_event("f", m.to_tid, m.receive_us, m.type, flow_id));
  }
  std::sort(timed.begin(), timed.end(), [](const Timed& a, const Timed& b) {
    return std::tie(a.ts, b.dur, a.order) < std::tie(b.ts, a.dur, b.order);
  });
  for (Timed& t : timed) events.push_back(std::move(t.event));
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

void TraceRecorder::write_chrome_trace(const std::string& path) const {
  const std::string text = chrome_trace_json().dump();
  write_atomically(path, [&text](std::ostream& out) { out << text; });
}

}  // namespace troupe
