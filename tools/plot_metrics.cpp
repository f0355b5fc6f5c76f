// Metrics plots: parsing with errors that name file, line and key; the series as pure functions
// (tested against the file's numbers); one gnuplot script per PNG.
#include "tools/plot_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace troupe {

using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class LineReader {
 public:
  LineReader(const json& line, const std::string& where) : line_(line), where_(where) {}
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(where_ + ": " + what);
  }
  bool has(const char* key) const { return line_.contains(key); }
  double number(const char* key) const {
    if (!line_.contains(key)) fail(std::string("has no \"") + key + "\"");
    const json& v = line_.at(key);
    if (!v.is_number()) fail(std::string("\"") + key + "\" must be a number: " + v.dump());
    return v.get<double>();
  }
  std::int64_t integer(const char* key) const {
    if (!line_.contains(key)) fail(std::string("has no \"") + key + "\"");
    const json& v = line_.at(key);
    if (!v.is_number_integer())
      fail(std::string("\"") + key + "\" must be an integer: " + v.dump());
    return v.get<std::int64_t>();
  }
  std::vector<std::vector<std::int64_t>> counts(const char* key) const {
    if (!line_.contains(key)) return {};
    try {
      return line_.at(key).get<std::vector<std::vector<std::int64_t>>>();
    } catch (const json::exception&) {
      fail(std::string("\"") + key +
           "\" must be a list of integer lists (per layer, per expert): " + line_.at(key).dump());
    }
  }

 private:
  const json& line_;
  std::string where_;
};

std::string run_label(const std::filesystem::path& path) {
  // runs/<config>/metrics.jsonl is what `troupe train` writes by default: the folder names the run.
  if (path.stem() == "metrics" && path.has_parent_path() && !path.parent_path().filename().empty())
    return path.parent_path().filename().string();
  return path.stem().string();
}

double axis_value(PlotAxis x, std::int64_t step, double elapsed_s) {
  return x == PlotAxis::step ? static_cast<double>(step) : elapsed_s;
}

// Header of a PNG plot; titles and legends are noenhanced so run names print as written.
std::string png_header(const std::string& path, int width, int height) {
  return "set terminal pngcairo size " + std::to_string(width) + "," + std::to_string(height) +
         " noenhanced font 'sans,10'\nset output " + gnuplot_quote(path) +
         "\nset grid\nset key outside right top\nset datafile missing 'NaN'\n";
}

// One panel per axis (step, wall time) with a line per run; `series` gives a run's rows. A run
// without points on an axis (eval lines written before they carried elapsed_s) is left out.
template <class Series>
std::string two_axis_plot(const std::vector<MetricsRun>& runs, const std::string& path,
                          const std::string& what, const std::string& block, Series series,
                          const std::string& style) {
  std::ostringstream script;
  script << png_header(path, 1400, 500);
  script << "set multiplot layout 1,2 title " << gnuplot_quote(what) << "\n";
  for (PlotAxis x : {PlotAxis::step, PlotAxis::wall_time}) {
    std::string clauses;
    for (std::size_t r = 0; r < runs.size(); ++r) {
      const GnuplotRows rows = series(runs[r], x);
      if (rows.empty()) continue;
      const std::string name = block + std::to_string(r) + (x == PlotAxis::step ? "s" : "t");
      script << gnuplot_datablock(name, rows);
      clauses += (clauses.empty() ? "$" : ", $") + name + " using 1:2 " + style + " lc " +
                 std::to_string(r + 1) + " title " + gnuplot_quote(runs[r].label);
    }
    script << "set xlabel " << gnuplot_quote(x == PlotAxis::step ? "step" : "wall time (s)")
           << "\nset ylabel " << gnuplot_quote(what) << "\n";
    if (clauses.empty())
      script << "set label 1 'no points' at graph 0.5,0.5 center\nplot [0:1][0:1] NaN notitle\n"
                "unset label 1\n";
    else
      script << "plot " << clauses << "\n";
  }
  script << "unset multiplot\n";
  return script.str();
}

std::string metric_label(const std::vector<MetricsRun>& runs) {
  std::string label;
  for (const auto& run : runs)
    if (label.find(run.eval_metric) == std::string::npos)
      label += (label.empty() ? "" : " / ") + run.eval_metric;
  return "evaluation " + label;
}

std::string learning_rate_plot(const std::vector<MetricsRun>& runs, const std::string& path) {
  std::ostringstream script;
  script << png_header(path, 1000, 450);
  for (std::size_t r = 0; r < runs.size(); ++r)
    script << gnuplot_datablock("lr" + std::to_string(r), learning_rate_series(runs[r]));
  script << "set title 'learning rate'\nset xlabel 'step'\nset ylabel 'learning rate'\n"
            "set format y '%.1e'\nplot ";
  for (std::size_t r = 0; r < runs.size(); ++r)
    script << (r ? ", " : "") << "$lr" << r << " using 1:2 with lines lw 2 lc " << r + 1
           << " title " << gnuplot_quote(runs[r].label);
  script << "\n";
  return script.str();
}

// Heat maps stacked on the left (one per MoE layer), dropped choices per step on the right.
std::string expert_load_plot(const MetricsRun& run, const std::string& path) {
  const std::size_t layers = run.train.front().exp_counts.size();
  std::ostringstream script;
  script << png_header(path, 1400, static_cast<int>(250 + 250 * layers));
  script << "unset key\nunset grid\n" << gnuplot_datablock("dropped", dropped_series(run));
  std::vector<ExpertLoad> loads;
  for (std::size_t l = 0; l < layers; ++l) {
    loads.push_back(expert_load(run, l, 400));
    script << gnuplot_datablock("load" + std::to_string(l), loads.back().tokens);
  }
  const double panel = 0.9 / static_cast<double>(layers);
  script << "set multiplot title " << gnuplot_quote("expert load: " + run.label) << "\n";
  for (std::size_t l = 0; l < layers; ++l) {
    const ExpertLoad& load = loads[l];
    script << "set size 0.68," << panel << "\nset origin 0," << 0.9 - panel * (l + 1) << "\n"
           << "set title " << gnuplot_quote("MoE layer " + std::to_string(l)) << "\n"
           << "set xlabel 'step'\nset ylabel 'expert'\nset cblabel 'tokens per step'\n"
           << "set palette rgbformulae 30,31,32\nset yrange [-0.5:" << load.tokens.size() - 0.5
           << "]\nset ytics 1\n"
           << "set xrange [" << load.first_step - load.step_width / 2 << ":"
           << load.first_step +
                  (static_cast<double>(load.tokens.front().size()) - 0.5) * load.step_width
           << "]\n"
           << "plot $load" << l << " matrix using (" << load.first_step << " + $1 * "
           << load.step_width << "):2:3 with image\n";
  }
  script << "set size 0.3,0.9\nset origin 0.69,0\nset title 'dropped choices (all layers)'\n"
            "set xlabel 'step'\nset ylabel 'dropped per step'\nset autoscale x\nset yrange [0:*]\n"
            "set ytics auto\n"
            "set grid\nplot $dropped using 1:2 with lines lw 1.5 lc 7\nunset multiplot\n";
  return script.str();
}

}  // namespace

MetricsRun read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("read_metrics: cannot open '" + path + "'");
  MetricsRun run;
  run.label = run_label(path);
  std::string text;
  for (std::size_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "read_metrics('" + path + "') line " + std::to_string(number);
    json line;
    try {
      line = json::parse(text);
    } catch (const json::parse_error& e) {
      throw std::invalid_argument(where + ": not JSON (" + e.what() + ")");
    }
    if (!line.is_object() || !line.contains("type") || !line.at("type").is_string())
      throw std::invalid_argument(where + ": expected an object with a string \"type\"");
    const LineReader field(line, where);
    const std::string type = line.at("type").get<std::string>();
    if (type == "train") {
      TrainPoint p;
      p.step = field.integer("step");
      p.elapsed_s = field.number("elapsed_s");
      p.loss = field.number("loss");
      p.lr = field.number("lr");
      p.exp_counts = field.counts("exp_counts");
      if (field.has("dropped")) p.dropped = field.integer("dropped");
      if (!run.train.empty() && p.exp_counts.size() != run.train.front().exp_counts.size())
        field.fail("has " + std::to_string(p.exp_counts.size()) +
                   " MoE layers in \"exp_counts\"; the first train line has " +
                   std::to_string(run.train.front().exp_counts.size()));
      run.train.push_back(std::move(p));
    } else if (type == "eval") {
      EvalPoint p;
      p.step = field.integer("step");
      p.elapsed_s = field.has("elapsed_s") ? field.number("elapsed_s") : kNaN;
      p.loss = field.number("loss");
      if (field.has("bits_per_char")) {
        run.eval_metric = "bits_per_char";
        p.metric = field.number("bits_per_char");
      } else {
        p.metric = field.number("accuracy");
      }
      run.eval.push_back(p);
    }  // other line types are not plotted
  }
  if (run.train.empty())
    throw std::invalid_argument("read_metrics('" + path +
                                "'): no {\"type\": \"train\"} lines: not a troupe metrics file?");
  return run;
}

GnuplotRows train_loss_series(const MetricsRun& run, PlotAxis x) {
  GnuplotRows rows;
  for (const auto& p : run.train) rows.push_back({axis_value(x, p.step, p.elapsed_s), p.loss});
  return rows;
}

GnuplotRows eval_series(const MetricsRun& run, PlotAxis x) {
  GnuplotRows rows;
  for (const auto& p : run.eval) {
    const double v = axis_value(x, p.step, p.elapsed_s);
    if (!std::isnan(v)) rows.push_back({v, p.metric});
  }
  return rows;
}

GnuplotRows learning_rate_series(const MetricsRun& run) {
  GnuplotRows rows;
  for (const auto& p : run.train) rows.push_back({static_cast<double>(p.step), p.lr});
  return rows;
}

GnuplotRows dropped_series(const MetricsRun& run) {
  GnuplotRows rows;
  for (const auto& p : run.train)
    rows.push_back({static_cast<double>(p.step), static_cast<double>(p.dropped)});
  return rows;
}

ExpertLoad expert_load(const MetricsRun& run, std::size_t layer, std::size_t max_columns) {
  if (run.train.empty() || max_columns == 0) return {};
  const std::size_t n = run.train.size();
  const std::size_t group = (n + max_columns - 1) / max_columns;
  const std::size_t columns = (n + group - 1) / group;
  std::size_t experts = 0;
  for (const auto& p : run.train) {
    if (layer >= p.exp_counts.size())
      throw std::invalid_argument("expert_load: step " + std::to_string(p.step) + " of run '" +
                                  run.label + "' has no MoE layer " + std::to_string(layer) +
                                  " (it has " + std::to_string(p.exp_counts.size()) + ")");
    experts = std::max(experts, p.exp_counts[layer].size());
  }
  ExpertLoad out;
  out.tokens.assign(experts, std::vector<double>(columns, 0.0));
  for (std::size_t c = 0; c < columns; ++c) {
    const std::size_t begin = c * group, end = std::min(n, begin + group);
    for (std::size_t i = begin; i < end; ++i)
      for (std::size_t e = 0; e < run.train[i].exp_counts[layer].size(); ++e)
        out.tokens[e][c] += static_cast<double>(run.train[i].exp_counts[layer][e]);
    for (std::size_t e = 0; e < experts; ++e) out.tokens[e][c] /= static_cast<double>(end - begin);
  }
  // Columns are centred on their group's steps (the mean step of a group).
  const double first = static_cast<double>(run.train.front().step);
  const double last = static_cast<double>(run.train.back().step);
  out.step_width =
      n > 1 ? (last - first) / static_cast<double>(n - 1) * static_cast<double>(group) : 1.0;
  out.first_step =
      first + (out.step_width / static_cast<double>(group)) * (static_cast<double>(group) - 1) / 2;
  return out;
}

std::vector<std::string> plot_metrics(const std::vector<std::string>& paths,
                                      const std::string& out_dir) {
  std::vector<MetricsRun> runs;
  std::map<std::string, int> seen;
  for (const auto& path : paths) {
    runs.push_back(read_metrics(path));
    if (++seen[runs.back().label] > 1)  // two ".../metrics.jsonl" of equally named folders
      runs.back().label += " (" + std::to_string(seen[runs.back().label]) + ")";
  }
  std::filesystem::create_directories(out_dir);
  const std::filesystem::path dir(out_dir);
  std::vector<std::string> written;
  auto draw = [&written](const std::string& path, const std::string& script) {
    run_gnuplot(script);
    written.push_back(path);
  };
  const std::string loss = (dir / "loss.png").string();
  draw(loss,
       two_axis_plot(runs, loss, "training loss", "loss", train_loss_series, "with lines lw 1"));
  const bool any_eval =
      std::any_of(runs.begin(), runs.end(), [](const MetricsRun& r) { return !r.eval.empty(); });
  if (any_eval) {
    const std::string eval = (dir / "eval.png").string();
    draw(eval, two_axis_plot(runs, eval, metric_label(runs), "eval", eval_series,
                             "with linespoints lw 2 pt 7"));
  }
  const std::string lr = (dir / "lr.png").string();
  draw(lr, learning_rate_plot(runs, lr));
  for (const auto& run : runs) {
    const auto& layers = run.train.front().exp_counts;
    if (layers.empty() || layers.front().empty()) continue;  // a dense run
    std::string name = run.label;
    std::replace_if(
        name.begin(), name.end(), [](char c) { return !std::isalnum(c) && c != '_' && c != '-'; },
        '_');
    const std::string path = (dir / ("expert_load_" + name + ".png")).string();
    draw(path, expert_load_plot(run, path));
  }
  return written;
}

}  // namespace troupe
