// Checkpoint files (see checkpoint.hpp).
#include "models/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "memory/file_util.hpp"

namespace troupe {
namespace {

std::string file_name(std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step_%08lld.safetensors", static_cast<long long>(step));
  return name;
}

std::int64_t meta_int(const SafetensorsFile& file, const std::string& key,
                      const std::string& path) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end())
    throw std::runtime_error("checkpoint " + path + ": metadata key '" + key + "' is missing");
  return std::stoll(it->second);
}

}  // namespace

std::string save_checkpoint(const std::string& dir, const CheckpointMeta& meta,
                            const std::vector<Parameter*>& parameters,
                            const std::vector<PartitionState>& optimizer, std::int64_t keep) {
  NamedTensors tensors;
  for (auto* p : parameters) tensors.emplace_back("param/" + p->name, p->value);
  for (std::size_t i = 0; i < optimizer.size(); ++i)
    for (std::size_t j = 0; j < optimizer[i].names.size(); ++j)
      tensors.emplace_back("optim/" + std::to_string(i) + "/" + optimizer[i].names[j],
                           optimizer[i].tensors[j]);
  const std::map<std::string, std::string> metadata{
      {"step", std::to_string(meta.step)},
      {"data_epoch", std::to_string(meta.data_epoch)},
      {"data_index", std::to_string(meta.data_index)},
      {"seed", std::to_string(meta.seed)},
      {"model", meta.model},
      {"optimizer_partitions", std::to_string(optimizer.size())},
      {"format", "troupe-checkpoint-1"}};
  std::filesystem::create_directories(dir);
  const std::string path = (std::filesystem::path(dir) / file_name(meta.step)).string();
  save_safetensors(path, tensors, metadata);
  write_atomically((std::filesystem::path(dir) / "latest").string(),
                   [&](std::ostream& out) { out << file_name(meta.step) << "\n"; });
  if (keep > 0) {
    // Zero-padded step numbers sort by name in step order.
    std::vector<std::filesystem::path> steps;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const auto name = entry.path().filename().string();
      if (name.rfind("step_", 0) == 0 && entry.path().extension() == ".safetensors")
        steps.push_back(entry.path());
    }
    std::sort(steps.begin(), steps.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < steps.size(); ++i)
      std::filesystem::remove(steps[i]);
  }
  return path;
}

LoadedCheckpoint load_checkpoint(const std::string& dir_or_file,
                                 const std::vector<Parameter*>& parameters,
                                 const std::string& model_name) {
  std::filesystem::path path(dir_or_file);
  if (!std::filesystem::exists(path))
    throw std::runtime_error(
        "no checkpoint at " + dir_or_file +
        ": give a checkpoint directory (with a 'latest' file) or a .safetensors file");
  if (std::filesystem::is_directory(path)) {
    std::ifstream latest(path / "latest");
    std::string name;
    if (!latest || !std::getline(latest, name) || name.empty())
      throw std::runtime_error("checkpoint directory " + dir_or_file +
                               " has no 'latest' file: nothing to resume from");
    path /= name;
  }
  const SafetensorsFile file = load_safetensors(path.string());
  LoadedCheckpoint out;
  const std::string where = path.string();
  out.meta.step = meta_int(file, "step", where);
  out.meta.data_epoch = meta_int(file, "data_epoch", where);
  out.meta.data_index = meta_int(file, "data_index", where);
  out.meta.seed = static_cast<std::uint64_t>(std::stoull(file.metadata.at("seed")));
  out.meta.model = file.metadata.count("model") ? file.metadata.at("model") : "";
  if (out.meta.model != model_name)
    throw std::runtime_error("checkpoint " + where + " is of model '" + out.meta.model +
                             "', the config builds '" + model_name + "'");
  for (auto* p : parameters) {
    const Tensor& saved = file.at("param/" + p->name);
    if (saved.shape() != p->value.shape())
      throw std::runtime_error("checkpoint " + where + ": parameter " + p->name + " has shape " +
                               shape_string(saved.shape()) + ", the model has " +
                               shape_string(p->value.shape()));
    p->value.copy_from(saved);
  }
  const std::int64_t partitions = meta_int(file, "optimizer_partitions", where);
  out.optimizer.resize(static_cast<std::size_t>(partitions));
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind("optim/", 0) != 0) continue;
    const auto slash = name.find('/', 6);
    const auto index = std::stoll(name.substr(6, slash - 6));
    if (index < 0 || index >= partitions)
      throw std::runtime_error("checkpoint " + where + ": tensor " + name + " names partition " +
                               std::to_string(index) + " of " + std::to_string(partitions));
    auto& state = out.optimizer[static_cast<std::size_t>(index)];
    state.names.push_back(name.substr(slash + 1));
    state.tensors.push_back(tensor);
  }
  return out;
}

}  // namespace troupe
