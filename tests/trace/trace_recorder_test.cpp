// TraceRecorder: the Chrome trace it writes from several threads parses, names every track,
// pairs each flow start with its end, and keeps nested spans inside their parents; a rank's
// recorder writes its process as the rank and its times on rank 0's clock.
#include <catch2/catch.hpp>

#include "test_util/temp_dir.hpp"

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "trace/trace_reader.hpp"
#include "trace/trace_recorder.hpp"

using namespace troupe;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json write_and_parse(const TraceRecorder& recorder, const fs::path& path) {
  recorder.write_chrome_trace(path.string());
  std::ifstream in(path);
  return json::parse(in);
}

std::vector<json> events_with(const json& trace, const std::string& phase) {
  std::vector<json> out;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == phase) out.push_back(e);
  return out;
}

// tid of each named track, from the thread_name metadata.
std::map<std::string, int> thread_ids(const json& trace) {
  std::map<std::string, int> ids;
  for (const auto& e : events_with(trace, "M"))
    if (e.at("name") == "thread_name") {
      const std::string name = e.at("args").at("name");
      CHECK(ids.count(name) == 0);
      ids[name] = e.at("tid");
    }
  return ids;
}

}  // namespace

TEST_CASE("a recorder used from several threads writes a valid Chrome trace") {
  constexpr int threads = 4, iterations = 25;
  test::TempDir dir("trace_recorder_threads");
  TraceRecorder recorder("test process");
  std::vector<std::thread> workers;
  for (int k = 0; k < threads; ++k) {
    workers.emplace_back([&recorder, k] {
      const std::string track = "worker." + std::to_string(k);
      const std::string peer = "worker." + std::to_string((k + 1) % threads);
      for (int i = 0; i < iterations; ++i) {
        ScopedSpan outer(recorder, track, "expert_ffn", trace_category::compute, {{"i", i}});
        SpanId inner = recorder.begin_span(track, "all_to_all", trace_category::comm);
        const double sent = recorder.now_us();
        recorder.message(track, peer, "tokens", i, 100 * k + i, sent, recorder.now_us());
        recorder.end_span(inner);
      }
    });
  }
  for (auto& w : workers) w.join();
  const json trace = write_and_parse(recorder, dir.path / "out" / "trace.json");
  CHECK(std::distance(fs::directory_iterator(dir.path / "out"), fs::directory_iterator()) == 1);

  CHECK(trace.at("displayTimeUnit") == "ms");
  const auto metadata = events_with(trace, "M");
  CHECK(std::count_if(metadata.begin(), metadata.end(), [](const json& e) {
          return e.at("name") == "process_name" && e.at("args").at("name") == "test process";
        }) == 1);
  const auto tids = thread_ids(trace);
  REQUIRE(tids.size() == threads);
  std::set<int> distinct;
  for (const auto& [name, tid] : tids) distinct.insert(tid);
  CHECK(distinct.size() == threads);

  // Every comm span lies inside a compute span of its own track (the nesting it was made with).
  std::map<std::string, int> spans_by_category;
  const auto slices = events_with(trace, "X");
  for (const auto& e : slices) {
    ++spans_by_category[e.at("cat")];
    CHECK(e.at("dur").get<double>() >= 0);
    if (e.at("cat") != "comm") continue;
    const double begin = e.at("ts"), end = begin + e.at("dur").get<double>();
    CHECK(std::any_of(slices.begin(), slices.end(), [&](const json& p) {
      return p.at("tid") == e.at("tid") && p.at("cat") == "compute" && p.at("ts") <= begin &&
             p.at("ts").get<double>() + p.at("dur").get<double>() >= end;
    }));
  }
  CHECK(spans_by_category["compute"] == threads * iterations);
  CHECK(spans_by_category["comm"] == threads * iterations);
  CHECK(spans_by_category["message"] == 2 * threads * iterations);  // one slice at each end

  // Each flow id has exactly one start on the sender and one end on the receiver.
  std::map<std::uint64_t, json> starts, ends;
  for (const auto& e : events_with(trace, "s")) CHECK(starts.emplace(e.at("id"), e).second);
  for (const auto& e : events_with(trace, "f")) CHECK(ends.emplace(e.at("id"), e).second);
  REQUIRE(starts.size() == threads * iterations);
  REQUIRE(ends.size() == starts.size());
  std::map<int, int> worker_of;  // tid -> k
  for (const auto& [name, tid] : tids) worker_of[tid] = std::stoi(name.substr(name.find('.') + 1));
  std::map<int, std::set<std::int64_t>> micro_batches_sent;
  for (const auto& [id, s] : starts) {
    REQUIRE(ends.count(id) == 1);
    const json& f = ends.at(id);
    CHECK(s.at("cat") == "message");
    CHECK(f.at("cat") == "message");
    CHECK(s.at("name") == "tokens");
    CHECK(f.at("name") == "tokens");
    CHECK(f.at("bp") == "e");
    CHECK(s.at("ts") <= f.at("ts"));
    // Worker k sends to worker k + 1.
    const int sender = worker_of.at(s.at("tid"));
    CHECK(f.at("tid") == tids.at("worker." + std::to_string((sender + 1) % threads)));
    // A zero-length "send" slice sits under the flow start, carrying the message's args.
    auto slice = std::find_if(slices.begin(), slices.end(), [&](const json& e) {
      return e.at("tid") == s.at("tid") && e.at("ts") == s.at("ts") &&
             e.at("name") == "send tokens";
    });
    REQUIRE(slice != slices.end());
    CHECK(slice->at("dur") == 0);
    const json& args = slice->at("args");
    CHECK(args.at("type") == "tokens");
    const std::int64_t micro_batch = args.at("micro_batch");
    CHECK(args.at("bytes") == 100 * sender + micro_batch);
    micro_batches_sent[sender].insert(micro_batch);
  }
  REQUIRE(micro_batches_sent.size() == threads);
  for (const auto& [k, batches] : micro_batches_sent) CHECK(batches.size() == iterations);
}

TEST_CASE("a disabled recorder records nothing until enabled") {
  test::TempDir dir("trace_recorder_disabled");
  TraceRecorder recorder("p", /*enabled=*/false);
  CHECK(recorder.begin_span("gate.l0", "router", trace_category::compute) == no_span);
  recorder.end_span(no_span);
  { ScopedSpan span(recorder, "gate.l0", "router", trace_category::compute); }
  recorder.message("gate.l0", "trainer", "loss", 0, 4, 1.0, 2.0);
  json trace = write_and_parse(recorder, dir.path / "off.json");
  REQUIRE(trace.at("traceEvents").size() == 1);  // process_name only
  CHECK(trace.at("traceEvents")[0].at("name") == "process_name");

  recorder.set_enabled(true);
  SpanId id = recorder.begin_span("gate.l0", "router", trace_category::compute);
  CHECK(id != no_span);
  recorder.set_enabled(false);
  recorder.end_span(id);  // ends although recording is off now
  trace = write_and_parse(recorder, dir.path / "on.json");
  CHECK(events_with(trace, "X").size() == 1);
  CHECK(thread_ids(trace).count("gate.l0") == 1);
}

// (No ';' or '[' in test names: catch_discover_tests would split the name or read a tag.)
TEST_CASE("span times are microseconds of a steady clock, and open spans are marked unfinished") {
  test::TempDir dir("trace_recorder_timing");
  TraceRecorder recorder;
  SpanId open = recorder.begin_span("trainer", "step", trace_category::optimizer, {{"step", 3}});
  {
    ScopedSpan span(recorder, "trainer", "sleep", trace_category::data);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // sleeps at least this long
  }
  const json trace = write_and_parse(recorder, dir.path / "t.json");
  const auto slices = events_with(trace, "X");
  REQUIRE(slices.size() == 2);
  // Sorted by start: the open span began first.
  CHECK(slices[0].at("name") == "step");
  CHECK(slices[0].at("args").at("unfinished") == true);
  CHECK(slices[0].at("args").at("step") == 3);
  CHECK(slices[1].at("name") == "sleep");
  CHECK(slices[1].at("dur").get<double>() >= 2000.0);
  CHECK(slices[1].at("cat") == "data");
  recorder.end_span(open);
}

TEST_CASE("misuse of the recorder throws with a clear message") {
  TraceRecorder recorder;
  SpanId id = recorder.begin_span("a", "x", trace_category::compute);
  recorder.end_span(id);
  CHECK_THROWS_WITH(recorder.end_span(id), Catch::Contains("is not open"));
  CHECK_THROWS_AS(recorder.begin_span("", "x", trace_category::compute), std::invalid_argument);
  CHECK_THROWS_AS(recorder.begin_span("a", "x", trace_category::compute, json::array({1})),
                  std::invalid_argument);
  CHECK_THROWS_WITH(recorder.message("a", "b", "grads", 0, 8, 5.0, 4.0),
                    Catch::Contains("before it was sent"));
  CHECK_THROWS_AS(recorder.message("a", "", "grads", 0, 8, 4.0, 5.0), std::invalid_argument);
  CHECK_THROWS_WITH(recorder.set_rank(2, 2), Catch::Contains("rank 2 of world size 2"));
  CHECK_THROWS_AS(recorder.set_rank(-1, 2), std::invalid_argument);
  CHECK_THROWS_AS(recorder.set_clock_offset(0, -1), std::invalid_argument);
  CHECK_THROWS_AS(recorder.set_clock_offset(std::nan(""), 1), std::invalid_argument);
}

TEST_CASE("a rank's recorder writes its tracks as process R + 1, named and sorted by the rank") {
  test::TempDir dir("trace_recorder_rank");
  TraceRecorder recorder("troupe demo");
  recorder.set_rank(2, 3);  // pid 3: not 1, the single-process pid
  recorder.message("gate.l0", "comm.ep", "tokens", 0, 64, 1.0, 2.0);
  { ScopedSpan span(recorder, "comm.ep", "all_to_all_dispatch", trace_category::comm); }
  const json trace = write_and_parse(recorder, dir.path / "rank2.json");
  for (const auto& e : trace.at("traceEvents")) CHECK(e.at("pid") == 3);
  const auto metadata = events_with(trace, "M");
  REQUIRE(metadata.size() == 4);  // process name and sort index, two thread names
  CHECK(metadata[0].at("name") == "process_name");
  CHECK(metadata[0].at("args").at("name") == "troupe demo rank 2");
  CHECK(metadata[1].at("name") == "process_sort_index");
  CHECK(metadata[1].at("args").at("sort_index") == 2);
  CHECK(trace.at("otherData") == json{{"rank", 2}, {"world_size", 3}});  // no clock offset yet

  const ChromeTrace read = read_chrome_trace((dir.path / "rank2.json").string());
  REQUIRE(read.rank.has_value());
  CHECK(read.rank->rank == 2);
  CHECK(read.rank->world_size == 3);
  CHECK_FALSE(read.clock.has_value());
  REQUIRE(read.tracks.size() == 2);
  CHECK(read.tracks[0].pid == 3);
  CHECK(read.tracks[0].name == "gate.l0");  // one process: tracks keep their own names

  // Without a rank the trace is the single-process one: pid 1, no otherData.
  TraceRecorder single("troupe demo");
  single.message("gate.l0", "trainer", "loss", 0, 4, 1.0, 2.0);
  const json plain = write_and_parse(single, dir.path / "single.json");
  for (const auto& e : plain.at("traceEvents")) CHECK(e.at("pid") == 1);
  CHECK_FALSE(plain.contains("otherData"));
  CHECK(events_with(plain, "M")[0].at("args").at("name") == "troupe demo");
}

TEST_CASE("a clock offset moves every timestamp onto rank 0's clock when written") {
  test::TempDir dir("trace_recorder_clock");
  const auto steady_us = [] {
    return std::chrono::duration<double, std::micro>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const double before = steady_us();
  TraceRecorder recorder;
  const double after = steady_us();
  recorder.set_rank(1, 2);
  // Message times are given, so the expected times are exact up to the recorder's start.
  recorder.message("gate.l0", "expert.l0", "tokens", 0, 64, 10.0, 12.5);
  const json local = write_and_parse(recorder, dir.path / "local.json");
  CHECK(events_with(local, "s").at(0).at("ts") == 10.0);  // no offset yet: since the start

  constexpr double offset_us = -5e6, rtt_us = 40;
  recorder.set_clock_offset(offset_us, rtt_us);
  const json shifted = write_and_parse(recorder, dir.path / "shifted.json");
  CHECK(shifted.at("otherData") == json{{"rank", 1},
                                        {"world_size", 2},
                                        {"clock_offset_us", offset_us},
                                        {"clock_rtt_us", rtt_us}});
  const double sent = events_with(shifted, "s").at(0).at("ts");
  const double received = events_with(shifted, "f").at(0).at("ts");
  // The recorder started between `before` and `after` on this process's steady clock; written
  // times are that start plus the offset plus the recorded time. Times are kept to the
  // nanosecond, so their difference is exact to 1 ns.
  CHECK(sent >= before + offset_us + 10.0 - 0.001);
  CHECK(sent <= after + offset_us + 10.0 + 0.001);
  CHECK(received - sent == Approx(2.5).margin(0.001));
  // Every timed event moved by the same amount: the slices sit under their flows.
  for (const auto& e : events_with(shifted, "X"))
    CHECK((e.at("ts") == sent || e.at("ts") == received));

  const ChromeTrace read = read_chrome_trace((dir.path / "shifted.json").string());
  REQUIRE(read.clock.has_value());
  CHECK(read.clock->offset_us == offset_us);
  CHECK(read.clock->rtt_us == rtt_us);
  REQUIRE(read.messages.size() == 1);
  CHECK(read.messages[0].send_us == sent);
}
