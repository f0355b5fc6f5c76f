// Back-pressure, read off the trace: the scheduler never has more than `pipeline_depth`
// micro-batches in flight (forward_work sent, micro_batch_done not yet received), with depth ≥ 2
// it does put several in flight at once, and every expert shard sees every micro-batch once in
// each direction.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "models/lenet_moe.hpp"
#include "scheduler/actor_runtime.hpp"
#include "test_util/temp_dir.hpp"
#include "trace/trace_summary.hpp"

using namespace troupe;
using nlohmann::json;

namespace {

// More micro-batches than any depth tested: the scheduler must refill freed slots, so a bound
// that holds only while the first `depth` micro-batches are in flight would not pass.
constexpr std::int64_t kMicroBatches = 6;
constexpr std::int64_t kBatch = 3;
constexpr std::int64_t kShards = 3;  // over 4 experts: shards of 1, 1 and 2 experts

std::shared_ptr<Model> make_lenet() {
  LeNetMoEConfig c;
  c.height = c.width = 16;  // the smallest image both pools accept keeps the step fast
  c.num_classes = 5;
  c.moe.num_experts = 4;
  c.moe.k = 2;
  c.moe.min_capacity = 2;
  c.init_seed = 5;
  return std::make_shared<LeNetMoE>(c);
}

run_step make_step() {
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  run_step step{1, true, {}};
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    Tensor x = Tensor::empty({kBatch, 1, 16, 16});
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
    Tensor y = Tensor::empty({kBatch}, DType::i32);
    for (std::int64_t i = 0; i < kBatch; ++i)
      y.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % 5);
    step.micro_batches.push_back(batch_data{TensorHandle(x), TensorHandle(y)});
  }
  return step;
}

// Runs one traced training step at `depth` and writes the trace to `path`.
void run_traced_step(std::int64_t depth, const std::string& path) {
  caf::actor_system_config cfg;
  cfg.load<caf::id_block::troupe>();
  caf::actor_system system(cfg);
  RuntimeOptions opt;
  opt.pipeline_depth = depth;
  opt.expert_shards = kShards;
  opt.recorder = std::make_shared<TraceRecorder>();
  {
    ActorRuntime runtime(system, make_lenet(), opt);
    caf::scoped_actor self{system};
    // A step takes milliseconds; a minute without a reply is a hang.
    self->request(runtime.pipeline(), std::chrono::seconds(60), make_step())
        .receive(
            [](const step_result& r) {
              CHECK(r.count == kMicroBatches * kBatch);
              CHECK(std::isfinite(r.loss));
            },
            [](caf::error& e) { FAIL("run_step failed: " << caf::to_string(e)); });
  }
  opt.recorder->write_chrome_trace(path);
}

// One message slice of the trace: "send <type>" on the sender's track at the send time, or
// "recv <type>" on the receiver's at the receive time.
struct MessageSlice {
  std::string track;
  bool send = false;
  std::string type;
  std::int64_t micro_batch = 0;
  double ts = 0;
};

std::vector<MessageSlice> read_message_slices(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  const json trace = json::parse(in);
  std::map<int, std::string> tracks;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == "M" && e.at("name") == "thread_name")
      tracks[e.at("tid").get<int>()] = e.at("args").at("name").get<std::string>();
  std::vector<MessageSlice> out;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X" || e.at("cat") != "message") continue;
    const auto name = e.at("name").get<std::string>();
    const auto& args = e.at("args");
    MessageSlice s;
    s.track = tracks.at(e.at("tid").get<int>());
    s.send = name.rfind("send ", 0) == 0;
    s.type = args.at("type").get<std::string>();
    REQUIRE(name == (s.send ? "send " : "recv ") + s.type);
    s.micro_batch = args.at("micro_batch").get<std::int64_t>();
    s.ts = e.at("ts").get<double>();
    out.push_back(s);
  }
  return out;
}

const MessageSlice& find_slice(const std::vector<MessageSlice>& slices, const std::string& track,
                               bool send, const std::string& type, std::int64_t micro_batch) {
  auto it = std::find_if(slices.begin(), slices.end(), [&](const MessageSlice& s) {
    return s.track == track && s.send == send && s.type == type && s.micro_batch == micro_batch;
  });
  REQUIRE(it != slices.end());
  return *it;
}

const TrackSummary& find_track(const TraceSummary& summary, const char* name) {
  auto it = std::find_if(summary.tracks.begin(), summary.tracks.end(),
                         [&](const TrackSummary& t) { return t.name == name; });
  REQUIRE(it != summary.tracks.end());
  return *it;
}

}  // namespace

TEST_CASE("pipeline depth bounds the micro-batches in flight, and depth >= 2 overlaps them") {
  const std::int64_t depth = GENERATE(1, 2, 3);
  INFO("depth " << depth);
  REQUIRE(kMicroBatches > depth);
  test::TempDir dir("pipeline_depth");
  const std::string path = dir.file("trace.json");
  run_traced_step(depth, path);
  const auto slices = read_message_slices(path);

  // The scheduler's view: +1 when it sends forward_work, −1 when it receives micro_batch_done.
  struct Change {
    double ts;
    int delta;
  };
  std::vector<Change> changes;
  std::vector<int> launched(kMicroBatches, 0), done(kMicroBatches, 0);
  for (const auto& s : slices) {
    if (s.track != "scheduler") continue;
    if (s.send && s.type == "forward_work") {
      changes.push_back({s.ts, +1});
      ++launched.at(static_cast<std::size_t>(s.micro_batch));
    } else if (!s.send && s.type == "micro_batch_done") {
      changes.push_back({s.ts, -1});
      ++done.at(static_cast<std::size_t>(s.micro_batch));
    }
  }
  CHECK(launched == std::vector<int>(kMicroBatches, 1));
  CHECK(done == std::vector<int>(kMicroBatches, 1));
  // At equal times the receipt counts first: the scheduler records a micro_batch_done before it
  // launches the micro-batch that takes the freed slot.
  std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) {
    return a.ts < b.ts || (a.ts == b.ts && a.delta < b.delta);
  });
  std::int64_t in_flight = 0, most = 0;
  for (const auto& c : changes) {
    in_flight += c.delta;
    CHECK(in_flight >= 0);
    CHECK(in_flight <= depth);
    most = std::max(most, in_flight);
  }
  CHECK(in_flight == 0);
  CHECK(most == depth);

  // Overlap down the chain: with depth ≥ 2 segment 0 takes micro-batch 1's forward before
  // micro-batch 0's backward reaches it; with depth 1 only after.
  const double forward_1 = find_slice(slices, "segment.0", false, "forward_work", 1).ts;
  const double backward_0 = find_slice(slices, "segment.0", false, "backward_work", 0).ts;
  CHECK((forward_1 < backward_0) == (depth >= 2));

  // The gate asks the comm actor to dispatch every micro-batch in both directions; the comm actor
  // hands every shard every micro-batch and hears back each time.
  const TraceSummary summary = summarize_chrome_trace(path);
  const TrackSummary& gate = find_track(summary, "gate.l0");
  CHECK(gate.sent_by_type.at("comm_dispatch") == 2 * kMicroBatches);
  CHECK(gate.received_by_type.at("comm_combined") == 2 * kMicroBatches);
  const TrackSummary& comm = find_track(summary, "comm.ep");
  CHECK(comm.sent_by_type.at("expert_forward") == kShards * kMicroBatches);
  CHECK(comm.sent_by_type.at("expert_backward") == kShards * kMicroBatches);
  CHECK(comm.received_by_type.at("expert_output") == 2 * kShards * kMicroBatches);
  for (std::int64_t j = 0; j < kShards; ++j) {
    INFO("shard " << j);
    const std::string name = "expert_shard.l0.s" + std::to_string(j);
    const TrackSummary& shard = find_track(summary, name.c_str());
    CHECK(shard.received_by_type.at("expert_forward") == kMicroBatches);
    CHECK(shard.received_by_type.at("expert_backward") == kMicroBatches);
  }
}
