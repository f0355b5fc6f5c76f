// The one exception type a run config throws: every problem in a config file (bad JSON, unknown
// key, wrong type, out-of-range or inconsistent value, a DeepSpeed feature troupe does not have
// yet) becomes one ConfigError whose message names the file, the key path, the value and what is
// allowed.
#pragma once

#include <stdexcept>
#include <string>

namespace troupe {

class ConfigError : public std::runtime_error {
 public:
  // key_path is the dotted JSON path ("zero_optimization.stage", "optimizer.params.betas[1]"), or
  // empty for a problem with the file as a whole.
  ConfigError(std::string source, std::string key_path, const std::string& message)
      : std::runtime_error(source + ": " + (key_path.empty() ? "" : key_path + ": ") + message),
        source_(std::move(source)),
        key_path_(std::move(key_path)) {}

  const std::string& source() const { return source_; }
  const std::string& key_path() const { return key_path_; }

 private:
  std::string source_;
  std::string key_path_;
};

}  // namespace troupe
