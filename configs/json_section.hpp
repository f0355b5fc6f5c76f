// Strict, path-aware reading of one JSON object of a run config.
//
// Every key a parser asks for (read, tested with contains(), or forbidden) becomes a known key of
// the object; finish() then rejects any other key, suggesting the closest known one when the edit
// distance is small ("zero_optimization.stag: unknown key; did you mean \"stage\"?"). So the schema
// is the parsing code itself and the two cannot drift apart. Every error is a ConfigError naming
// the key path, the value found and what is allowed.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "configs/config_error.hpp"

namespace troupe {

// Optimal-string-alignment edit distance (insertions, deletions, substitutions and adjacent
// transpositions each cost 1): a swapped pair of letters is one typo, not two.
std::size_t edit_distance(std::string_view a, std::string_view b);

class JsonSection {
 public:
  // `value` must outlive the section. Throws ConfigError when it is not a JSON object.
  JsonSection(const nlohmann::json& value, std::string path, std::string source);

  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }
  // "path.key" (or "key" at the top level).
  std::string key_path(std::string_view key) const;

  bool contains(std::string_view key);
  // Whether a parser has asked for `key` (listed or not): such a key is never called unknown.
  bool is_known(std::string_view key) const;
  // The raw value at `key` (nullptr when absent), for checks the typed readers cannot express.
  const nlohmann::json* get(std::string_view key) { return find(key); }
  // Like get(), but the key is left out of the "known keys here" list and of suggestions: for keys
  // that are recognised only to be refused (DeepSpeed features troupe lacks).
  const nlohmann::json* get_unlisted(std::string_view key);
  // The sub-object at `key`, if present.
  std::optional<JsonSection> section(std::string_view key);
  // The sub-object at `key`; `example` (shown when it is missing) says what to write.
  JsonSection required_section(std::string_view key, const std::string& example);

  std::optional<std::int64_t> optional_integer(
      std::string_view key, std::int64_t min = std::numeric_limits<std::int64_t>::min(),
      std::int64_t max = std::numeric_limits<std::int64_t>::max());
  std::int64_t integer(std::string_view key, std::int64_t fallback,
                       std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t max = std::numeric_limits<std::int64_t>::max());
  std::int64_t required_integer(std::string_view key, std::int64_t min,
                                std::int64_t max = std::numeric_limits<std::int64_t>::max());
  // A finite number in [min, max], or in (min, max] when min_exclusive.
  std::optional<double> optional_number(std::string_view key, double min, double max,
                                        bool min_exclusive = false);
  double number(std::string_view key, double fallback, double min, double max,
                bool min_exclusive = false);
  double required_number(std::string_view key, double min, double max, bool min_exclusive = false);
  bool boolean(std::string_view key, bool fallback);
  std::string string(std::string_view key, const std::string& fallback);
  // One of `allowed`; returns the allowed spelling (so a case-insensitive match comes back
  // canonical).
  std::optional<std::string> optional_choice(std::string_view key,
                                             std::initializer_list<std::string_view> allowed,
                                             bool case_insensitive = false);
  std::string choice(std::string_view key, std::string_view fallback,
                     std::initializer_list<std::string_view> allowed,
                     bool case_insensitive = false);
  std::string required_choice(std::string_view key, std::initializer_list<std::string_view> allowed,
                              bool case_insensitive = false);
  // An array of exactly `count` numbers, each in [min, max].
  std::vector<double> number_array(std::string_view key, std::vector<double> fallback,
                                   std::size_t count, double min, double max);

  // `key` is meaningful elsewhere but not here: its presence is an error saying `reason`.
  void forbid(std::string_view key, const std::string& reason);

  // Throws a ConfigError at path.key; the value found there (if any) is quoted in the message.
  [[noreturn]] void fail(std::string_view key, const std::string& problem) const;

  // Rejects every key that was never asked for (the first one, in the object's key order).
  void finish() const;

 private:
  const nlohmann::json* lookup(std::string_view key) const;  // no bookkeeping
  const nlohmann::json* find(std::string_view key);          // marks `key` known
  [[noreturn]] void wrong_type(std::string_view key, const std::string& expected) const;
  [[noreturn]] void missing(std::string_view key, const std::string& expected) const;

  const nlohmann::json* value_;
  std::string path_;
  std::string source_;
  std::vector<std::string> known_;
  std::vector<std::string> unlisted_;
};

}  // namespace troupe
