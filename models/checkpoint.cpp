// Checkpoint files (see checkpoint.hpp).
#include "models/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <stdexcept>

#include "memory/crash_point.hpp"
#include "memory/safetensors_crc.hpp"
#include "models/checkpoint_dir.hpp"

namespace troupe {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCrcKey = "crc32";

std::int64_t group_size(const std::vector<Parameter*>& parameters, bool expert) {
  std::int64_t n = 0;
  for (const auto* p : parameters)
    if (p->is_expert == expert) n += p->value.numel();
  return n;
}

// The partitions of one group joined into whole-group tensors, "optim/<group>/<name>".
void append_group_state(const std::vector<PartitionState>& optimizer, bool expert,
                        std::int64_t size, NamedTensors& out) {
  std::vector<const PartitionState*> parts;
  for (const auto& p : optimizer)
    if (p.expert_group == expert) parts.push_back(&p);
  if (parts.empty()) return;
  std::sort(parts.begin(), parts.end(),
            [](const auto* a, const auto* b) { return a->group_begin < b->group_begin; });
  const std::string group = optimizer_group_name(expert);
  std::int64_t covered = 0;
  for (const auto* p : parts) {
    if (p->group_begin != covered || p->names != parts.front()->names ||
        p->tensors.size() != p->names.size())
      throw std::invalid_argument("save_checkpoint: the " + group +
                                  " optimizer partitions do not tile the group: one begins at " +
                                  std::to_string(p->group_begin) + ", expected " +
                                  std::to_string(covered) + ", with the same state names");
    covered += p->tensors.empty() ? 0 : p->tensors.front().numel();
  }
  if (covered != size)
    throw std::invalid_argument("save_checkpoint: the " + group + " optimizer partitions cover " +
                                std::to_string(covered) + " of the group's " +
                                std::to_string(size) + " elements");
  for (std::size_t j = 0; j < parts.front()->names.size(); ++j) {
    Tensor whole = Tensor::empty({size});
    for (const auto* p : parts) {
      const Tensor& slice = p->tensors[j];
      Tensor target = whole.slice_rows(p->group_begin, p->group_begin + slice.numel());
      target.copy_from(slice);
    }
    out.emplace_back("optim/" + group + "/" + parts.front()->names[j], std::move(whole));
  }
}

const std::string& meta_string(const SafetensorsFile& file, const std::string& key,
                               const std::string& path) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end())
    throw std::runtime_error("checkpoint " + path + ": metadata key '" + key + "' is missing");
  return it->second;
}

std::int64_t meta_int(const SafetensorsFile& file, const std::string& key,
                      const std::string& path) {
  const std::string& text = meta_string(file, key, path);
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    throw std::runtime_error("checkpoint " + path + ": metadata '" + key + "' is \"" + text +
                             "\", not an integer");
  }
}

struct VerifiedFile {
  std::string path;
  SafetensorsFile file;
  CheckpointMeta meta;
};

// Reads `path` and checks that it is an intact checkpoint of a known format version (and of run
// `run_id` unless that is empty); any failure throws, naming the file.
VerifiedFile read_intact(const std::string& path, const std::string& run_id) {
  VerifiedFile out{path, load_safetensors(path), {}};
  const auto& md = out.file.metadata;
  const auto format = md.find("format");
  const auto version = md.find("format_version");
  if (format == md.end() || format->second != kCheckpointFormat || version == md.end() ||
      version->second != std::to_string(kCheckpointVersion))
    throw std::runtime_error("checkpoint " + path + " has format '" +
                             (format == md.end() ? std::string("(none)") : format->second) +
                             "' version '" +
                             (version == md.end() ? std::string("(none)") : version->second) +
                             "'; this troupe reads format '" + kCheckpointFormat + "' version " +
                             std::to_string(kCheckpointVersion));
  verify_safetensors_crc(path, kCrcKey);
  CheckpointMeta& meta = out.meta;
  meta.run_id = meta_string(out.file, "run_id", path);
  if (!run_id.empty() && meta.run_id != run_id)
    throw std::runtime_error("checkpoint " + path + " belongs to run " + meta.run_id +
                             ", not to run " + run_id + " that 'latest' names");
  meta.step = meta_int(out.file, "step", path);
  meta.data_epoch = meta_int(out.file, "data_epoch", path);
  meta.data_index = meta_int(out.file, "data_index", path);
  meta.seed = static_cast<std::uint64_t>(meta_int(out.file, "seed", path));
  meta.model = meta_string(out.file, "model", path);
  return out;
}

// The newest intact checkpoint in `dir` (checkpoint.hpp's order), with the ones skipped.
VerifiedFile read_newest_intact(const std::string& dir, std::vector<std::string>& skipped) {
  const auto latest = read_latest(dir);
  const auto files = list_checkpoint_files(dir);
  std::vector<std::string> candidates;
  std::int64_t below = std::numeric_limits<std::int64_t>::max();
  if (latest) {
    candidates.push_back((fs::path(dir) / latest->name).string());
    for (const auto& f : files)
      if (f.name == latest->name) below = f.step;
  }
  for (auto it = files.rbegin(); it != files.rend(); ++it)
    if (it->step < below) candidates.push_back(it->path);
  if (candidates.empty())
    throw std::runtime_error("checkpoint directory " + dir +
                             " has no 'latest' file and no step_*.safetensors: nothing to "
                             "resume from");
  std::string run_id = latest ? latest->run_id : "";
  for (const auto& path : candidates) {
    try {
      return read_intact(path, run_id);
    } catch (const std::exception& e) {
      skipped.push_back(path + ": " + e.what());
    }
  }
  std::string tried;
  for (const auto& s : skipped) tried += "\n  " + s;
  throw std::runtime_error("no intact checkpoint to resume from in " + dir + "; tried:" + tried);
}

}  // namespace

std::string new_run_id() {
  std::random_device device;
  const std::uint64_t bits = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

const char* optimizer_group_name(bool expert_group) {
  return expert_group ? "expert" : "non_expert";
}

std::string save_checkpoint(const std::string& dir, const CheckpointMeta& meta,
                            const std::vector<Parameter*>& parameters,
                            const std::vector<PartitionState>& optimizer, std::int64_t keep) {
  if (meta.run_id.empty()) throw std::invalid_argument("save_checkpoint: the run id is empty");
  NamedTensors tensors;
  for (auto* p : parameters) tensors.emplace_back("param/" + p->name, p->value);
  for (bool expert : {false, true})
    append_group_state(optimizer, expert, group_size(parameters, expert), tensors);
  const SafetensorsMetadata metadata{{"format", kCheckpointFormat},
                                     {"format_version", std::to_string(kCheckpointVersion)},
                                     {"run_id", meta.run_id},
                                     {"step", std::to_string(meta.step)},
                                     {"data_epoch", std::to_string(meta.data_epoch)},
                                     {"data_index", std::to_string(meta.data_index)},
                                     {"seed", std::to_string(meta.seed)},
                                     {"model", meta.model}};
  fs::create_directories(dir);
  const std::string name = checkpoint_file_name(meta.step);
  const std::string path = (fs::path(dir) / name).string();
  save_safetensors_with_crc(path, tensors, metadata, kCrcKey,
                            [] { crash_point("after_temp_write"); });
  crash_point("after_rename");
  crash_point("before_latest");
  write_latest(dir, {name, meta.run_id});
  crash_point("after_latest");
  prune_checkpoints(dir, meta.run_id, keep, name);
  return path;
}

PartitionState LoadedCheckpoint::partition_state(bool expert_group, std::int64_t begin,
                                                 std::int64_t size) const {
  const std::string group = optimizer_group_name(expert_group);
  const auto it = optimizer.find(group);
  if (it == optimizer.end())
    throw std::runtime_error("checkpoint " + path + " holds no optimizer state of the " + group +
                             " parameters");
  PartitionState out{expert_group, begin, {}, {}};
  for (const auto& [name, tensor] : it->second) {
    if (begin < 0 || begin + size > tensor.numel())
      throw std::runtime_error("checkpoint " + path + ": optim/" + group + "/" + name + " has " +
                               std::to_string(tensor.numel()) + " elements, a partition wants [" +
                               std::to_string(begin) + ", " + std::to_string(begin + size) + ")");
    out.names.push_back(name);
    out.tensors.push_back(tensor.slice_rows(begin, begin + size));
  }
  return out;
}

namespace {

// A directory's newest intact checkpoint, or the file given, verified.
VerifiedFile read_verified(const std::string& dir_or_file, std::vector<std::string>& skipped) {
  if (!fs::exists(dir_or_file))
    throw std::runtime_error(
        "no checkpoint at " + dir_or_file +
        ": give a checkpoint directory (with a 'latest' file) or a .safetensors file");
  return fs::is_directory(dir_or_file) ? read_newest_intact(dir_or_file, skipped)
                                       : read_intact(dir_or_file, "");
}

// The "param/" tensors under the parameters' own names.
NamedTensors parameter_tensors(const SafetensorsFile& file) {
  NamedTensors out;
  for (const auto& [name, tensor] : file.tensors)
    if (name.rfind("param/", 0) == 0) out.emplace_back(name.substr(6), tensor);
  return out;
}

}  // namespace

void assign_parameters(const NamedTensors& values, const std::vector<Parameter*>& parameters,
                       const std::string& where) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, tensor] : values) by_name[name] = &tensor;
  for (auto* p : parameters) {
    const auto it = by_name.find(p->name);
    if (it == by_name.end()) throw std::runtime_error(where + " has no parameter " + p->name);
    const Tensor& saved = *it->second;
    if (saved.shape() != p->value.shape())
      throw std::runtime_error(where + ": parameter " + p->name + " has shape " +
                               shape_string(saved.shape()) + ", the model has " +
                               shape_string(p->value.shape()));
    p->value.copy_from(saved);
  }
}

CheckpointParameters read_checkpoint_parameters(const std::string& dir_or_file) {
  CheckpointParameters out;
  const VerifiedFile verified = read_verified(dir_or_file, out.skipped);
  out.path = verified.path;
  out.meta = verified.meta;
  out.parameters = parameter_tensors(verified.file);
  return out;
}

LoadedCheckpoint load_checkpoint(const std::string& dir_or_file,
                                 const std::vector<Parameter*>& parameters,
                                 const std::string& model_name) {
  LoadedCheckpoint out;
  const VerifiedFile verified = read_verified(dir_or_file, out.skipped);
  out.path = verified.path;
  out.meta = verified.meta;
  const std::string& where = out.path;
  if (out.meta.model != model_name)
    throw std::runtime_error("checkpoint " + where + " is of model '" + out.meta.model +
                             "', the config builds '" + model_name + "'");
  assign_parameters(parameter_tensors(verified.file), parameters, "checkpoint " + where);
  for (const auto& [name, tensor] : verified.file.tensors) {
    if (name.rfind("optim/", 0) != 0) continue;
    const auto slash = name.find('/', 6);
    const std::string group = name.substr(6, slash == std::string::npos ? slash : slash - 6);
    const bool expert = group == optimizer_group_name(true);
    if ((!expert && group != optimizer_group_name(false)) || slash == std::string::npos)
      throw std::runtime_error("checkpoint " + where + ": tensor " + name +
                               " names no optimizer group (expected optim/non_expert/... or "
                               "optim/expert/...)");
    const std::int64_t size = group_size(parameters, expert);
    if (tensor.shape() != Shape{size})
      throw std::runtime_error("checkpoint " + where + ": " + name + " has shape " +
                               shape_string(tensor.shape()) + ", the model's " + group +
                               " parameters need [" + std::to_string(size) + "]");
    out.optimizer[group][name.substr(slash + 1)] = tensor;
  }
  return out;
}

}  // namespace troupe
