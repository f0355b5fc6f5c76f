// `troupe trace summarize FILE...` on the real binary: two ranks' traces, recorded the way a
// multi-process run records them (rank identity, clock offset measured at the rendezvous), are
// summarized side by side; files that are not ranks of one run are refused with exit status 1.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "comm/rendezvous.hpp"
#include "test_util/temp_dir.hpp"
#include "test_util/troupe_process.hpp"
#include "trace/trace_recorder.hpp"
#include "trace/trace_summary.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// Runs `troupe trace summarize FILES...`; returns its exit status and output.
std::pair<int, std::string> summarize(const test::TempDir& dir,
                                      const std::vector<std::string>& files) {
  std::vector<std::string> args{TROUPE_BINARY, "trace", "summarize"};
  args.insert(args.end(), files.begin(), files.end());
  const auto log = dir.path / "summarize.log";
  std::filesystem::remove(log);
  const int status = test::wait_for(test::spawn_command(args, log));
  return {status, test::read_text(log)};
}

}  // namespace

TEST_CASE("trace summarize reports two ranks' traces, aligned by their measured clock offsets") {
  test::TempDir dir("trace_summarize_ranks");
  RendezvousServer server("127.0.0.1", 0);
  std::vector<std::string> files;
  for (int rank = 0; rank < 2; ++rank) {
    RendezvousClient client("127.0.0.1", server.port(), 10s);
    const ClockOffset clock = client.measure_clock_offset(4);
    TraceRecorder recorder("troupe test");
    recorder.set_rank(rank, 2);
    recorder.set_clock_offset(clock.offset_us, clock.rtt_us);
    // Rank 0 exchanges tokens while an expert computes (all of it hidden); rank 1 exchanges
    // them with nothing else running (none of it hidden).
    SpanId compute = no_span;
    if (rank == 0) compute = recorder.begin_span("expert.l0", "ffn", trace_category::compute);
    recorder.end_span(recorder.begin_span("comm.ep", "all_to_all_dispatch", trace_category::comm));
    recorder.end_span(compute);
    files.push_back(dir.file("rank" + std::to_string(rank) + ".json"));
    recorder.write_chrome_trace(files.back());
  }

  // Rank 1 recorded after rank 0 had finished: on the common clock its first event comes after
  // rank 0's last end, to within the two offsets' error bounds (±rtt / 2 each). Times since
  // each recorder's start, unaligned, would put both ranks' first events at about 0.
  const RunTraceSummary run = summarize_rank_traces(files);
  REQUIRE(run.ranks.size() == 2);
  const RankTraceSummary& r0 = run.ranks[0];
  const RankTraceSummary& r1 = run.ranks[1];
  const double bound = (r0.summary.clock->rtt_us + r1.summary.clock->rtt_us) / 2;
  CHECK(r1.start_us - r0.start_us >= r0.summary.wall_us - bound);

  const auto [status, out] = summarize(dir, {files[1], files[0]});
  INFO(out);
  REQUIRE(test::exited_ok(status));
  CHECK_THAT(out, Catch::Contains("== " + files[0] + ": starts "));
  CHECK_THAT(out, Catch::Contains("rank 0 of 2; clock offset "));
  CHECK_THAT(out, Catch::Contains("rank 1 of 2; clock offset "));
  CHECK(out.find("rank 0 of 2") < out.find("rank 1 of 2"));  // by rank, whatever the order given
  CHECK_THAT(out, Catch::Contains("100.0% hidden under compute on other tracks"));
  CHECK_THAT(out, Catch::Contains(", 0.0% hidden under compute on other tracks"));
  CHECK_THAT(out, Catch::Contains("all 2 ranks: wall "));

  // One file is summarized alone, as before.
  const auto [one_status, one] = summarize(dir, {files[0]});
  INFO(one);
  CHECK(test::exited_ok(one_status));
  CHECK_THAT(one, Catch::Contains("rank 0 of 2"));
  CHECK(one.find("all 2 ranks") == std::string::npos);
}

TEST_CASE("trace summarize refuses files that are not ranks of one run, naming the file") {
  test::TempDir dir("trace_summarize_refused");
  TraceRecorder single("troupe test");
  single.end_span(single.begin_span("trainer", "step", trace_category::optimizer));
  const std::string plain = dir.file("single.json");
  single.write_chrome_trace(plain);
  const auto [status, out] = summarize(dir, {plain, plain});
  INFO(out);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(out, Catch::Contains("'" + plain + "' is not a rank's trace"));
}
