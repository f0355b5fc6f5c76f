// Parameter files (see parameter_file.hpp).
#include "models/parameter_file.hpp"

#include <set>
#include <stdexcept>

#include "models/checkpoint.hpp"

namespace troupe {

void save_parameter_file(const std::string& path, const NamedTensors& parameters) {
  save_safetensors(path, parameters, {{"format", kParameterFileFormat}});
}

NamedTensors load_parameter_file(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  const auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != kParameterFileFormat)
    throw std::runtime_error(
        path + " is not a troupe parameter file (metadata format '" +
        (format == file.metadata.end() ? std::string("(none)") : format->second) + "', expected '" +
        kParameterFileFormat +
        "'); make one from a DeepSpeed-named export with `troupe export FILE --format troupe`");
  return std::move(file.tensors);
}

void init_parameters_from(const std::string& path, const std::vector<Parameter*>& parameters) {
  const NamedTensors values = load_parameter_file(path);
  std::set<std::string> known;
  for (const auto* p : parameters) known.insert(p->name);
  for (const auto& [name, tensor] : values)
    if (!known.count(name))
      throw std::runtime_error(path + " holds " + name + ", which is no parameter of the model");
  assign_parameters(values, parameters, path);
}

}  // namespace troupe
