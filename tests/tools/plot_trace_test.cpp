// troupe plot on a trace: step windows come from optimizer rounds, the critical path follows
// traced messages (and, where a wait has none, the work that ended last), the PNG is real, and
// bad input is named.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "test_util/png.hpp"
#include "test_util/temp_dir.hpp"
#include "tools/plot_trace.hpp"

using namespace troupe;

namespace {

// Three actors over two steps (times in us):
//   step 1: a computes [0,10) and sends to b (received 12); b computes [12,20) and sends to opt
//           (received 21); opt updates [22,25).
//   step 2: a computes [30,40); b computes [45,50); opt updates [52,55); no traced messages.
const char* const two_steps = R"({"traceEvents": [
  {"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"a"}},
  {"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"b"}},
  {"ph":"M","name":"thread_name","pid":1,"tid":3,"args":{"name":"opt"}},
  {"ph":"X","name":"fwd","cat":"compute","pid":1,"tid":1,"ts":0,"dur":10},
  {"ph":"s","name":"work","cat":"message","pid":1,"tid":1,"ts":10,"id":1},
  {"ph":"f","name":"work","cat":"message","pid":1,"tid":2,"ts":12,"id":1},
  {"ph":"X","name":"bwd","cat":"compute","pid":1,"tid":2,"ts":12,"dur":8},
  {"ph":"s","name":"grads","cat":"message","pid":1,"tid":2,"ts":20,"id":2},
  {"ph":"f","name":"grads","cat":"message","pid":1,"tid":3,"ts":21,"id":2},
  {"ph":"X","name":"adam","cat":"optimizer","pid":1,"tid":3,"ts":22,"dur":3},
  {"ph":"X","name":"fwd","cat":"compute","pid":1,"tid":1,"ts":30,"dur":10},
  {"ph":"X","name":"bwd","cat":"compute","pid":1,"tid":2,"ts":45,"dur":5},
  {"ph":"X","name":"adam","cat":"optimizer","pid":1,"tid":3,"ts":52,"dur":3}
]})";

std::vector<std::pair<std::size_t, std::pair<double, double>>> spans(
    const std::vector<TimelineSpan>& v) {
  std::vector<std::pair<std::size_t, std::pair<double, double>>> out;
  for (const auto& s : v) out.push_back({s.track, {s.start_us, s.end_us}});
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> hops(const std::vector<TraceMessage>& v) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (const auto& m : v) out.emplace_back(m.from, m.to);
  return out;
}

}  // namespace

TEST_CASE("step windows end with each round of optimizer spans") {
  test::TempDir dir("plot_trace_steps");
  const ChromeTrace trace = read_chrome_trace(dir.write("t.json", two_steps));
  const auto windows = step_windows(trace);
  REQUIRE(windows.size() == 2);
  CHECK(windows[0].step == 1);
  CHECK(windows[0].start_us == 0);
  CHECK(windows[0].end_us == 25);
  CHECK(windows[1].step == 2);
  CHECK(windows[1].start_us == 25);
  CHECK(windows[1].end_us == 55);
}

TEST_CASE("the critical path follows messages back from the work that ended last") {
  test::TempDir dir("plot_trace_critical");
  const ChromeTrace trace = read_chrome_trace(dir.write("t.json", two_steps));
  // Step 0 means the middle step: of two, the first.
  const StepTimeline first = step_timeline(trace, 0);
  CHECK(first.window.step == 1);
  CHECK(first.tracks == std::vector<std::string>{"a", "b", "opt"});
  CHECK(first.spans.size() == 3);
  CHECK(first.messages.size() == 2);
  CHECK(spans(first.critical) ==
        decltype(spans(first.critical)){{2, {22, 25}}, {1, {12, 20}}, {0, {0, 10}}});
  CHECK(hops(first.critical_messages) ==
        std::vector<std::pair<std::size_t, std::size_t>>{{1, 2}, {0, 1}});
  CHECK(first.critical_messages[0].type == "grads");

  // Without traced messages, each wait is blamed on the work that ended last before it.
  const StepTimeline second = step_timeline(trace, 2);
  CHECK(spans(second.critical) ==
        decltype(spans(second.critical)){{2, {52, 55}}, {1, {45, 50}}, {0, {30, 40}}});
  CHECK(hops(second.critical_messages) ==
        std::vector<std::pair<std::size_t, std::size_t>>{{1, 2}, {0, 1}});
  CHECK(second.critical_messages[0].type == "(untraced)");
}

TEST_CASE("plot_trace writes a PNG timeline of the chosen step") {
  test::TempDir dir("plot_trace_png");
  const std::string path = plot_trace(dir.write("t.json", two_steps), dir.file("plots"), 2);
  CHECK(path == dir.file("plots/timeline_step2.png"));
  const test::PngHeader png = test::read_png_header(path);
  CHECK(png.valid);
  CHECK(png.width == 1400);
  CHECK(png.height == 160 + 30 * 3);
  CHECK(png.bytes > 5000);
}

TEST_CASE("plot_trace names what is wrong with its input") {
  test::TempDir dir("plot_trace_errors");
  const std::string trace = dir.write("t.json", two_steps);
  CHECK_THROWS_WITH(plot_trace(trace, dir.file("out"), 3),
                    Catch::Contains("step 3 is not in the trace; it has steps 1 to 2"));
  CHECK_THROWS_WITH(plot_trace(dir.write("n.json", R"([{"ph":"X","name":"f","cat":"compute",
      "ts":0,"dur":1}])"),
                               dir.file("out"), 0),
                    Catch::Contains("no optimizer spans"));
  CHECK_THROWS_WITH(plot_trace(dir.write("g.json", "{\"traceEvents\": ["), dir.file("out"), 0),
                    Catch::Contains("not valid JSON"));
  CHECK_THROWS_AS(plot_trace(dir.file("missing.json"), dir.file("out"), 0), std::runtime_error);
}
