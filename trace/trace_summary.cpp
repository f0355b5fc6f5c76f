// summarize_chrome_trace: busy/idle time per track by interval-union arithmetic, message counts
// from flow events, and the comm/compute overlap.
#include "trace/trace_summary.hpp"

#include <algorithm>
#include <iomanip>
#include <limits>
#include <sstream>
#include <utility>

#include "trace/intervals.hpp"
#include "trace/trace_reader.hpp"
#include "trace/trace_recorder.hpp"

namespace troupe {

TraceSummary summarize_chrome_trace(const std::string& path) {
  ChromeTrace trace = read_chrome_trace(path);
  TraceSummary summary;
  Intervals comm, compute;
  double wall_first = std::numeric_limits<double>::infinity();
  double wall_last = -std::numeric_limits<double>::infinity();
  for (TraceTrack& track : trace.tracks) {
    TrackSummary t;
    t.name = std::move(track.name);
    t.first_us = track.first_us;
    t.last_us = track.last_us;
    if (track.timed) {
      wall_first = std::min(wall_first, track.first_us);
      wall_last = std::max(wall_last, track.last_us);
    }
    Intervals spans;
    std::map<std::string, Intervals> spans_by_category;
    for (const TraceSpan& s : track.spans) {
      spans.emplace_back(s.start_us, s.end_us);
      if (s.end_us > s.start_us) spans_by_category[s.category].emplace_back(s.start_us, s.end_us);
      if (s.category == trace_category::comm) comm.emplace_back(s.start_us, s.end_us);
      if (s.category == trace_category::compute) compute.emplace_back(s.start_us, s.end_us);
    }
    t.busy_us = length(merged(std::move(spans)));
    t.idle_us = (t.last_us - t.first_us) - t.busy_us;
    for (auto& [category, intervals] : spans_by_category)
      t.busy_by_category_us[category] = length(merged(std::move(intervals)));
    for (const TraceFlow& f : track.sent) ++t.sent_by_type[f.type];
    for (const TraceFlow& f : track.received) ++t.received_by_type[f.type];
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
