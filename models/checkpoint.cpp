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

// "optim_<group>_begin": the metadata key of the first element of a group's stored range.
std::string begin_key(const std::string& group) {
  return "optim_" + group + "_begin";
}

std::string range_text(std::int64_t begin, std::int64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// The partitions of one group joined into tensors "optim/<group>/<name>" over the contiguous range
// they tile, whose begin goes into the metadata; nothing when they hold no element of the group.
void append_group_state(const std::vector<PartitionState>& optimizer, bool expert,
                        std::int64_t size, NamedTensors& out, SafetensorsMetadata& metadata) {
  const std::string group = optimizer_group_name(expert);
  std::vector<const PartitionState*> parts;
  for (const auto& p : optimizer) {
    if (p.expert_group != expert) continue;
    if (p.tensors.size() != p.names.size())
      throw std::invalid_argument("save_checkpoint: a " + group + " optimizer partition has " +
                                  std::to_string(p.names.size()) + " state names but " +
                                  std::to_string(p.tensors.size()) + " tensors");
    if (!p.tensors.empty() && p.tensors.front().numel() > 0) parts.push_back(&p);
  }
  if (parts.empty()) return;
  std::sort(parts.begin(), parts.end(),
            [](const auto* a, const auto* b) { return a->group_begin < b->group_begin; });
  const std::int64_t begin = parts.front()->group_begin;
  std::int64_t end = begin;
  for (const auto* p : parts) {
    if (p->group_begin != end || p->names != parts.front()->names)
      throw std::invalid_argument(
          "save_checkpoint: the " + group +
          " optimizer partitions do not tile a contiguous range: one begins at " +
          std::to_string(p->group_begin) + ", expected " + std::to_string(end) +
          ", with the same state names");
    const std::int64_t n = p->tensors.front().numel();
    for (const auto& t : p->tensors)
      if (t.shape() != Shape{n})
        throw std::invalid_argument("save_checkpoint: the " + group + " optimizer partition at " +
                                    std::to_string(p->group_begin) + " has a state of shape " +
                                    shape_string(t.shape()) + ", expected [" + std::to_string(n) +
                                    "]");
    end += n;
  }
  if (begin < 0 || end > size)
    throw std::invalid_argument("save_checkpoint: the " + group + " optimizer partitions cover " +
                                range_text(begin, end) + ", outside the group's " +
                                std::to_string(size) + " elements");
  for (std::size_t j = 0; j < parts.front()->names.size(); ++j) {
    Tensor joined = Tensor::empty({end - begin});
    for (const auto* p : parts) {
      const Tensor& slice = p->tensors[j];
      const std::int64_t at = p->group_begin - begin;
      Tensor target = joined.slice_rows(at, at + slice.numel());
      target.copy_from(slice);
    }
    out.emplace_back("optim/" + group + "/" + parts.front()->names[j], std::move(joined));
  }
  metadata[begin_key(group)] = std::to_string(begin);
}

const std::string& meta_string(const SafetensorsMetadata& metadata, const std::string& key,
                               const std::string& path) {
  auto it = metadata.find(key);
  if (it == metadata.end())
    throw std::runtime_error("checkpoint " + path + ": metadata key '" + key + "' is missing");
  return it->second;
}

std::int64_t meta_int(const SafetensorsMetadata& metadata, const std::string& key,
                      const std::string& path) {
  const std::string& text = meta_string(metadata, key, path);
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    throw std::runtime_error("checkpoint " + path + ": metadata '" + key + "' is \"" + text +
                             "\", not an integer");
  }
}

// Checks the metadata of the file at `path`: a known format version, an intact CRC over the
// file's bytes, run `run_id` unless that is empty; returns the fields. Any failure throws, naming
// the file.
CheckpointMeta checked_meta(const SafetensorsMetadata& md, const std::string& path,
                            const std::string& run_id) {
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
  CheckpointMeta meta;
  meta.run_id = meta_string(md, "run_id", path);
  if (!run_id.empty() && meta.run_id != run_id)
    throw std::runtime_error("checkpoint " + path + " belongs to run " + meta.run_id +
                             ", not to run " + run_id + " that 'latest' names");
  meta.step = meta_int(md, "step", path);
  meta.data_epoch = meta_int(md, "data_epoch", path);
  meta.data_index = meta_int(md, "data_index", path);
  meta.seed = static_cast<std::uint64_t>(meta_int(md, "seed", path));
  meta.model = meta_string(md, "model", path);
  return meta;
}

struct VerifiedFile {
  std::string path;
  SafetensorsFile file;
  CheckpointMeta meta;
};

// Reads `path` whole and checks it as checked_meta does.
VerifiedFile read_intact(const std::string& path, const std::string& run_id) {
  VerifiedFile out{path, load_safetensors(path), {}};
  out.meta = checked_meta(out.file.metadata, path, run_id);
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
  SafetensorsMetadata metadata{{"format", kCheckpointFormat},
                               {"format_version", std::to_string(kCheckpointVersion)},
                               {"run_id", meta.run_id},
                               {"step", std::to_string(meta.step)},
                               {"data_epoch", std::to_string(meta.data_epoch)},
                               {"data_index", std::to_string(meta.data_index)},
                               {"seed", std::to_string(meta.seed)},
                               {"model", meta.model}};
  for (bool expert : {false, true})
    append_group_state(optimizer, expert, group_size(parameters, expert), tensors, metadata);
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

CheckpointMeta verify_checkpoint(const std::string& path, const std::string& run_id) {
  return checked_meta(load_safetensors_metadata(path), path, run_id);
}

std::string checkpoint_crc(const std::string& path) {
  const SafetensorsMetadata metadata = load_safetensors_metadata(path);
  const std::string crc = meta_string(metadata, kCrcKey, path);
  if (!is_crc32_hex(crc))
    throw std::runtime_error("checkpoint " + path + ": metadata '" + kCrcKey + "' is \"" + crc +
                             "\", not 8 lowercase hexadecimal digits");
  return crc;
}

PartitionState LoadedCheckpoint::partition_state(bool expert_group, std::int64_t begin,
                                                 std::int64_t size) const {
  const std::string group = optimizer_group_name(expert_group);
  const std::string wanted = range_text(begin, begin + size);
  const auto it = optimizer.find(group);
  if (it == optimizer.end())
    throw std::runtime_error("checkpoint " + path + " holds no optimizer state of the " + group +
                             " parameters; a partition wants " + wanted +
                             " (was it written by a rank of a run of another world size?)");
  const StoredGroupState& stored = it->second;
  if (size < 0 || begin < stored.begin || begin + size > stored.begin + stored.size)
    throw std::runtime_error(
        "checkpoint " + path + " holds the " + group + " optimizer state of the range " +
        range_text(stored.begin, stored.begin + stored.size) + " (" + std::to_string(stored.size) +
        " elements); a partition wants " + wanted +
        ", outside it (resume with the world size and ZeRO partitioning that wrote it)");
  PartitionState out{expert_group, begin, {}, {}};
  for (const auto& [name, tensor] : stored.tensors) {
    out.names.push_back(name);
    out.tensors.push_back(tensor.slice_rows(begin - stored.begin, begin - stored.begin + size));
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
  if (fs::is_directory(dir_or_file) && list_checkpoint_files(dir_or_file).empty() &&
      fs::is_directory(fs::path(dir_or_file) / "rank0"))
    throw std::runtime_error(
        dir_or_file +
        " holds a checkpoint of several ranks (one shard per rank in rank0/, rank1/, ...): resume "
        "it with the same number of ranks (tools/troupe-launch --nproc_per_node N), or give one "
        "rank's shard, " +
        (fs::path(dir_or_file) / "rank0").string() +
        " (the whole model when ep_size is 1; with a larger ep_size a shard holds only its "
        "rank's experts)");
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
    const auto key = verified.file.metadata.find(begin_key(group));
    const std::int64_t begin = key == verified.file.metadata.end()
                                   ? 0
                                   : meta_int(verified.file.metadata, key->first, where);
    StoredGroupState& stored = out.optimizer[group];
    if (stored.tensors.empty()) {
      stored.begin = begin;
      stored.size = tensor.numel();
    }
    if (tensor.shape() != Shape{stored.size} || begin < 0 || begin + stored.size > size)
      throw std::runtime_error(
          "checkpoint " + where + ": " + name + " has shape " + shape_string(tensor.shape()) +
          " from element " + std::to_string(begin) + ", which does not fit the model's " +
          std::to_string(size) + " " + group + " parameters" +
          (stored.tensors.empty()
               ? std::string()
               : " or the group's other state of [" + std::to_string(stored.size) + "]"));
    stored.tensors[name.substr(slash + 1)] = tensor;
  }
  return out;
}

}  // namespace troupe
