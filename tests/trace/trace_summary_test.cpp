// summarize_chrome_trace on hand-written traces whose busy, idle, overlap and hidden all-to-all
// times are derived by hand in the comments, and on a trace written by TraceRecorder;
// summarize_rank_traces on two ranks' files.
#include <catch2/catch.hpp>

#include "test_util/temp_dir.hpp"

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "trace/trace_recorder.hpp"
#include "trace/trace_summary.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

const TrackSummary& track(const TraceSummary& s, const char* name) {
  for (const auto& t : s.tracks)
    if (t.name == name) return t;
  FAIL("no track " << name);
  throw std::logic_error("unreachable");
}

// Two actors exchanging one message each way, in the layout TraceRecorder writes. Times in us:
//   gate.l0   (tid 1): compute [0,4) with nested compute [2,3); comm [10,14); sends tokens at 4;
//                      receives grads at 30.
//   expert.l0 (tid 2): receives tokens at 6; compute [6,16) with nested [8,12); comm [20,26);
//                      sends grads at 20.
//   trainer   (tid 3): data [26,29).
// gate: busy = 4 + 4 = 8 (the nested [2,3) counts once), extent [0,30] -> idle 22.
// expert: busy = 10 + 6 = 16, extent [6,26] -> idle 4.  trainer: busy 3, idle 0.
// comm union [10,14) u [20,26) = 10; compute union [0,4) u [6,16); their overlap [10,14) = 4,
// so the overlap fraction is 0.4. Wall [0,30] = 30.
const char* two_actor_trace = R"({"displayTimeUnit": "ms", "traceEvents": [
  {"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "troupe"}},
  {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "gate.l0"}},
  {"ph": "M", "pid": 1, "tid": 2, "name": "thread_name", "args": {"name": "expert.l0"}},
  {"ph": "M", "pid": 1, "tid": 3, "name": "thread_name", "args": {"name": "trainer"}},
  {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 4, "name": "router", "cat": "compute"},
  {"ph": "X", "pid": 1, "tid": 1, "ts": 2, "dur": 1, "name": "softmax", "cat": "compute"},
  {"ph": "X", "pid": 1, "tid": 1, "ts": 4, "dur": 0, "name": "send tokens", "cat": "message"},
  {"ph": "s", "pid": 1, "tid": 1, "ts": 4, "name": "tokens", "cat": "message", "id": 1},
  {"ph": "X", "pid": 1, "tid": 2, "ts": 6, "dur": 0, "name": "recv tokens", "cat": "message"},
  {"ph": "f", "pid": 1, "tid": 2, "ts": 6, "name": "tokens", "cat": "message", "id": 1, "bp": "e"},
  {"ph": "X", "pid": 1, "tid": 2, "ts": 6, "dur": 10, "name": "ffn", "cat": "compute"},
  {"ph": "X", "pid": 1, "tid": 2, "ts": 8, "dur": 4, "name": "gemm", "cat": "compute"},
  {"ph": "X", "pid": 1, "tid": 1, "ts": 10, "dur": 4, "name": "all_to_all", "cat": "comm"},
  {"ph": "X", "pid": 1, "tid": 2, "ts": 20, "dur": 0, "name": "send grads", "cat": "message"},
  {"ph": "s", "pid": 1, "tid": 2, "ts": 20, "name": "grads", "cat": "message", "id": 2},
  {"ph": "X", "pid": 1, "tid": 2, "ts": 20, "dur": 6, "name": "reduce", "cat": "comm"},
  {"ph": "X", "pid": 1, "tid": 3, "ts": 26, "dur": 3, "name": "load", "cat": "data"},
  {"ph": "X", "pid": 1, "tid": 1, "ts": 30, "dur": 0, "name": "recv grads", "cat": "message"},
  {"ph": "f", "pid": 1, "tid": 1, "ts": 30, "name": "grads", "cat": "message", "id": 2, "bp": "e"}
]})";

}  // namespace

// All expected values are sums of small integers, exact in double: compared with ==.
TEST_CASE("summary of a hand-written two-actor trace") {
  test::TempDir dir("trace_summary_two_actor");
  const TraceSummary s = summarize_chrome_trace(dir.write("t.json", two_actor_trace));
  REQUIRE(s.tracks.size() == 3);
  CHECK(s.tracks[0].name == "gate.l0");  // tid order
  CHECK(s.tracks[1].name == "expert.l0");
  CHECK(s.tracks[2].name == "trainer");

  const TrackSummary& gate = track(s, "gate.l0");
  CHECK(gate.first_us == 0);
  CHECK(gate.last_us == 30);
  CHECK(gate.busy_us == 8);
  CHECK(gate.idle_us == 22);
  CHECK(gate.busy_by_category_us.at("compute") == 4);
  CHECK(gate.busy_by_category_us.at("comm") == 4);
  CHECK(gate.busy_by_category_us.count("message") == 0);  // zero-length slices are not busy
  CHECK(gate.messages_sent == 1);
  CHECK(gate.messages_received == 1);
  CHECK(gate.sent_by_type == std::map<std::string, std::int64_t>{{"tokens", 1}});
  CHECK(gate.received_by_type == std::map<std::string, std::int64_t>{{"grads", 1}});

  const TrackSummary& expert = track(s, "expert.l0");
  CHECK(expert.busy_us == 16);
  CHECK(expert.idle_us == 4);
  CHECK(expert.sent_by_type == std::map<std::string, std::int64_t>{{"grads", 1}});
  CHECK(expert.received_by_type == std::map<std::string, std::int64_t>{{"tokens", 1}});

  const TrackSummary& trainer = track(s, "trainer");
  CHECK(trainer.busy_us == 3);
  CHECK(trainer.idle_us == 0);
  CHECK(trainer.messages_sent == 0);

  CHECK(s.wall_us == 30);
  CHECK(s.comm_us == 10);
  CHECK(s.comm_overlapped_us == 4);
  CHECK(s.comm_overlap_fraction == Approx(0.4).epsilon(1e-12));  // 4/10 is inexact in binary
  // The all_to_all span [10,14) lies under the expert's compute [6,16), another track.
  CHECK(s.all_to_all_us == 4);
  CHECK(s.all_to_all_hidden_us == 4);
  CHECK(s.all_to_all_hidden_fraction == 1);
  CHECK_FALSE(s.rank.has_value());

  const std::string table = format_summary(s);
  INFO(table);
  // gate.l0: busy 0.008 ms, idle 0.022 ms, 8/30 = 26.7% busy, 1 sent, 1 received.
  CHECK_THAT(table, Catch::Contains("gate.l0        0.008      0.022   26.7%      1      1"));
  CHECK_THAT(table, Catch::Contains("expert.l0: sent grads x1; received tokens x1;"));
  CHECK_THAT(table, Catch::Contains("wall 0.030 ms; comm 0.010 ms, 40.0% overlapped by compute"));
  CHECK_THAT(table,
             Catch::Contains("all-to-all 0.004 ms, 100.0% hidden under compute on other tracks"));
}

TEST_CASE("all-to-all is hidden only by compute on another track of the same process") {
  test::TempDir dir("trace_summary_all_to_all");
  // Process 1 (a rank):
  //   comm.ep (tid 1): all_to_all_dispatch [0,10), all_to_all_combine [30,40) and a second
  //     dispatch [32,34) inside it (counted once); all_reduce_gradients [50,60) is comm but not
  //     an all-to-all; compute "permute" [35,40) is on the exchange's own track: it hides nothing.
  //   expert (tid 2): compute [5,20) and [36,38).
  // Process 2: gate (tid 1) computes [0,100) -- another rank's compute hides nothing here.
  // All-to-all: [0,10) u [30,40) = 20. Hidden: [5,10) = 5 and [36,38) = 2, so 7 of 20 = 0.35.
  const TraceSummary s = summarize_chrome_trace(dir.write("t.json", R"([
    {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 10, "name": "all_to_all_dispatch", "cat": "comm"},
    {"ph": "X", "pid": 1, "tid": 1, "ts": 30, "dur": 10, "name": "all_to_all_combine", "cat": "comm"},
    {"ph": "X", "pid": 1, "tid": 1, "ts": 32, "dur": 2, "name": "all_to_all_dispatch", "cat": "comm"},
    {"ph": "X", "pid": 1, "tid": 1, "ts": 50, "dur": 10, "name": "all_reduce_gradients", "cat": "comm"},
    {"ph": "X", "pid": 1, "tid": 1, "ts": 35, "dur": 5, "name": "permute", "cat": "compute"},
    {"ph": "X", "pid": 1, "tid": 2, "ts": 5, "dur": 15, "name": "ffn", "cat": "compute"},
    {"ph": "X", "pid": 1, "tid": 2, "ts": 36, "dur": 2, "name": "ffn", "cat": "compute"},
    {"ph": "X", "pid": 2, "tid": 1, "ts": 0, "dur": 100, "name": "router", "cat": "compute"}])"));
  CHECK(s.all_to_all_us == 20);
  CHECK(s.all_to_all_hidden_us == 7);
  CHECK(s.all_to_all_hidden_fraction == Approx(0.35).epsilon(1e-12));
  // The comm overlap above is the older, looser measure: any compute, any track or process.
  CHECK(s.comm_us == 30);
  CHECK(s.comm_overlapped_us == 30);
}

// (No ';' or '[' in test names: catch_discover_tests would split the name or read a tag.)
TEST_CASE("comm overlapped by compute on another track: 0 to 10 under 5 to 20 gives 0.5") {
  test::TempDir dir("trace_summary_overlap");
  const TraceSummary s = summarize_chrome_trace(dir.write("t.json", R"([
    {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 10, "name": "send", "cat": "comm"},
    {"ph": "X", "pid": 1, "tid": 2, "ts": 5, "dur": 15, "name": "gemm", "cat": "compute"}])"));
  CHECK(s.comm_us == 10);
  CHECK(s.comm_overlapped_us == 5);
  CHECK(s.comm_overlap_fraction == 0.5);
  CHECK(s.wall_us == 20);
  REQUIRE(s.tracks.size() == 2);
  CHECK(s.tracks[0].name == "tid 1");  // no thread_name metadata
}

TEST_CASE("nested and overlapping spans are counted once") {
  test::TempDir dir("trace_summary_nested");
  // [0,10) holds [2,5) which holds [3,4); [8,12) overlaps the end; [15,16) stands alone.
  // Union: [0,12) u [15,16) = 13 (the plain sum would be 10+3+1+4+1 = 19); extent 16, idle 3.
  // comm [2,5) u [8,12) = 7; compute [0,10) covers all of it but [10,12): 5 of 7 overlapped.
  const TraceSummary s = summarize_chrome_trace(dir.write("t.json", R"({"traceEvents": [
    {"ph": "X", "tid": 7, "ts": 0, "dur": 10, "name": "a", "cat": "compute"},
    {"ph": "X", "tid": 7, "ts": 2, "dur": 3, "name": "b", "cat": "comm"},
    {"ph": "X", "tid": 7, "ts": 3, "dur": 1, "name": "c", "cat": "compute"},
    {"ph": "X", "tid": 7, "ts": 8, "dur": 4, "name": "d", "cat": "comm"},
    {"ph": "X", "tid": 7, "ts": 15, "dur": 1, "name": "e", "cat": "optimizer"}]})"));
  REQUIRE(s.tracks.size() == 1);
  CHECK(s.tracks[0].busy_us == 13);
  CHECK(s.tracks[0].idle_us == 3);
  CHECK(s.tracks[0].busy_by_category_us.at("compute") == 10);
  CHECK(s.tracks[0].busy_by_category_us.at("comm") == 7);
  CHECK(s.tracks[0].busy_by_category_us.at("optimizer") == 1);
  CHECK(s.comm_us == 7);
  CHECK(s.comm_overlapped_us == 5);
}

TEST_CASE("tracks of several processes are named by process") {
  test::TempDir dir("trace_summary_processes");
  const TraceSummary s = summarize_chrome_trace(dir.write("t.json", R"([
    {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "rank0"}},
    {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "rank1"}},
    {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "gate"}},
    {"ph": "M", "pid": 2, "tid": 1, "name": "thread_name", "args": {"name": "gate"}},
    {"ph": "X", "pid": 2, "tid": 1, "ts": 1, "dur": 2, "name": "r", "cat": "compute"}])"));
  REQUIRE(s.tracks.size() == 2);
  CHECK(s.tracks[0].name == "rank0/gate");
  CHECK(s.tracks[0].busy_us == 0);
  CHECK(s.tracks[1].name == "rank1/gate");
  CHECK(s.tracks[1].busy_us == 2);
}

TEST_CASE("summarize reads back the message counts of a recorder's trace") {
  test::TempDir dir("trace_summary_recorder");
  TraceRecorder recorder;
  recorder.message("gate.l0", "expert.l0", "tokens", 0, 64, 1.0, 2.0);
  recorder.message("gate.l0", "expert.l0", "tokens", 1, 64, 3.0, 5.0);
  recorder.message("expert.l0", "gate.l0", "grads", 0, 32, 6.0, 9.0);
  recorder.write_chrome_trace((dir.path / "r.json").string());
  const TraceSummary s = summarize_chrome_trace((dir.path / "r.json").string());
  const TrackSummary& gate = track(s, "gate.l0");
  CHECK(gate.sent_by_type == std::map<std::string, std::int64_t>{{"tokens", 2}});
  CHECK(gate.received_by_type == std::map<std::string, std::int64_t>{{"grads", 1}});
  CHECK(track(s, "expert.l0").messages_received == 2);
  CHECK(gate.first_us == 1.0);
  CHECK(gate.last_us == 9.0);
  CHECK(s.wall_us == 8.0);
}

TEST_CASE("summarize rejects what is not a Chrome trace") {
  test::TempDir dir("trace_summary_errors");
  CHECK_THROWS_AS(summarize_chrome_trace((dir.path / "missing.json").string()), std::runtime_error);
  CHECK_THROWS_WITH(summarize_chrome_trace(dir.write("a.json", "{\"traceEvents\": [")),
                    Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(summarize_chrome_trace(dir.write("b.json", "{\"events\": []}")),
                    Catch::Contains("\"traceEvents\" array"));
  CHECK_THROWS_WITH(summarize_chrome_trace(
                        dir.write("c.json", R"([{"ph": "M", "name": "process_name", "args": {}},
                                      {"ph": "X", "tid": 1, "ts": 0, "name": "x"}])")),
                    Catch::Contains("traceEvents[0] metadata needs a string args.name"));
  CHECK_THROWS_WITH(summarize_chrome_trace(dir.write(
                        "d.json", R"([{"ph": "X", "tid": 1, "ts": 0, "dur": 1, "name": "x"},
                                      {"ph": "X", "tid": 1, "ts": 0, "name": "x"}])")),
                    Catch::Contains("traceEvents[1] has no \"dur\""));
  CHECK_THROWS_WITH(summarize_chrome_trace(dir.write(
                        "e.json", R"([{"ph": "X", "tid": 1, "ts": 5, "dur": -1, "name": "x"}])")),
                    Catch::Contains("traceEvents[0] has a negative dur"));
}

namespace {

// Two ranks of one run, as their recorders write them: each file is its rank's process (pid
// rank + 1), with its times already moved onto rank 0's clock by its own (different) offset.
//   rank 0: all_to_all_dispatch [1000,1010) on comm.ep, compute [1005,1020) on the expert:
//           5 of 10 hidden = 0.5. First event 1000.
//   rank 1: all_to_all_combine [1004,1012) on comm.ep, compute [1003,1006) on the expert
//           (hides [1004,1006) = 2) and data [1020,1030) on the trainer (hides nothing):
//           2 of 8 = 0.25. First event 1003, 3 us after rank 0's; last end 1030.
// Run: wall [1000,1030] = 30; all-to-all 10 + 8 = 18, hidden 5 + 2 = 7 (7/18 = 38.9%).
const char* rank0_trace = R"({"otherData": {"rank": 0, "world_size": 2, "clock_offset_us": 0.25,
                                            "clock_rtt_us": 0.5}, "traceEvents": [
  {"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "troupe t rank 0"}},
  {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "comm.ep"}},
  {"ph": "M", "pid": 1, "tid": 2, "name": "thread_name", "args": {"name": "expert.l0.s0"}},
  {"ph": "X", "pid": 1, "tid": 1, "ts": 1000, "dur": 10, "name": "all_to_all_dispatch", "cat": "comm"},
  {"ph": "X", "pid": 1, "tid": 2, "ts": 1005, "dur": 15, "name": "ffn", "cat": "compute"}]})";
const char* rank1_trace = R"({"otherData": {"rank": 1, "world_size": 2,
                                            "clock_offset_us": -123456, "clock_rtt_us": 4},
                              "traceEvents": [
  {"ph": "M", "pid": 2, "tid": 0, "name": "process_name", "args": {"name": "troupe t rank 1"}},
  {"ph": "M", "pid": 2, "tid": 1, "name": "thread_name", "args": {"name": "comm.ep"}},
  {"ph": "M", "pid": 2, "tid": 2, "name": "thread_name", "args": {"name": "expert.l0.s1"}},
  {"ph": "M", "pid": 2, "tid": 3, "name": "thread_name", "args": {"name": "trainer"}},
  {"ph": "X", "pid": 2, "tid": 1, "ts": 1004, "dur": 8, "name": "all_to_all_combine", "cat": "comm"},
  {"ph": "X", "pid": 2, "tid": 2, "ts": 1003, "dur": 3, "name": "ffn", "cat": "compute"},
  {"ph": "X", "pid": 2, "tid": 3, "ts": 1020, "dur": 10, "name": "load", "cat": "data"}]})";

}  // namespace

TEST_CASE("two ranks' traces side by side: aligned starts and the hidden share per rank") {
  test::TempDir dir("trace_summary_ranks");
  const std::string r0 = dir.write("r0.json", rank0_trace);
  const std::string r1 = dir.write("r1.json", rank1_trace);
  const RunTraceSummary run = summarize_rank_traces({r1, r0});  // any order: sorted by rank
  REQUIRE(run.ranks.size() == 2);

  const RankTraceSummary& rank0 = run.ranks[0];
  CHECK(rank0.path == r0);
  REQUIRE(rank0.summary.rank.has_value());
  CHECK(rank0.summary.rank->rank == 0);
  REQUIRE(rank0.summary.clock.has_value());
  CHECK(rank0.summary.clock->offset_us == 0.25);
  CHECK(rank0.start_us == 0);
  CHECK(rank0.summary.all_to_all_us == 10);
  CHECK(rank0.summary.all_to_all_hidden_us == 5);
  CHECK(rank0.summary.all_to_all_hidden_fraction == 0.5);

  const RankTraceSummary& rank1 = run.ranks[1];
  CHECK(rank1.path == r1);
  CHECK(rank1.summary.rank->rank == 1);
  CHECK(rank1.summary.clock->offset_us == -123456);
  CHECK(rank1.summary.clock->rtt_us == 4);
  CHECK(rank1.start_us == 3);
  CHECK(rank1.summary.all_to_all_us == 8);
  CHECK(rank1.summary.all_to_all_hidden_us == 2);
  CHECK(rank1.summary.all_to_all_hidden_fraction == 0.25);
  CHECK(rank1.summary.wall_us == 27);  // [1003,1030]

  CHECK(run.wall_us == 30);
  CHECK(run.all_to_all_us == 18);
  CHECK(run.all_to_all_hidden_us == 7);
  CHECK(run.all_to_all_hidden_fraction == Approx(7.0 / 18).epsilon(1e-12));

  const std::string text = format_rank_summaries(run);
  INFO(text);
  CHECK_THAT(text, Catch::Contains("== " + r0 +
                                   ": starts 0.000 ms after the earliest rank\n"
                                   "rank 0 of 2; clock offset 0.000 ms (±0.000 ms) applied"));
  CHECK_THAT(text, Catch::Contains("== " + r1 +
                                   ": starts 0.003 ms after the earliest rank\n"
                                   "rank 1 of 2; clock offset -123.456 ms (±0.002 ms) applied"));
  CHECK_THAT(text, Catch::Contains("all-to-all 0.008 ms, 25.0% hidden under compute"));
  CHECK_THAT(text,
             Catch::Contains(
                 "all 2 ranks: wall 0.030 ms; all-to-all 0.018 ms, 38.9% hidden under compute"));
  CHECK(text.find("== " + r0) < text.find("== " + r1));

  // One file alone is the plain summary, whether or not it is a rank's.
  CHECK(format_rank_summaries(summarize_rank_traces({r1})) ==
        format_summary(summarize_chrome_trace(r1)));
}

TEST_CASE("several traces must be distinct ranks of one run, each with its clock offset") {
  test::TempDir dir("trace_summary_rank_errors");
  const std::string r0 = dir.write("r0.json", rank0_trace);
  const std::string r1 = dir.write("r1.json", rank1_trace);
  const std::string plain = dir.write(
      "plain.json", R"([{"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 1, "name": "x"}])");
  CHECK_THROWS_WITH(summarize_rank_traces({r0, plain}),
                    Catch::Contains("'" + plain + "' is not a rank's trace"));
  const std::string unaligned =
      dir.write("unaligned.json", R"({"otherData": {"rank": 1, "world_size": 2},
                                      "traceEvents": []})");
  CHECK_THROWS_WITH(summarize_rank_traces({r0, unaligned}),
                    Catch::Contains("'" + unaligned + "' has no clock offset"));
  CHECK_THROWS_WITH(summarize_rank_traces({r0, r0}), Catch::Contains("is rank 0 again"));
  const std::string other_world =
      dir.write("w3.json", R"({"otherData": {"rank": 2, "world_size": 3, "clock_offset_us": 0,
                                   "clock_rtt_us": 1}, "traceEvents": []})");
  CHECK_THROWS_WITH(
      summarize_rank_traces({r0, r1, other_world}),
      Catch::Contains("is rank 2 of world size 3, but '" + r0 + "' has world size 2"));
  CHECK_THROWS_AS(summarize_rank_traces({}), std::invalid_argument);

  // The reader checks otherData itself.
  CHECK_THROWS_WITH(summarize_chrome_trace(
                        dir.write("a.json", R"({"otherData": {"rank": 1}, "traceEvents": []})")),
                    Catch::Contains("otherData has no \"world_size\""));
  CHECK_THROWS_WITH(
      summarize_chrome_trace(dir.write("b.json", R"({"otherData": {"rank": 2, "world_size": 2},
                                      "traceEvents": []})")),
      Catch::Contains("rank 2 of world size 2: need 0 <= rank < world_size"));
  CHECK_THROWS_WITH(summarize_chrome_trace(dir.write(
                        "c.json", R"({"otherData": {"clock_offset_us": "3", "clock_rtt_us": 1},
                                      "traceEvents": []})")),
                    Catch::Contains("\"clock_offset_us\" must be a number"));
  CHECK_THROWS_WITH(summarize_chrome_trace(dir.write(
                        "d.json", R"({"otherData": {"clock_offset_us": 3, "clock_rtt_us": -1},
                                      "traceEvents": []})")),
                    Catch::Contains("clock_rtt_us must not be negative"));
}
