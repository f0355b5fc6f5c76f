// summarize_chrome_trace: busy/idle time per track by interval-union arithmetic, message counts
// from flow events, and the comm/compute overlap.
#include "trace/trace_summary.hpp"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "trace/trace_recorder.hpp"

namespace troupe {

using nlohmann::json;

namespace {

using Intervals = std::vector<std::pair<double, double>>;

// Sorted, disjoint intervals covering the same time as `v`; empty intervals vanish.
Intervals merged(Intervals v) {
  std::sort(v.begin(), v.end());
  Intervals out;
  for (const auto& [begin, end] : v) {
    if (end <= begin) continue;
    if (!out.empty() && begin <= out.back().second)
      out.back().second = std::max(out.back().second, end);
    else
      out.emplace_back(begin, end);
  }
  return out;
}

double length(const Intervals& disjoint) {
  double total = 0;
  for (const auto& [begin, end] : disjoint) total += end - begin;
  return total;
}

// Length of the intersection of two merged interval lists (one sweep over both).
double overlap(const Intervals& a, const Intervals& b) {
  double total = 0;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const double lo = std::max(a[i].first, b[j].first);
    const double hi = std::min(a[i].second, b[j].second);
    if (hi > lo) total += hi - lo;
    if (a[i].second < b[j].second)
      ++i;
    else
      ++j;
  }
  return total;
}

struct TrackData {
  std::string thread_name;
  double first_us = std::numeric_limits<double>::infinity();
  double last_us = -std::numeric_limits<double>::infinity();
  Intervals spans;
  std::map<std::string, Intervals> spans_by_category;
  std::map<std::string, std::int64_t> sent_by_type;
  std::map<std::string, std::int64_t> received_by_type;
};

class EventReader {
 public:
  EventReader(const json& event, std::size_t index, const std::string& path)
      : event_(event),
        where_("summarize_chrome_trace('" + path + "'): traceEvents[" + std::to_string(index) +
               "]") {
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
  std::int64_t id_field(const char* key) const {  // pid and tid; absent means 0
    if (!event_.contains(key)) return 0;
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

json read_trace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("summarize_chrome_trace: cannot open '" + path + "'");
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument("summarize_chrome_trace('" + path + "'): not valid JSON (" +
                                e.what() + ")");
  }
}

}  // namespace

TraceSummary summarize_chrome_trace(const std::string& path) {
  const json doc = read_trace(path);
  const json* events = &doc;
  if (doc.is_object()) events = doc.contains("traceEvents") ? &doc.at("traceEvents") : nullptr;
  if (!events || !events->is_array())
    throw std::invalid_argument("summarize_chrome_trace('" + path +
                                "'): expected an object with a \"traceEvents\" array, or an array");

  std::map<std::pair<std::int64_t, std::int64_t>, TrackData> tracks;
  std::map<std::int64_t, std::string> process_names;
  Intervals comm, compute;
  double wall_first = std::numeric_limits<double>::infinity();
  double wall_last = -std::numeric_limits<double>::infinity();

  for (std::size_t i = 0; i < events->size(); ++i) {
    const EventReader event((*events)[i], i, path);
    const std::string phase = event.string_field("ph", true);
    const std::int64_t pid = event.id_field("pid");
    const std::pair<std::int64_t, std::int64_t> key{pid, event.id_field("tid")};
    if (phase == "M") {
      const std::string kind = event.string_field("name", true);
      if (kind == "thread_name") tracks[key].thread_name = event.name_arg();
      if (kind == "process_name") process_names[pid] = event.name_arg();
      continue;
    }
    TrackData& track = tracks[key];
    const double ts = event.number_field("ts");
    double end = ts;
    if (phase == "X") {
      const double dur = event.number_field("dur");
      if (dur < 0) event.fail("has a negative dur");
      end = ts + dur;
      const std::string category = event.string_field("cat", false);
      track.spans.emplace_back(ts, end);
      if (dur > 0) track.spans_by_category[category].emplace_back(ts, end);
      if (category == trace_category::comm) comm.emplace_back(ts, end);
      if (category == trace_category::compute) compute.emplace_back(ts, end);
    } else if (phase == "s") {
      ++track.sent_by_type[event.string_field("name", true)];
    } else if (phase == "f") {
      ++track.received_by_type[event.string_field("name", true)];
    }
    track.first_us = std::min(track.first_us, ts);
    track.last_us = std::max(track.last_us, end);
    wall_first = std::min(wall_first, ts);
    wall_last = std::max(wall_last, end);
  }

  TraceSummary summary;
  for (auto& [key, data] : tracks) {
    TrackSummary t;
    const auto& [pid, tid] = key;
    t.name = data.thread_name.empty() ? "tid " + std::to_string(tid) : data.thread_name;
    if (process_names.size() > 1) {
      auto it = process_names.find(pid);
      t.name =
          (it != process_names.end() ? it->second : "pid " + std::to_string(pid)) + "/" + t.name;
    }
    if (data.first_us <= data.last_us) {  // the track has timed events
      t.first_us = data.first_us;
      t.last_us = data.last_us;
    }
    t.busy_us = length(merged(std::move(data.spans)));
    t.idle_us = (t.last_us - t.first_us) - t.busy_us;
    for (auto& [category, spans] : data.spans_by_category)
      t.busy_by_category_us[category] = length(merged(std::move(spans)));
    t.sent_by_type = std::move(data.sent_by_type);
    t.received_by_type = std::move(data.received_by_type);
    for (const auto& [type, n] : t.sent_by_type) t.messages_sent += n;
    for (const auto& [type, n] : t.received_by_type) t.messages_received += n;
    summary.tracks.push_back(std::move(t));
  }
  if (wall_first <= wall_last) summary.wall_us = wall_last - wall_first;
  const Intervals comm_union = merged(std::move(comm));
  summary.comm_us = length(comm_union);
  summary.comm_overlapped_us = overlap(comm_union, merged(std::move(compute)));
  if (summary.comm_us > 0)
    summary.comm_overlap_fraction = summary.comm_overlapped_us / summary.comm_us;
  return summary;
}

std::string format_summary(const TraceSummary& summary) {
  std::size_t width = 5;  // "track"
  for (const auto& t : summary.tracks) width = std::max(width, t.name.size());
  const auto name_width = static_cast<int>(width);

  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << std::left << std::setw(name_width) << "track" << std::right << std::setw(11) << "busy ms"
      << std::setw(11) << "idle ms" << std::setw(8) << "busy%" << std::setw(7) << "sent"
      << std::setw(7) << "recv"
      << "  busy by category (ms)\n";
  for (const auto& t : summary.tracks) {
    const double extent = t.last_us - t.first_us;
    out << std::left << std::setw(name_width) << t.name << std::right << std::setw(11)
        << t.busy_us / 1000 << std::setw(11) << t.idle_us / 1000 << std::setw(8);
    if (extent > 0) {
      std::ostringstream pct;
      pct << std::fixed << std::setprecision(1) << 100 * t.busy_us / extent << "%";
      out << pct.str();
    } else {
      out << "-";
    }
    out << std::setw(7) << t.messages_sent << std::setw(7) << t.messages_received << " ";
    const char* separator = " ";
    for (const auto& [category, us] : t.busy_by_category_us) {
      out << separator << category << " " << us / 1000;
      separator = ", ";
    }
    out << "\n";
  }

  out << "messages by type:\n";
  for (const auto& t : summary.tracks) {
    if (t.sent_by_type.empty() && t.received_by_type.empty()) continue;
    out << "  " << t.name << ":";
    for (const auto& [type, n] : t.sent_by_type) out << " sent " << type << " x" << n << ";";
    for (const auto& [type, n] : t.received_by_type)
      out << " received " << type << " x" << n << ";";
    out << "\n";
  }
  out << "wall " << summary.wall_us / 1000 << " ms; comm " << summary.comm_us / 1000 << " ms, "
      << std::setprecision(1) << 100 * summary.comm_overlap_fraction << "% overlapped by compute\n";
  return out.str();
}

}  // namespace troupe
