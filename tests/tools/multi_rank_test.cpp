// Multi-process training through the launcher on CPU ranks (UCX between processes): E (ep 4) and
// E+D (world 4, ep 2) and E+D+Z (the same with ZeRO-1 over ranks, which must also equal stage 0
// bit for bit) against the one-process reference that runs the same global batch as
// world × gas micro-batches of the per-rank size, top-2 with noise, dropless and at capacity
// factor 1.0; and two runs of one configuration bit for bit.
//
// Why a tolerance against the reference: the reference adds the micro-batches' gradients one by
// one; the ranks add their own and then all-reduce in rank order, and an expert's GEMMs see the
// rows of all ranks' micro-batches at once. Same terms, another summation order; rows, routing
// and noise are the same.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <thread>

#include <signal.h>
#include <sys/wait.h>

#include "models/checkpoint.hpp"
#include "models/checkpoint_dir.hpp"
#include "models/sharded_checkpoint.hpp"
#include "test_util/temp_dir.hpp"
#include "test_util/training_run.hpp"
#include "test_util/troupe_process.hpp"

namespace fs = std::filesystem;
using namespace troupe;

namespace {

// A port nobody listens on right now (the kernel's choice).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct Layout {
  int world = 1;
  int ep_size = 1;
  bool drop_tokens = false;  // false: dropless; true: capacity factor 1.0
  // use_data_before_expert_parallelism: expert-parallel groups strided ({0, 2}, {1, 3} for 4
  // ranks with ep 2) instead of consecutive.
  bool data_before_expert = false;
  // ZeRO stage 1 over ranks: each group's optimizer state partitioned over its data-parallel
  // (non-expert) or expert-data-parallel (expert) ranks, in 2 partitions per rank.
  int zero_stage = 0;

  // Rank r's position in its expert-parallel group (comm/process_groups.hpp).
  int ep_rank(int r) const { return data_before_expert ? r / (world / ep_size) : r % ep_size; }
};

// The shipped config on the tiny data: 5 steps of a global batch of 16 in micro-batches of 4
// (gas = 16 / (4 · world)), Jitter noise (and top-2's sampled second expert), stage 0, clipping at
// 0.5, a checkpoint at the end.
fs::path write_config(const fs::path& dir, const std::string& name, const fs::path& data,
                      const Layout& layout) {
  std::ifstream in(test::source_dir() / "configs" / "fashion_mnist_moe.json");
  nlohmann::json c = nlohmann::json::parse(in);
  c["train_batch_size"] = 16;
  c["train_micro_batch_size_per_gpu"] = 4;
  c.erase("gradient_accumulation_steps");
  // Active from the first step (the norm is about 0.16): the global norm crosses ranks.
  c["gradient_clipping"] = 0.05;
  c["zero_optimization"] = {{"stage", layout.zero_stage}};
  c["data"]["path"] = data.string();
  c["runtime"].erase("epochs");
  c["runtime"]["train_steps"] = 5;
  c["runtime"]["optimizer_partitions"] = layout.zero_stage >= 1 ? 2 : 1;
  c["runtime"]["stage_replicas"] = 1;
  c["runtime"]["log_interval"] = 1;
  c["runtime"]["master_timeout"] = 20;
  c["runtime"]["metrics_file"] = (dir / (name + ".jsonl")).string();
  // Step 1's checkpoint holds the step's gradients (Adam's first moment is (1 − β1)·g).
  c["runtime"]["checkpoint"] = {
      {"dir", (dir / (name + "_ckpt")).string()}, {"interval", 1}, {"keep", 5}};
  c["model"]["moe"]["noisy_gate_policy"] = "Jitter";
  c["model"]["moe"]["ep_size"] = layout.ep_size;
  c["model"]["moe"]["drop_tokens"] = layout.drop_tokens;
  if (layout.data_before_expert) c["use_data_before_expert_parallelism"] = true;
  c["model"]["moe"]["capacity_factor"] = 1.0;
  c["model"]["moe"]["min_capacity"] = 1;  // capacity ⌈k·S/E⌉ = 1 row per expert: tokens drop
  c.erase("scheduler");                   // Adam's lr 1e-3 from the first step
  const fs::path path = dir / (name + ".json");
  std::ofstream(path) << c.dump(2);
  return path;
}

// Runs `troupe launch --nproc_per_node W` (or `troupe train` for one process) with `extra` train
// options; returns the log.
std::string run(const fs::path& config, int world, const fs::path& log,
                const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args;
  if (world > 1) {
    args = {TROUPE_BINARY,         "launch",        "--nproc_per_node",
            std::to_string(world), "--master_port", std::to_string(free_port()),
            config.string()};
  } else {
    args = {TROUPE_BINARY, "train", config.string()};
  }
  args.insert(args.end(), extra.begin(), extra.end());
  const int status = test::wait_for(test::spawn_command(args, log));
  const std::string text = test::read_text(log);
  INFO(text);
  REQUIRE(test::exited_ok(status));
  return text;
}

bool is_expert(const std::string& name) {
  return name.find(".experts.") != std::string::npos;
}

const Tensor& tensor_named(const SafetensorsFile& file, const std::string& name) {
  for (const auto& [n, t] : file.tensors)
    if (n == name) return t;
  FAIL("no tensor " << name);
  throw std::logic_error("unreachable");
}

// A rank's expert tensors hold experts [ep_rank·L, (ep_rank+1)·L) of the reference's.
std::vector<float> reference_part(const Tensor& reference, const std::string& name, int ep_rank,
                                  int ep_size) {
  if (!is_expert(name)) return reference.to_vector();
  const std::int64_t local = reference.size(0) / ep_size;
  return reference.slice_rows(ep_rank * local, (ep_rank + 1) * local).to_vector();
}

// The largest |rank − reference| over a rank's parameters.
double largest_parameter_difference(const SafetensorsFile& reference, const SafetensorsFile& rank,
                                    int ep_rank, int ep_size) {
  double worst = 0.0;
  for (const auto& [name, got] : rank.tensors) {
    if (name.rfind("optim/", 0) == 0) continue;
    INFO("tensor " << name);
    const auto want = reference_part(tensor_named(reference, name), name, ep_rank, ep_size);
    const auto have = got.to_vector();
    REQUIRE(have.size() == want.size());
    for (std::size_t i = 0; i < have.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::fabs(have[i] - want[i])));
  }
  return worst;
}

// One group's Adam first moment over its whole flat buffer, from the checkpoints of the ranks that
// share the group (each holds the range that starts at its "optim_<group>_begin"; without ZeRO
// over ranks, one file holds it all).
std::vector<float> group_moment(const std::vector<const SafetensorsFile*>& shards, bool expert) {
  const std::string group = expert ? "expert" : "non_expert";
  std::vector<float> out;
  std::size_t covered = 0;
  for (const SafetensorsFile* shard : shards) {
    const auto at = shard->metadata.find("optim_" + group + "_begin");
    const std::size_t begin = at == shard->metadata.end() ? 0 : std::stoul(at->second);
    for (const auto& [name, tensor] : shard->tensors) {
      if (name != "optim/" + group + "/exp_avg") continue;
      const auto part = tensor.to_vector();
      if (out.size() < begin + part.size()) out.resize(begin + part.size());
      std::copy(part.begin(), part.end(), out.begin() + static_cast<std::ptrdiff_t>(begin));
      covered += part.size();
    }
  }
  REQUIRE(covered == out.size());  // the ranks' ranges tile the group
  return out;
}

// Step 1's gradient of every parameter, from Adam's first moment m = (1 − β1)·g: each group's
// flat buffer, cut along the group's parameters in checkpoint order (those of `file`).
std::map<std::string, std::vector<float>> step1_gradients(
    const SafetensorsFile& file, const std::vector<const SafetensorsFile*>& non_expert_shards,
    const std::vector<const SafetensorsFile*>& expert_shards) {
  std::map<std::string, std::vector<float>> out;
  std::map<bool, std::size_t> offset;
  std::map<bool, std::vector<float>> moments{{false, group_moment(non_expert_shards, false)},
                                             {true, group_moment(expert_shards, true)}};
  for (const auto& [name, value] : file.tensors) {
    if (name.rfind("optim/", 0) == 0) continue;
    const bool expert = is_expert(name);
    const auto begin = moments[expert].begin() + static_cast<std::ptrdiff_t>(offset[expert]);
    std::vector<float> g(begin, begin + value.numel());
    for (auto& x : g) x /= 0.1f;  // β1 = 0.9
    out[name] = std::move(g);
    offset[expert] += static_cast<std::size_t>(value.numel());
  }
  return out;
}

// max |g_rank − g_reference| / (ε · max |g_reference|) over every parameter tensor.
// `rank` is one rank's step-1 checkpoint, `non_expert` and `expert` those of the ranks sharing its
// groups' optimizer state (itself alone without ZeRO over ranks).
double largest_gradient_difference_in_eps(const SafetensorsFile& reference,
                                          const SafetensorsFile& rank,
                                          const std::vector<const SafetensorsFile*>& non_expert,
                                          const std::vector<const SafetensorsFile*>& expert,
                                          int ep_rank, int ep_size) {
  const auto want_all = step1_gradients(reference, {&reference}, {&reference});
  double worst = 0.0;
  for (const auto& [name, have] : step1_gradients(rank, non_expert, expert)) {
    INFO("gradient of " << name);
    std::vector<float> want = want_all.at(name);
    if (is_expert(name)) {
      const std::size_t local = want.size() / static_cast<std::size_t>(ep_size);
      want = std::vector<float>(want.begin() + static_cast<std::ptrdiff_t>(ep_rank * local),
                                want.begin() + static_cast<std::ptrdiff_t>((ep_rank + 1) * local));
    }
    REQUIRE(have.size() == want.size());
    float scale = 0.0f, diff = 0.0f;
    for (std::size_t i = 0; i < have.size(); ++i) {
      scale = std::max(scale, std::fabs(want[i]));
      diff = std::max(diff, std::fabs(have[i] - want[i]));
    }
    if (scale > 0.0f)
      worst = std::max(worst,
                       static_cast<double>(diff) / (std::numeric_limits<float>::epsilon() * scale));
  }
  return worst;
}

SafetensorsFile checkpoint_at(const fs::path& dir, std::int64_t step) {
  return load_safetensors((dir / checkpoint_file_name(step)).string());
}

fs::path rank_dir(const fs::path& run, int rank) {
  return run / ("rank" + std::to_string(rank));
}

// Every tensor of two runs' final checkpoints, bit for bit.
void check_bit_identical(const fs::path& a, const fs::path& b) {
  const SafetensorsFile x = test::latest_checkpoint(a), y = test::latest_checkpoint(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (std::size_t i = 0; i < x.tensors.size(); ++i) {
    INFO("tensor " << x.tensors[i].first);
    REQUIRE(x.tensors[i].second.nbytes() == y.tensors[i].second.nbytes());
    CHECK(std::memcmp(x.tensors[i].second.raw_data(), y.tensors[i].second.raw_data(),
                      x.tensors[i].second.nbytes()) == 0);
  }
}

void check_against_reference(const Layout& layout, bool twice = false) {
  const test::TempDir scratch("multi_rank");
  const fs::path& dir = scratch.path;
  test::write_tiny_fashion_mnist(dir / "data");
  const fs::path ranks_config = write_config(dir, "ranks", dir / "data", layout);
  const fs::path reference_config =
      write_config(dir, "reference", dir / "data", Layout{1, 1, layout.drop_tokens});
  run(reference_config, 1, dir / "reference.log");
  const std::string log = run(ranks_config, layout.world, dir / "ranks.log");
  CHECK_THAT(log, Catch::Contains("rank 0 of " + std::to_string(layout.world)));
  const fs::path reference_dir = dir / "reference_ckpt";
  std::vector<SafetensorsFile> step1;
  for (int r = 0; r < layout.world; ++r)
    step1.push_back(checkpoint_at(rank_dir(dir / "ranks_ckpt", r), 1));
  for (int r = 0; r < layout.world; ++r) {
    const int ep_rank = layout.ep_rank(r);
    const fs::path mine = rank_dir(dir / "ranks_ckpt", r);
    // Under ZeRO over ranks the non-expert optimizer state is spread over every rank, the expert
    // state over the ranks holding the same experts.
    std::vector<const SafetensorsFile*> non_expert{&step1[static_cast<std::size_t>(r)]};
    std::vector<const SafetensorsFile*> expert = non_expert;
    if (layout.zero_stage >= 1) {
      non_expert.clear();
      expert.clear();
      for (int q = 0; q < layout.world; ++q) {
        non_expert.push_back(&step1[static_cast<std::size_t>(q)]);
        if (layout.ep_rank(q) == ep_rank) expert.push_back(&step1[static_cast<std::size_t>(q)]);
      }
    }
    // Step 1's gradients: the same terms summed in another order (module comment), so a few ε
    // of the tensor's largest gradient; a wrong row, route, scale or noise draw is O(1) there.
    const double in_eps = largest_gradient_difference_in_eps(
        checkpoint_at(reference_dir, 1), step1[static_cast<std::size_t>(r)], non_expert, expert,
        ep_rank, layout.ep_size);
    INFO("rank " << r << ": step-1 gradients differ by at most " << in_eps
                 << " eps of each tensor's largest");
    CHECK(in_eps <= 16.0);
    // After 5 Adam steps at lr 1e-3: Adam divides by √v + 1e-8, so a gradient entry near 0 turns
    // its rounding difference into up to lr · Δg / 1e-8; 1e-4 is a tenth of one step's size.
    const double worst = largest_parameter_difference(
        checkpoint_at(reference_dir, 5), checkpoint_at(mine, 5), ep_rank, layout.ep_size);
    INFO("rank " << r << ": parameters after 5 steps differ by at most " << worst);
    CHECK(worst < 1e-4);
  }
  // The global gradient norm (rank 0's metrics) counts every expert once, as the reference does.
  const auto norms = [](const fs::path& metrics) {
    std::vector<double> out;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] == "train") out.push_back(j["grad_norm"].get<double>());
    }
    return out;
  };
  const auto want = norms(dir / "reference.jsonl"), got = norms(dir / "ranks.jsonl");
  REQUIRE(want.size() == 5);
  REQUIRE(got.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    INFO("step " << i + 1 << ": grad_norm " << got[i] << " against " << want[i]);
    CHECK(got[i] > 0.05);  // so clipping acted
    CHECK(std::fabs(got[i] - want[i]) <= 1e-5 * want[i]);
  }
  // The final evaluation: each rank evaluated its shard of the split, and rank 0 reports the
  // totals over all of them. Dropless, they match the reference's up to the parameters' rounding;
  // at a capacity, which tokens an expert drops depends on the batch, and the shards are other
  // batches than the reference's.
  const auto final_eval = [](const fs::path& metrics) {
    nlohmann::json last;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] == "eval") last = j;
    }
    REQUIRE_FALSE(last.is_null());
    return last;
  };
  const auto want_eval = final_eval(dir / "reference.jsonl");
  const auto got_eval = final_eval(dir / "ranks.jsonl");
  const auto count = want_eval["count"].get<std::int64_t>();
  CHECK(got_eval["count"].get<std::int64_t>() == count);
  if (!layout.drop_tokens) {
    CHECK(std::fabs(got_eval["accuracy"].get<double>() - want_eval["accuracy"].get<double>()) <=
          1.0 / static_cast<double>(count) + 1e-12);
    CHECK(std::fabs(got_eval["loss"].get<double>() - want_eval["loss"].get<double>()) <=
          1e-4 * std::fabs(want_eval["loss"].get<double>()));
  }
  CHECK_THAT(log, Catch::Contains("evaluation sharded over " + std::to_string(layout.world)));
  if (layout.zero_stage >= 1) {
    // ZeRO-1 changes where the optimizer runs, never a bit: the same layout at stage 0 ends with
    // the same parameters on every rank.
    Layout stage0 = layout;
    stage0.zero_stage = 0;
    run(write_config(dir, "stage0", dir / "data", stage0), layout.world, dir / "stage0.log");
    for (int r = 0; r < layout.world; ++r) {
      const SafetensorsFile x = checkpoint_at(rank_dir(dir / "ranks_ckpt", r), 5);
      const SafetensorsFile y = checkpoint_at(rank_dir(dir / "stage0_ckpt", r), 5);
      for (const auto& [name, tensor] : x.tensors) {
        if (name.rfind("param/", 0) != 0) continue;
        INFO("rank " << r << ", " << name);
        const Tensor& other = tensor_named(y, name);
        REQUIRE(other.nbytes() == tensor.nbytes());
        CHECK(std::memcmp(other.raw_data(), tensor.raw_data(), tensor.nbytes()) == 0);
      }
    }
    CHECK(norms(dir / "stage0.jsonl") == got);
  }
  if (twice) {
    const fs::path again_config = write_config(dir, "again", dir / "data", layout);
    run(again_config, layout.world, dir / "again.log");
    for (int r = 0; r < layout.world; ++r)
      check_bit_identical(rank_dir(dir / "ranks_ckpt", r), rank_dir(dir / "again_ckpt", r));
  }
}

// Waits up to `limit` for `pid`; returns its wait status, or kills it and fails (a hang).
int wait_at_most(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  FAIL("process " << pid << " still running after " << limit.count() << " s: it hangs");
  return status;
}

// Blocks until `log` holds `text` (bounded).
void wait_for_text(const fs::path& log, const std::string& text) {
  for (int i = 0; i < 600; ++i) {
    if (test::read_text(log).find(text) != std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("no \"" << text << "\" in " << log << ":\n" << test::read_text(log));
}

// A long run of 2 ranks (E, ep 2) on the tiny data.
fs::path write_long_config(const fs::path& dir) {
  test::write_tiny_fashion_mnist(dir / "data");
  const fs::path path = write_config(dir, "long", dir / "data", Layout{2, 2, false});
  std::ifstream in(path);
  nlohmann::json c = nlohmann::json::parse(in);
  c["runtime"]["train_steps"] = 1000000;
  c["runtime"]["checkpoint"] = {{"interval", 0}, {"final", false}};
  std::ofstream(path) << c.dump(2);
  return path;
}

// Starts `config` as 2 ranks without a launcher (the environment set by hand, logs in
// DIR/rankR.log) and returns once rank 0 has logged step 3.
std::vector<pid_t> start_two_ranks_by_hand(const fs::path& config, const fs::path& dir) {
  const std::string port = std::to_string(free_port());
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(test::spawn_command(
        {TROUPE_BINARY, "train", config.string()}, dir / ("rank" + std::to_string(r) + ".log"), "",
        {"RANK=" + std::to_string(r), "WORLD_SIZE=2", "LOCAL_RANK=" + std::to_string(r),
         "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port}));
  wait_for_text(dir / "rank0.log", "step 3/");
  return ranks;
}

}  // namespace

TEST_CASE("E: 4 ranks with ep 4 train like the one-process reference", "[multi_rank]") {
  SECTION("dropless, and a second run bit for bit") {
    check_against_reference({4, 4, false}, true);
  }
  SECTION("capacity factor 1.0") {
    check_against_reference({4, 4, true});
  }
}

TEST_CASE("E: 2 ranks with 2 micro-batches each in flight train like the reference",
          "[multi_rank]") {
  // gas = 16 / (4 · 2) = 2 at pipeline depth 2: exchanges of two micro-batches overlap and may
  // finish out of order, and must still reach the stages in the schedule's order.
  check_against_reference({2, 2, false});
}

TEST_CASE("E+D: 4 ranks with ep 2 train like the one-process reference", "[multi_rank]") {
  SECTION("expert-parallel groups of consecutive ranks") {
    check_against_reference({4, 2, false});
  }
  SECTION("use_data_before_expert_parallelism: strided expert-parallel groups") {
    check_against_reference({4, 2, false, true});
  }
}

TEST_CASE("E+D+Z: 4 ranks with ep 2 and ZeRO-1 over ranks train like the reference and stage 0",
          "[multi_rank]") {
  SECTION("dropless, and a second run bit for bit") {
    check_against_reference({4, 2, false, false, 1}, true);
  }
  SECTION("capacity factor 1.0") {
    check_against_reference({4, 2, true, false, 1});
  }
}

TEST_CASE("a rank killed mid-run without a launcher: the other exits non-zero, no hang",
          "[multi_rank]") {
  const test::TempDir scratch("multi_rank_kill");
  const fs::path config = write_long_config(scratch.path);
  const std::vector<pid_t> ranks = start_two_ranks_by_hand(config, scratch.path);
  SECTION("rank 1 dies") {
    ::kill(ranks[1], SIGKILL);
    wait_at_most(ranks[1], std::chrono::seconds(5));
    const int status = wait_at_most(ranks[0], std::chrono::seconds(30));
    INFO(test::read_text(scratch.path / "rank0.log"));
    CHECK_FALSE(test::exited_ok(status));
    CHECK_THAT(test::read_text(scratch.path / "rank0.log"), Catch::Contains("rank 1 lost"));
  }
  SECTION("rank 0, the master, dies") {
    ::kill(ranks[0], SIGKILL);
    wait_at_most(ranks[0], std::chrono::seconds(5));
    const int status = wait_at_most(ranks[1], std::chrono::seconds(30));
    INFO(test::read_text(scratch.path / "rank1.log"));
    CHECK_FALSE(test::exited_ok(status));
    CHECK_THAT(test::read_text(scratch.path / "rank1.log"), Catch::Contains("rank 0 lost"));
  }
}

TEST_CASE("a stop asked on one rank stops every rank after the same step, with one checkpoint",
          "[multi_rank]") {
  // Only rank 1 gets SIGINT (as when a scheduler signals one task first): rank 0 must not go on
  // into the next step's collectives, which rank 1 would never join.
  const test::TempDir scratch("multi_rank_stop");
  const fs::path config = write_long_config(scratch.path);
  {
    std::ifstream in(config);
    nlohmann::json c = nlohmann::json::parse(in);
    c["runtime"]["checkpoint"] = {
        {"dir", (scratch.path / "ckpt").string()}, {"interval", 0}, {"final", true}};
    std::ofstream(config) << c.dump(2);
  }
  const std::vector<pid_t> ranks = start_two_ranks_by_hand(config, scratch.path);
  ::kill(ranks[1], SIGINT);
  for (int r = 0; r < 2; ++r) {
    const int status = wait_at_most(ranks[static_cast<std::size_t>(r)], std::chrono::seconds(30));
    INFO("rank " << r << ":\n"
                 << test::read_text(scratch.path / ("rank" + std::to_string(r) + ".log")));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + SIGINT);
  }
  CHECK_THAT(test::read_text(scratch.path / "rank1.log"), Catch::Contains("interrupted by"));
  CHECK_THAT(test::read_text(scratch.path / "rank0.log"),
             Catch::Contains("stopped with the other ranks"));
  // Both ranks' final shards are of the same step, and rank 0 named them in the manifest.
  const auto manifest = read_sharded_latest((scratch.path / "ckpt").string());
  REQUIRE(manifest.has_value());
  for (int r = 0; r < 2; ++r) {
    const auto own = read_latest(rank_dir(scratch.path / "ckpt", r).string());
    REQUIRE(own.has_value());
    CHECK(own->name == manifest->name);
  }
}

TEST_CASE("a rank killed mid-run under the launcher: the launcher stops the others and names it",
          "[multi_rank]") {
  const test::TempDir scratch("multi_rank_launch_kill");
  const fs::path config = write_long_config(scratch.path);
  const fs::path log = scratch.path / "launch.log";
  const pid_t launcher =
      test::spawn_command({TROUPE_BINARY, "launch", "--nproc_per_node", "2", "--master_port",
                           std::to_string(free_port()), config.string()},
                          log);
  wait_for_text(log, "step 3/");
  // The launcher starts its ranks in rank order: rank 1 is its newest child.
  const std::string find = "pgrep -P " + std::to_string(launcher) + " -n";
  FILE* pipe = ::popen(find.c_str(), "r");
  REQUIRE(pipe != nullptr);
  int newest = 0;
  REQUIRE(std::fscanf(pipe, "%d", &newest) == 1);
  ::pclose(pipe);
  ::kill(newest, SIGKILL);
  const int status = wait_at_most(launcher, std::chrono::seconds(30));
  INFO(test::read_text(log));
  CHECK_FALSE(test::exited_ok(status));
  CHECK_THAT(test::read_text(log), Catch::Contains("rank 1") && Catch::Contains("signal"));
}

TEST_CASE(
    "ranks started by Slurm or Open MPI (their variables, set by hand) train without the "
    "launcher",
    "[multi_rank]") {
  const test::TempDir scratch("multi_rank_env");
  test::write_tiny_fashion_mnist(scratch.path / "data");
  const fs::path config = write_config(scratch.path, "env", scratch.path / "data", {2, 2, false});
  const std::string port = std::to_string(free_port());
  std::vector<std::string> names;
  SECTION("Slurm") {
    names = {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"};
  }
  SECTION("Open MPI") {
    names = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
             "OMPI_COMM_WORLD_LOCAL_SIZE"};
  }
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(test::spawn_command(
        {TROUPE_BINARY, "train", config.string()},
        scratch.path / ("rank" + std::to_string(r) + ".log"), "",
        {names[0] + "=" + std::to_string(r), names[1] + "=2", names[2] + "=" + std::to_string(r),
         names[3] + "=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port}));
  for (int r = 0; r < 2; ++r) {
    const int status = wait_at_most(ranks[static_cast<std::size_t>(r)], std::chrono::seconds(60));
    const fs::path log = scratch.path / ("rank" + std::to_string(r) + ".log");
    INFO(test::read_text(log));
    CHECK(test::exited_ok(status));
    CHECK(fs::exists(rank_dir(scratch.path / "env_ckpt", r) / checkpoint_file_name(5)));
  }
  CHECK_THAT(test::read_text(scratch.path / "rank0.log"), Catch::Contains("rank 0 of 2"));
}

TEST_CASE("an unreachable master is a clear error within runtime.master_timeout", "[multi_rank]") {
  const test::TempDir scratch("multi_rank_master");
  test::write_tiny_fashion_mnist(scratch.path / "data");
  const fs::path path = write_config(scratch.path, "alone", scratch.path / "data", {2, 2, false});
  std::ifstream in(path);
  nlohmann::json c = nlohmann::json::parse(in);
  c["runtime"]["master_timeout"] = 2;
  std::ofstream(path) << c.dump(2);
  const std::string port = std::to_string(free_port());  // nobody listens there
  const auto started = std::chrono::steady_clock::now();
  const pid_t rank1 = test::spawn_command(
      {TROUPE_BINARY, "train", path.string()}, scratch.path / "rank1.log", "",
      {"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port});
  const int status = wait_at_most(rank1, std::chrono::seconds(30));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string log = test::read_text(scratch.path / "rank1.log");
  INFO(log);
  CHECK_FALSE(test::exited_ok(status));
  CHECK_THAT(log, Catch::Contains("cannot reach the master at 127.0.0.1:" + port + " within 2 s"));
  CHECK(seconds >= 2.0);
  CHECK(seconds < 10.0);
}

TEST_CASE("2 ranks stopped at step 3 and resumed reach step 5 bit for bit", "[multi_rank]") {
  const test::TempDir scratch("multi_rank_resume");
  const fs::path& dir = scratch.path;
  test::write_tiny_fashion_mnist(dir / "data");
  run(write_config(dir, "whole", dir / "data", {2, 2, false}), 2, dir / "whole.log");
  const fs::path halves = write_config(dir, "halves", dir / "data", {2, 2, false});
  run(halves, 2, dir / "first.log", {"--steps", "3"});
  CHECK_FALSE(fs::exists(rank_dir(dir / "halves_ckpt", 0) / checkpoint_file_name(4)));
  const std::string second =
      run(halves, 2, dir / "second.log", {"--resume", (dir / "halves_ckpt").string()});
  CHECK_THAT(second, Catch::Contains("rank0/step_00000003.safetensors at step 3"));
  for (int r = 0; r < 2; ++r)
    check_bit_identical(rank_dir(dir / "whole_ckpt", r), rank_dir(dir / "halves_ckpt", r));
  // Rank 0 named both ranks' shards of the last step once both were written.
  const auto manifest = read_sharded_latest((dir / "halves_ckpt").string());
  REQUIRE(manifest.has_value());
  CHECK(manifest->name == checkpoint_file_name(5));
  CHECK(manifest->run_id ==
        test::latest_checkpoint(rank_dir(dir / "halves_ckpt", 1)).metadata.at("run_id"));
  REQUIRE(manifest->shard_crcs.size() == 2);
  for (int r = 0; r < 2; ++r)
    CHECK(manifest->shard_crcs[static_cast<std::size_t>(r)] ==
          checkpoint_crc((rank_dir(dir / "halves_ckpt", r) / checkpoint_file_name(5)).string()));
}

TEST_CASE("resuming 2 ranks verifies every shard: one damaged shard sends both back a step",
          "[multi_rank]") {
  const test::TempDir scratch("multi_rank_damaged");
  const fs::path& dir = scratch.path;
  test::write_tiny_fashion_mnist(dir / "data");
  run(write_config(dir, "whole", dir / "data", {2, 2, false}), 2, dir / "whole.log");
  const fs::path halves = write_config(dir, "halves", dir / "data", {2, 2, false});
  run(halves, 2, dir / "first.log", {"--steps", "3"});
  // Rank 1's newest shard loses a byte in the middle; rank 0's is intact, but alone it is useless.
  const fs::path damaged = rank_dir(dir / "halves_ckpt", 1) / checkpoint_file_name(3);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(damaged) / 2));
    f.put('\x5a');
  }
  const std::string second =
      run(halves, 2, dir / "second.log", {"--resume", (dir / "halves_ckpt").string()});
  CHECK_THAT(second, Catch::Contains("step_00000003.safetensors: rank 1"));
  CHECK_THAT(second, Catch::Contains("rank0/step_00000002.safetensors at step 2"));
  // Steps 3 to 5 again from step 2: the same bits as the uninterrupted run.
  for (int r = 0; r < 2; ++r)
    check_bit_identical(rank_dir(dir / "whole_ckpt", r), rank_dir(dir / "halves_ckpt", r));
}
