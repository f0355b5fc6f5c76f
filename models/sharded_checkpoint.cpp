// A run of several ranks' checkpoint: manifest and resume choice (see sharded_checkpoint.hpp).
#include "models/sharded_checkpoint.hpp"

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "memory/file_util.hpp"
#include "memory/safetensors_crc.hpp"
#include "models/checkpoint.hpp"
#include "models/checkpoint_dir.hpp"

namespace troupe {

namespace fs = std::filesystem;

namespace {

// One resume candidate: a step, and what its shards must match.
struct Candidate {
  std::string name;
  std::string run_id;                      // empty: rank 0's shard's run, whatever it is
  const std::vector<std::string>* crcs{};  // the manifest's, for the step it names
};

// Why the shards of `c` cannot be resumed from ("rank R: why"), or empty when every one is intact
// and of the candidate's run, with the manifest's CRC where it gives one; `run_id` becomes that
// run.
std::string shard_problem(const std::string& dir, std::int64_t world_size, const Candidate& c,
                          std::string& run_id) {
  run_id = c.run_id;
  const char* whose = run_id.empty() ? "rank 0's shard" : "the manifest";
  for (std::int64_t rank = 0; rank < world_size; ++rank) {
    const std::string path = (fs::path(checkpoint_shard_dir(dir, rank)) / c.name).string();
    const std::string who = "rank " + std::to_string(rank) + ": ";
    try {
      if (!fs::exists(path)) return who + path + " is missing";
      const CheckpointMeta meta = verify_checkpoint(path);
      if (run_id.empty()) run_id = meta.run_id;
      if (meta.run_id != run_id)
        return who + path + " belongs to run " + meta.run_id + ", not to run " + run_id + " of " +
               whose;
      if (c.crcs) {
        const std::string crc = checkpoint_crc(path);
        const std::string& expected = (*c.crcs)[static_cast<std::size_t>(rank)];
        if (crc != expected)
          return who + path + " has CRC-32 " + crc + ", the manifest says " + expected +
                 " (a shard of another save)";
      }
    } catch (const std::exception& e) {
      return who + e.what();
    }
  }
  return {};
}

// Throws std::runtime_error naming DIR/latest, the line and what was expected.
[[noreturn]] void bad_manifest(const std::string& dir, int line, const std::string& text,
                               const std::string& expected) {
  throw std::runtime_error(latest_path(dir) + " line " + std::to_string(line) + " is \"" + text +
                           "\", expected " + expected +
                           ": not the manifest of a checkpoint of several ranks");
}

}  // namespace

std::string checkpoint_shard_dir(const std::string& dir, std::int64_t rank) {
  return (fs::path(dir) / ("rank" + std::to_string(rank))).string();
}

void write_sharded_latest(const std::string& dir, const std::string& name,
                          const std::string& run_id, const std::vector<std::string>& shard_crcs) {
  if (checkpoint_file_step(name) < 0)
    throw std::invalid_argument("write_sharded_latest: \"" + name +
                                "\" is not a step file name (step_NNNNNNNN.safetensors)");
  if (run_id.empty() || shard_crcs.empty())
    throw std::invalid_argument("write_sharded_latest: the run id is empty or there are no shards");
  for (std::size_t rank = 0; rank < shard_crcs.size(); ++rank)
    if (!is_crc32_hex(shard_crcs[rank]))
      throw std::invalid_argument("write_sharded_latest: rank " + std::to_string(rank) +
                                  "'s CRC-32 is \"" + shard_crcs[rank] +
                                  "\", not 8 lowercase hexadecimal digits");
  write_atomically(latest_path(dir), [&](std::ostream& out) {
    out << name << "\nrun_id " << run_id << "\nworld_size " << shard_crcs.size() << "\n";
    for (std::size_t rank = 0; rank < shard_crcs.size(); ++rank)
      out << "rank " << rank << " crc32 " << shard_crcs[rank] << "\n";
  });
}

std::optional<ShardedLatest> read_sharded_latest(const std::string& dir) {
  std::ifstream in(latest_path(dir));
  if (!in) return std::nullopt;
  ShardedLatest out;
  std::string line;
  int number = 1;
  if (!std::getline(in, out.name) || checkpoint_file_step(out.name) < 0)
    bad_manifest(dir, number, out.name, "a step file name");
  ++number;
  if (!std::getline(in, line) || line.rfind("run_id ", 0) != 0 || line.size() == 7)
    bad_manifest(dir, number, line, "\"run_id <id>\"");
  out.run_id = line.substr(7);
  ++number;
  std::int64_t world_size = 0;
  std::string word, rest;
  if (!std::getline(in, line) || !(std::istringstream(line) >> word >> world_size) ||
      word != "world_size" || world_size < 1)
    bad_manifest(dir, number, line, "\"world_size <ranks ≥ 1>\"");
  for (std::int64_t rank = 0; rank < world_size; ++rank) {
    ++number;
    const std::string expected = "\"rank " + std::to_string(rank) + " crc32 <8 hex digits>\"";
    std::istringstream fields;
    std::string rank_word, crc_word, crc;
    std::int64_t index = -1;
    if (!std::getline(in, line)) bad_manifest(dir, number, "", expected);
    fields.str(line);
    if (!(fields >> rank_word >> index >> crc_word >> crc) || rank_word != "rank" ||
        index != rank || crc_word != "crc32" || !is_crc32_hex(crc) || (fields >> rest))
      bad_manifest(dir, number, line, expected);
    out.shard_crcs.push_back(crc);
  }
  return out;
}

ShardedResume resolve_sharded_checkpoint(const std::string& dir, std::int64_t world_size) {
  if (world_size < 1)
    throw std::invalid_argument("resolve_sharded_checkpoint: world size " +
                                std::to_string(world_size) + " is not ≥ 1");
  const std::optional<ShardedLatest> manifest = read_sharded_latest(dir);
  if (manifest && static_cast<std::int64_t>(manifest->shard_crcs.size()) != world_size)
    throw std::runtime_error(latest_path(dir) + " is a checkpoint of " +
                             std::to_string(manifest->shard_crcs.size()) + " ranks, this run has " +
                             std::to_string(world_size) +
                             ": resume with the world size that wrote it");

  // Every step any rank holds, newest first; with a manifest, those older than its step.
  std::set<std::int64_t, std::greater<>> steps;
  for (std::int64_t rank = 0; rank < world_size; ++rank)
    for (const auto& f : list_checkpoint_files(checkpoint_shard_dir(dir, rank)))
      steps.insert(f.step);
  std::vector<Candidate> candidates;
  if (manifest) {
    candidates.push_back({manifest->name, manifest->run_id, &manifest->shard_crcs});
    const std::int64_t below = checkpoint_file_step(manifest->name);
    for (const std::int64_t step : steps)
      if (step < below) candidates.push_back({checkpoint_file_name(step), manifest->run_id, {}});
  } else {
    for (const std::int64_t step : steps)
      candidates.push_back({checkpoint_file_name(step), "", {}});
  }
  if (candidates.empty())
    throw std::runtime_error(
        "checkpoint directory " + dir + " has no 'latest' file and no step_*.safetensors in " +
        checkpoint_shard_dir(dir, 0) + " ... " + checkpoint_shard_dir(dir, world_size - 1) +
        ": nothing to resume from");

  ShardedResume out;
  for (const Candidate& c : candidates) {
    const std::string problem = shard_problem(dir, world_size, c, out.run_id);
    if (!problem.empty()) {
      out.skipped.push_back(c.name + ": " + problem);
      continue;
    }
    out.name = c.name;
    out.step = checkpoint_file_step(c.name);
    for (std::int64_t rank = 0; rank < world_size; ++rank)
      out.shard_paths.push_back((fs::path(checkpoint_shard_dir(dir, rank)) / c.name).string());
    return out;
  }
  std::string tried;
  for (const auto& s : out.skipped) tried += "\n  " + s;
  throw std::runtime_error("no intact sharded checkpoint of " + std::to_string(world_size) +
                           " ranks to resume from in " + dir + "; tried:" + tried);
}

}  // namespace troupe
