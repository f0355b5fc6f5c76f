// Checkpoint directory files, run ownership, pruning (see checkpoint_dir.hpp).
#include "models/checkpoint_dir.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string_view>

#include "memory/crash_point.hpp"
#include "memory/file_util.hpp"
#include "memory/safetensors.hpp"

namespace troupe {

namespace fs = std::filesystem;

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// write_atomically's temporary names: TARGET.tmp.PID.N for a step file or `latest`.
bool is_temporary_file_name(std::string_view name) {
  const auto tmp = name.find(".tmp.");
  if (tmp == std::string_view::npos) return false;
  const auto target = name.substr(0, tmp);
  if (target != "latest" && checkpoint_file_step(target) < 0) return false;
  const auto rest = name.substr(tmp + 5);  // PID.N
  const auto dot = rest.find('.');
  return dot != std::string_view::npos && all_digits(rest.substr(0, dot)) &&
         all_digits(rest.substr(dot + 1));
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace

std::string checkpoint_file_name(std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step_%08lld.safetensors", static_cast<long long>(step));
  return name;
}

// 8 or more digits.
std::int64_t checkpoint_file_step(std::string_view name) {
  constexpr std::string_view prefix = "step_", suffix = ".safetensors";
  if (name.size() < prefix.size() + 8 + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix)
    return -1;
  const auto digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  return all_digits(digits) ? std::stoll(std::string(digits)) : -1;
}

std::vector<CheckpointFile> list_checkpoint_files(const std::string& dir) {
  std::vector<CheckpointFile> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::int64_t step = checkpoint_file_step(name);
    if (entry.is_regular_file() && step >= 0) out.push_back({entry.path().string(), name, step});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::string checkpoint_run_id(const std::string& path) {
  try {
    const auto metadata = load_safetensors_metadata(path);
    const auto it = metadata.find("run_id");
    return it == metadata.end() ? "" : it->second;
  } catch (const std::exception&) {
    return "";
  }
}

std::string latest_path(const std::string& dir) {
  return (fs::path(dir) / "latest").string();
}

std::optional<LatestCheckpoint> read_latest(const std::string& dir) {
  std::ifstream in(latest_path(dir));
  LatestCheckpoint latest;
  if (!in || !std::getline(in, latest.name) || latest.name.empty()) return std::nullopt;
  std::string line;
  if (std::getline(in, line) && line.rfind("run_id ", 0) == 0) latest.run_id = line.substr(7);
  return latest;
}

void write_latest(const std::string& dir, const LatestCheckpoint& latest) {
  write_atomically(latest_path(dir), [&](std::ostream& out) {
    out << latest.name << "\nrun_id " << latest.run_id << "\n";
  });
}

void prune_checkpoints(const std::string& dir, const std::string& run_id, std::int64_t keep,
                       const std::string& newest) {
  if (keep <= 0) return;
  std::vector<CheckpointFile> own;
  for (auto& file : list_checkpoint_files(dir))
    if (file.name == newest || checkpoint_run_id(file.path) == run_id) own.push_back(file);
  auto remaining = static_cast<std::int64_t>(own.size());
  for (const auto& file : own) {  // oldest first
    if (remaining <= keep) break;
    if (file.name == newest) continue;
    fs::remove(file.path);
    --remaining;
    crash_point("mid_prune");
  }
}

ClaimResult claim_checkpoint_dir(const std::string& dir, const std::string& run_id, bool resumed,
                                 bool overwrite) {
  ClaimResult result;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return result;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && is_temporary_file_name(name)) {
      fs::remove(entry.path());
      result.removed_temporaries.push_back(name);
    }
  }

  std::vector<std::string> foreign_paths;
  std::vector<std::string> foreign_names;
  std::set<std::string> other_runs;
  auto foreign = [&](const std::string& path, const std::string& name, const std::string& id) {
    foreign_paths.push_back(path);
    foreign_names.push_back(name);
    other_runs.insert(id.empty() ? "(unknown: unreadable or older than run ids)" : id);
  };
  for (const auto& file : list_checkpoint_files(dir)) {
    const std::string id = checkpoint_run_id(file.path);
    if (id == run_id || (id.empty() && resumed)) continue;
    foreign(file.path, file.name, id);
  }
  if (const auto latest = read_latest(dir); latest && latest->run_id != run_id)
    foreign(latest_path(dir), "latest", latest->run_id);
  else if (!latest && fs::exists(latest_path(dir)))
    foreign(latest_path(dir), "latest", "");
  if (foreign_paths.empty()) return result;

  if (!overwrite) {
    std::vector<std::string> runs(other_runs.begin(), other_runs.end());
    throw std::runtime_error(
        "checkpoint directory " + dir + " holds checkpoints of another run (run " + join(runs) +
        ": " + join(foreign_names) + "); this run (" + run_id +
        ") would mix its checkpoints with them. Continue that run with --resume " + dir +
        ", or delete its checkpoints and start afresh with --overwrite_checkpoints");
  }
  for (std::size_t i = 0; i < foreign_paths.size(); ++i) {
    fs::remove(foreign_paths[i]);
    result.removed_checkpoints.push_back(foreign_names[i]);
  }
  return result;
}

}  // namespace troupe
