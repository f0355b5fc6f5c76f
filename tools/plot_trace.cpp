// Step timeline: step windows from optimizer rounds, the critical path by walking back from the
// latest-ending work, and the gnuplot script (boxes per category, message arrows, the path in red).
#include "tools/plot_trace.hpp"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "tools/gnuplot.hpp"
#include "trace/intervals.hpp"
#include "trace/trace_recorder.hpp"

namespace troupe {

namespace {

// The latest message received on `track` in [not_before, by] and sent after `since`.
const TraceMessage* latest_arrival(const std::vector<TraceMessage>& messages, std::size_t track,
                                   double not_before, double by, double since) {
  const TraceMessage* best = nullptr;
  for (const auto& m : messages)
    if (m.to == track && m.from != track && m.receive_us >= not_before && m.receive_us <= by &&
        m.send_us >= since && (!best || m.receive_us > best->receive_us))
      best = &m;
  return best;
}

// The track, other than `track`, whose work ended last in [not_before, by], with that end.
std::optional<std::pair<std::size_t, double>> latest_other_end(const std::vector<Intervals>& busy,
                                                               std::size_t track, double not_before,
                                                               double by) {
  std::optional<std::pair<std::size_t, double>> best;
  for (std::size_t i = 0; i < busy.size(); ++i) {
    if (i == track) continue;
    auto it = std::upper_bound(busy[i].begin(), busy[i].end(), by,
                               [](double v, const auto& iv) { return v < iv.second; });
    if (it == busy[i].begin()) continue;
    const double end = std::prev(it)->second;  // the latest end at or before `by`
    if (end >= not_before && (!best || end > best->second)) best = std::make_pair(i, end);
  }
  return best;
}

void critical_path(StepTimeline& timeline, const std::vector<Intervals>& busy) {
  const double start = timeline.window.start_us;
  std::size_t track = 0;
  double t = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < busy.size(); ++i)
    if (!busy[i].empty() && busy[i].back().second > t) {
      track = i;
      t = busy[i].back().second;
    }
  // Every round either takes a busy interval (t moves back to its start) or follows a dependency
  // to another track (t moves back, or stays and the next round takes an interval), so this
  // ends; the bound is a guard against a malformed trace only.
  for (std::size_t round = 0; round < 1000000 && t > start; ++round) {
    const Intervals& mine = busy[track];
    auto it = std::lower_bound(mine.begin(), mine.end(), t,
                               [](const auto& iv, double v) { return iv.first < v; });
    double previous_end = -std::numeric_limits<double>::infinity();
    const bool worked = it != mine.begin();
    if (worked) {
      --it;  // the latest interval starting before t
      const double begin = std::max(it->first, start);
      timeline.critical.push_back(TimelineSpan{track, begin, std::min(it->second, t), "critical"});
      t = begin;
      if (it != mine.begin()) previous_end = std::prev(it)->second;
    }
    // What the track waited for before that work: the last traced message that arrived while it
    // was idle or, when none did (replies are not traced), the work elsewhere that ended last.
    const TraceMessage* m = latest_arrival(timeline.messages, track, previous_end, t, start);
    if (m && (worked || m->send_us < t)) {
      timeline.critical_messages.push_back(*m);
      track = m->from;
      t = m->send_us;
      continue;
    }
    const auto other = latest_other_end(busy, track, std::max(previous_end, start), t);
    if (other && (worked || other->second < t)) {
      timeline.critical_messages.push_back(
          TraceMessage{other->first, track, "(untraced)", other->second, t});
      track = other->first;
      t = other->second;
      continue;
    }
    if (!worked) break;
  }
}

std::string category_color(const std::string& category) {
  static const std::map<std::string, std::string> colors{
      {std::string(trace_category::compute), "#4477aa"},
      {std::string(trace_category::comm), "#ee7733"},
      {std::string(trace_category::optimizer), "#228833"},
      {std::string(trace_category::data), "#aa3377"}};
  auto it = colors.find(category);
  return it != colors.end() ? it->second : "#888888";
}

std::string timeline_script(const StepTimeline& tl, const std::string& path) {
  const double origin = tl.window.start_us;
  auto ms = [origin](double us) { return (us - origin) / 1000.0; };
  const double half = 0.3;
  std::ostringstream script;
  const int height = 160 + 30 * static_cast<int>(tl.tracks.size());
  script << "set terminal pngcairo size 1400," << height << " noenhanced font 'sans,10'\n"
         << "set output " << gnuplot_quote(path) << "\n";
  std::ostringstream title;
  title << std::fixed << std::setprecision(2) << "step " << tl.window.step
        << " of the trace: " << ms(tl.window.end_us) << " ms; critical path in red";
  script << "set title " << gnuplot_quote(title.str())
         << "\nset xlabel 'time since the step began (ms)'\nset grid x\n"
         << "set key outside right top\nset yrange [" << tl.tracks.size() - 0.5
         << ":-0.5]\nset xrange [0:" << ms(tl.window.end_us) << "]\nset ytics (";
  for (std::size_t i = 0; i < tl.tracks.size(); ++i)
    script << (i ? ", " : "") << gnuplot_quote(tl.tracks[i]) << " " << i;
  script << ")\n";

  // Idle: the whole window under each track; busy boxes cover it where the actor works.
  GnuplotRows idle;
  for (std::size_t i = 0; i < tl.tracks.size(); ++i) {
    const double y = static_cast<double>(i);
    idle.push_back({ms(tl.window.end_us) / 2, y, 0, ms(tl.window.end_us), y - half, y + half});
  }
  script << gnuplot_datablock("idle", idle);
  std::map<std::string, GnuplotRows> by_category;
  for (const auto& s : tl.spans) {
    const double y = static_cast<double>(s.track);
    by_category[s.category].push_back(
        {(ms(s.start_us) + ms(s.end_us)) / 2, y, ms(s.start_us), ms(s.end_us), y - half, y + half});
  }
  std::string plot =
      "plot $idle using 1:2:3:4:5:6 with boxxyerror fs solid 1.0 noborder "
      "fc '#e8e8e8' title 'idle'";
  std::size_t n = 0;
  for (const auto& [category, rows] : by_category) {
    const std::string block = "busy" + std::to_string(n++);
    script << gnuplot_datablock(block, rows);
    plot += ", $" + block + " using 1:2:3:4:5:6 with boxxyerror fs solid 1.0 noborder fc '" +
            category_color(category) + "' title " +
            gnuplot_quote(category.empty() ? "busy" : category);
  }
  auto arrows = [&ms](const std::vector<TraceMessage>& messages) {
    GnuplotRows rows;
    for (const auto& m : messages)
      rows.push_back({ms(m.send_us), static_cast<double>(m.from), ms(m.receive_us) - ms(m.send_us),
                      static_cast<double>(m.to) - static_cast<double>(m.from)});
    return rows;
  };
  if (!tl.messages.empty()) {
    script << gnuplot_datablock("messages", arrows(tl.messages));
    plot +=
        ", $messages using 1:2:3:4 with vectors head size 0.3,20 lw 0.5 lc '#999999' "
        "title 'message'";
  }
  if (!tl.critical.empty()) {
    GnuplotRows path_rows;
    for (const auto& s : tl.critical)
      path_rows.push_back(
          {ms(s.start_us), static_cast<double>(s.track), ms(s.end_us) - ms(s.start_us), 0});
    script << gnuplot_datablock("critical", path_rows);
    plot +=
        ", $critical using 1:2:3:4 with vectors nohead lw 4 lc '#cc0000' "
        "title 'critical path'";
  }
  if (!tl.critical_messages.empty()) {
    script << gnuplot_datablock("hops", arrows(tl.critical_messages));
    plot += ", $hops using 1:2:3:4 with vectors head filled size 0.3,20 lw 2 lc '#cc0000' notitle";
  }
  script << plot << "\n";
  return script.str();
}

}  // namespace

std::vector<StepWindow> step_windows(const ChromeTrace& trace) {
  std::vector<std::pair<double, double>> optimizer;
  std::vector<double> compute_starts;
  double first = std::numeric_limits<double>::infinity();
  for (const auto& track : trace.tracks) {
    if (track.timed) first = std::min(first, track.first_us);
    for (const auto& s : track.spans) {
      if (s.end_us <= s.start_us) continue;
      if (s.category == trace_category::optimizer) optimizer.emplace_back(s.start_us, s.end_us);
      if (s.category == trace_category::compute) compute_starts.push_back(s.start_us);
    }
  }
  std::sort(optimizer.begin(), optimizer.end());
  std::sort(compute_starts.begin(), compute_starts.end());
  std::vector<StepWindow> steps;
  double round_end = 0;
  bool open = false;
  auto close_round = [&] {
    const double start = steps.empty() ? first : steps.back().end_us;
    steps.push_back(StepWindow{static_cast<std::int64_t>(steps.size()) + 1, start, round_end});
  };
  for (const auto& [begin, end] : optimizer) {
    if (open) {
      auto c = std::upper_bound(compute_starts.begin(), compute_starts.end(), round_end);
      if (c != compute_starts.end() && *c < begin) {  // compute ran between: a new step's round
        close_round();
        open = false;
      }
    }
    round_end = open ? std::max(round_end, end) : end;
    open = true;
  }
  if (open) close_round();
  return steps;
}

StepTimeline step_timeline(const ChromeTrace& trace, std::int64_t step) {
  const std::vector<StepWindow> windows = step_windows(trace);
  if (windows.empty())
    throw std::invalid_argument(
        "step_timeline: the trace has no optimizer spans, so no training step to draw");
  if (step == 0) step = (static_cast<std::int64_t>(windows.size()) + 1) / 2;
  if (step < 1 || step > static_cast<std::int64_t>(windows.size()))
    throw std::invalid_argument("step_timeline: step " + std::to_string(step) +
                                " is not in the trace; it has steps 1 to " +
                                std::to_string(windows.size()));
  StepTimeline tl;
  tl.window = windows[static_cast<std::size_t>(step - 1)];
  std::vector<Intervals> busy(trace.tracks.size());
  for (std::size_t i = 0; i < trace.tracks.size(); ++i) {
    tl.tracks.push_back(trace.tracks[i].name);
    Intervals spans;
    for (const auto& s : trace.tracks[i].spans) {
      const double begin = std::max(s.start_us, tl.window.start_us);
      const double end = std::min(s.end_us, tl.window.end_us);
      if (end <= begin) continue;
      tl.spans.push_back(TimelineSpan{i, begin, end, s.category});
      spans.emplace_back(begin, end);
    }
    busy[i] = merged(std::move(spans));
  }
  for (const auto& m : trace.messages)
    if (m.send_us >= tl.window.start_us && m.receive_us <= tl.window.end_us)
      tl.messages.push_back(m);
  critical_path(tl, busy);
  return tl;
}

std::string plot_trace(const std::string& trace_path, const std::string& out_dir,
                       std::int64_t step) {
  const StepTimeline tl = step_timeline(read_chrome_trace(trace_path), step);
  std::filesystem::create_directories(out_dir);
  const std::string path =
      (std::filesystem::path(out_dir) / ("timeline_step" + std::to_string(tl.window.step) + ".png"))
          .string();
  run_gnuplot(timeline_script(tl, path));
  return path;
}

}  // namespace troupe
