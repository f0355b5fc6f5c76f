// summarize_trace: busy/idle time per track by interval-union arithmetic, message counts from
// flow events, the comm/compute overlap and the all-to-all hidden under compute; and the same for
// several ranks' files side by side.
#include "trace/trace_summary.hpp"

#include <algorithm>
#include <iomanip>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "trace/intervals.hpp"
#include "trace/trace_recorder.hpp"

namespace troupe {

namespace {

bool is_all_to_all(const TraceSpan& s) {
  return s.category == trace_category::comm && s.name.starts_with(all_to_all_span_prefix);
}

// The all-to-all time of one process's tracks and the part of it hidden under compute on a track
// other than the exchange's own: (union over tracks t of A_t, union over t of A_t ∩ C_not_t),
// with A_t the track's all-to-all spans and C_not_t the compute spans of every other track.
std::pair<double, double> all_to_all_time(const std::vector<const TraceTrack*>& tracks) {
  std::vector<Intervals> exchange(tracks.size()), compute(tracks.size());
  for (std::size_t i = 0; i < tracks.size(); ++i) {
    for (const TraceSpan& s : tracks[i]->spans) {
      if (is_all_to_all(s)) exchange[i].emplace_back(s.start_us, s.end_us);
      if (s.category == trace_category::compute) compute[i].emplace_back(s.start_us, s.end_us);
    }
  }
  Intervals total, hidden;
  for (std::size_t i = 0; i < tracks.size(); ++i) {
    if (exchange[i].empty()) continue;
    Intervals other_compute;
    for (std::size_t j = 0; j < tracks.size(); ++j)
      if (j != i) other_compute.insert(other_compute.end(), compute[j].begin(), compute[j].end());
    const Intervals mine = merged(std::move(exchange[i]));
    const Intervals under = intersected(mine, merged(std::move(other_compute)));
    total.insert(total.end(), mine.begin(), mine.end());
    hidden.insert(hidden.end(), under.begin(), under.end());
  }
  return {length(merged(std::move(total))), length(merged(std::move(hidden)))};
}

double fraction(double part, double whole) {
  return whole > 0 ? part / whole : 0;
}

}  // namespace

TraceSummary summarize_trace(ChromeTrace trace) {
  TraceSummary summary;
  summary.rank = trace.rank;
  summary.clock = trace.clock;
  Intervals comm, compute;
  std::map<std::int64_t, std::vector<const TraceTrack*>> tracks_by_process;
  double wall_first = std::numeric_limits<double>::infinity();
  double wall_last = -std::numeric_limits<double>::infinity();
  for (const TraceTrack& track : trace.tracks) {
    TrackSummary t;
    t.name = track.name;
    t.first_us = track.first_us;
    t.last_us = track.last_us;
    if (track.timed) {
      wall_first = std::min(wall_first, track.first_us);
      wall_last = std::max(wall_last, track.last_us);
    }
    tracks_by_process[track.pid].push_back(&track);
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
  if (wall_first <= wall_last) {
    summary.timed = true;
    summary.first_us = wall_first;
    summary.wall_us = wall_last - wall_first;
  }
  const Intervals comm_union = merged(std::move(comm));
  summary.comm_us = length(comm_union);
  summary.comm_overlapped_us = overlap(comm_union, merged(std::move(compute)));
  summary.comm_overlap_fraction = fraction(summary.comm_overlapped_us, summary.comm_us);
  for (const auto& [pid, tracks] : tracks_by_process) {
    const auto [total, hidden] = all_to_all_time(tracks);
    summary.all_to_all_us += total;
    summary.all_to_all_hidden_us += hidden;
  }
  summary.all_to_all_hidden_fraction =
      fraction(summary.all_to_all_hidden_us, summary.all_to_all_us);
  return summary;
}

TraceSummary summarize_chrome_trace(const std::string& path) {
  return summarize_trace(read_chrome_trace(path));
}

RunTraceSummary summarize_rank_traces(const std::vector<std::string>& paths) {
  if (paths.empty()) throw std::invalid_argument("summarize_rank_traces: no trace files given");
  RunTraceSummary run;
  for (const std::string& path : paths)
    run.ranks.push_back(RankTraceSummary{path, 0, summarize_chrome_trace(path)});
  if (paths.size() > 1) {
    std::set<int> seen;
    const TraceSummary& reference = run.ranks.front().summary;
    for (const RankTraceSummary& r : run.ranks) {
      const auto fail = [&r](const std::string& what) {
        throw std::invalid_argument("trace summarize: '" + r.path + "' " + what);
      };
      if (!r.summary.rank)
        fail(
            "is not a rank's trace (no otherData rank/world_size): several files must each be "
            "one rank of the same run");
      if (!r.summary.clock)
        fail(
            "has no clock offset (otherData clock_offset_us): its times cannot be aligned with "
            "the other ranks'");
      if (r.summary.rank->world_size != reference.rank->world_size)
        fail("is rank " + std::to_string(r.summary.rank->rank) + " of world size " +
             std::to_string(r.summary.rank->world_size) + ", but '" + run.ranks.front().path +
             "' has world size " + std::to_string(reference.rank->world_size));
      if (!seen.insert(r.summary.rank->rank).second)
        fail("is rank " + std::to_string(r.summary.rank->rank) + " again");
    }
    std::sort(run.ranks.begin(), run.ranks.end(),
              [](const RankTraceSummary& a, const RankTraceSummary& b) {
                return a.summary.rank->rank < b.summary.rank->rank;
              });
  }
  double first = std::numeric_limits<double>::infinity();
  double last = -std::numeric_limits<double>::infinity();
  for (const RankTraceSummary& r : run.ranks) {
    if (!r.summary.timed) continue;
    first = std::min(first, r.summary.first_us);
    last = std::max(last, r.summary.first_us + r.summary.wall_us);
  }
  for (RankTraceSummary& r : run.ranks) {
    if (r.summary.timed) r.start_us = r.summary.first_us - first;
    run.all_to_all_us += r.summary.all_to_all_us;
    run.all_to_all_hidden_us += r.summary.all_to_all_hidden_us;
  }
  if (first <= last) run.wall_us = last - first;
  run.all_to_all_hidden_fraction = fraction(run.all_to_all_hidden_us, run.all_to_all_us);
  return run;
}

std::string format_summary(const TraceSummary& summary) {
  std::size_t width = 5;  // "track"
  for (const auto& t : summary.tracks) width = std::max(width, t.name.size());
  const auto name_width = static_cast<int>(width);

  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  if (summary.rank) {
    out << "rank " << summary.rank->rank << " of " << summary.rank->world_size;
    if (summary.clock)
      out << "; clock offset " << summary.clock->offset_us / 1000 << " ms (±"
          << summary.clock->rtt_us / 2000 << " ms) applied";
    out << "\n";
  }
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
  if (summary.all_to_all_us > 0)
    out << std::setprecision(3) << "all-to-all " << summary.all_to_all_us / 1000 << " ms, "
        << std::setprecision(1) << 100 * summary.all_to_all_hidden_fraction
        << "% hidden under compute on other tracks\n";
  return out.str();
}

std::string format_rank_summaries(const RunTraceSummary& run) {
  if (run.ranks.size() == 1) return format_summary(run.ranks.front().summary);
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  for (const RankTraceSummary& r : run.ranks) {
    out << "== " << r.path << ": starts " << r.start_us / 1000 << " ms after the earliest rank\n"
        << format_summary(r.summary) << "\n";
  }
  out << "all " << run.ranks.size() << " ranks: wall " << run.wall_us / 1000 << " ms; all-to-all "
      << run.all_to_all_us / 1000 << " ms, " << std::setprecision(1)
      << 100 * run.all_to_all_hidden_fraction << "% hidden under compute\n";
  return out.str();
}

}  // namespace troupe
