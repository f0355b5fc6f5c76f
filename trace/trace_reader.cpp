// read_chrome_trace: validates each event as it goes, so a garbled trace is reported by the index
// of its first bad event rather than as a wrong summary or plot.
#include "trace/trace_reader.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <utility>

namespace troupe {

using nlohmann::json;

namespace {

class EventReader {
 public:
  EventReader(const json& event, std::size_t index, const std::string& path)
      : event_(event),
        where_("read_chrome_trace('" + path + "'): traceEvents[" + std::to_string(index) + "]") {
    if (!event_.is_object()) fail("is not a JSON object: " + event_.dump());
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(where_ + " " + what);
  }
  std::string string_field(const char* key, bool required) const {
    if (!event_.contains(key)) {
      if (required) fail(std::string("has no \"") + key + "\"");
      return {};
    }
    const json& value = event_.at(key);
    if (!value.is_string()) fail(std::string("\"") + key + "\" must be a string: " + value.dump());
    return value.get<std::string>();
  }
  double number_field(const char* key) const {
    if (!event_.contains(key)) fail(std::string("has no \"") + key + "\"");
    const json& value = event_.at(key);
    if (!value.is_number()) fail(std::string("\"") + key + "\" must be a number: " + value.dump());
    return value.get<double>();
  }
  // pid, tid and flow ids; absent gives `absent`.
  std::int64_t id_field(const char* key, std::int64_t absent) const {
    if (!event_.contains(key)) return absent;
    const json& value = event_.at(key);
    if (!value.is_number_integer())
      fail(std::string("\"") + key + "\" must be an integer: " + value.dump());
    return value.get<std::int64_t>();
  }
  std::string name_arg() const {  // args.name of a metadata event
    const json* args = event_.contains("args") ? &event_.at("args") : nullptr;
    if (!args || !args->is_object() || !args->contains("name") || !args->at("name").is_string())
      fail("metadata needs a string args.name: " + event_.dump());
    return args->at("name").get<std::string>();
  }

 private:
  const json& event_;
  std::string where_;
};

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("read_chrome_trace: cannot open '" + path + "'");
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument("read_chrome_trace('" + path + "'): not valid JSON (" + e.what() +
                                ")");
  }
}

// The rank and clock offset in "otherData", each all or nothing.
class OtherDataReader {
 public:
  OtherDataReader(const json& doc, const std::string& path)
      : path_(path),
        data_(doc.is_object() && doc.contains("otherData") ? &doc.at("otherData") : nullptr) {
    if (data_ && !data_->is_object())
      throw std::invalid_argument(where() + " must be a JSON object: " + data_->dump());
  }

  std::optional<TraceRank> rank() const {
    if (!has("rank") && !has("world_size")) return std::nullopt;
    const TraceRank r{integer("rank"), integer("world_size")};
    if (r.world_size < 1 || r.rank < 0 || r.rank >= r.world_size)
      throw std::invalid_argument(where() + ": rank " + std::to_string(r.rank) + " of world size " +
                                  std::to_string(r.world_size) + ": need 0 <= rank < world_size");
    return r;
  }

  std::optional<TraceClock> clock() const {
    if (!has("clock_offset_us") && !has("clock_rtt_us")) return std::nullopt;
    const TraceClock c{number("clock_offset_us"), number("clock_rtt_us")};
    if (c.rtt_us < 0)
      throw std::invalid_argument(where() + ": clock_rtt_us must not be negative, got " +
                                  std::to_string(c.rtt_us));
    return c;
  }

 private:
  std::string where() const { return "read_chrome_trace('" + path_ + "'): otherData"; }
  bool has(const char* key) const { return data_ && data_->contains(key); }
  const json& field(const char* key) const {
    if (!has(key)) throw std::invalid_argument(where() + " has no \"" + key + "\"");
    return data_->at(key);
  }
  int integer(const char* key) const {
    const json& value = field(key);
    if (!value.is_number_integer())
      throw std::invalid_argument(where() + " \"" + key + "\" must be an integer: " + value.dump());
    return value.get<int>();
  }
  double number(const char* key) const {
    const json& value = field(key);
    if (!value.is_number())
      throw std::invalid_argument(where() + " \"" + key + "\" must be a number: " + value.dump());
    return value.get<double>();
  }

  const std::string& path_;
  const json* data_;
};

struct TrackData {
  std::string thread_name;
  TraceTrack track;
  double first_us = std::numeric_limits<double>::infinity();
  double last_us = -std::numeric_limits<double>::infinity();
};

}  // namespace

ChromeTrace read_chrome_trace(const std::string& path) {
  const json doc = read_json(path);
  const json* events = &doc;
  if (doc.is_object()) events = doc.contains("traceEvents") ? &doc.at("traceEvents") : nullptr;
  if (!events || !events->is_array())
    throw std::invalid_argument("read_chrome_trace('" + path +
                                "'): expected an object with a \"traceEvents\" array, or an array");

  using Key = std::pair<std::int64_t, std::int64_t>;  // (pid, tid)
  std::map<Key, TrackData> tracks;
  std::map<std::int64_t, std::string> process_names;
  for (std::size_t i = 0; i < events->size(); ++i) {
    const EventReader event((*events)[i], i, path);
    const std::string phase = event.string_field("ph", true);
    const std::int64_t pid = event.id_field("pid", 0);
    const Key key{pid, event.id_field("tid", 0)};
    if (phase == "M") {
      const std::string kind = event.string_field("name", true);
      if (kind == "thread_name") tracks[key].thread_name = event.name_arg();
      if (kind == "process_name") process_names[pid] = event.name_arg();
      continue;
    }
    TrackData& data = tracks[key];
    const double ts = event.number_field("ts");
    double end = ts;
    if (phase == "X") {
      const double dur = event.number_field("dur");
      if (dur < 0) event.fail("has a negative dur");
      end = ts + dur;
      data.track.spans.push_back(
          TraceSpan{ts, end, event.string_field("name", false), event.string_field("cat", false)});
    } else if (phase == "s" || phase == "f") {
      TraceFlow flow{ts, event.string_field("name", true), event.id_field("id", -1)};
      (phase == "s" ? data.track.sent : data.track.received).push_back(std::move(flow));
    }
    data.first_us = std::min(data.first_us, ts);
    data.last_us = std::max(data.last_us, end);
  }

  ChromeTrace trace;
  const OtherDataReader other_data(doc, path);
  trace.rank = other_data.rank();
  trace.clock = other_data.clock();
  for (auto& [key, data] : tracks) {
    const auto& [pid, tid] = key;
    TraceTrack& t = data.track;
    t.pid = pid;
    t.name = data.thread_name.empty() ? "tid " + std::to_string(tid) : data.thread_name;
    if (process_names.size() > 1) {
      auto it = process_names.find(pid);
      t.name =
          (it != process_names.end() ? it->second : "pid " + std::to_string(pid)) + "/" + t.name;
    }
    if (data.first_us <= data.last_us) {  // the track has timed events
      t.first_us = data.first_us;
      t.last_us = data.last_us;
      t.timed = true;
    }
    trace.tracks.push_back(std::move(t));
  }

  // Pair each flow's start with its end by id.
  std::map<std::int64_t, std::pair<std::size_t, const TraceFlow*>> sends;
  for (std::size_t i = 0; i < trace.tracks.size(); ++i)
    for (const TraceFlow& f : trace.tracks[i].sent)
      if (f.id >= 0) sends[f.id] = {i, &f};
  for (std::size_t i = 0; i < trace.tracks.size(); ++i) {
    for (const TraceFlow& f : trace.tracks[i].received) {
      auto it = sends.find(f.id);
      if (f.id < 0 || it == sends.end()) continue;
      const auto& [from, sent] = it->second;
      trace.messages.push_back(TraceMessage{from, i, f.type, sent->ts_us, f.ts_us});
    }
  }
  std::sort(trace.messages.begin(), trace.messages.end(),
            [](const TraceMessage& a, const TraceMessage& b) { return a.send_us < b.send_us; });
  return trace;
}

}  // namespace troupe
