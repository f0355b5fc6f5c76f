// Strict JSON object reading for run configs (see json_section.hpp).
#include "configs/json_section.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace troupe {

namespace {

constexpr std::int64_t kIntMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kIntMax = std::numeric_limits<std::int64_t>::max();

std::string format_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.10g", value);
  return buffer;
}

std::string integer_range(std::int64_t min, std::int64_t max) {
  if (min == kIntMin && max == kIntMax) return "an integer";
  if (max == kIntMax) return "an integer >= " + std::to_string(min);
  return "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

std::string number_range(double min, double max, bool min_exclusive) {
  const bool has_min = std::isfinite(min);
  const bool has_max = std::isfinite(max);
  const std::string low = (min_exclusive ? "> " : ">= ") + format_number(min);
  if (has_min && has_max)
    return std::string("a number in ") + (min_exclusive ? "(" : "[") + format_number(min) + ", " +
           format_number(max) + "]";
  if (has_min) return "a number " + low;
  if (has_max) return "a number <= " + format_number(max);
  return "a number";
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string join_quoted(std::initializer_list<std::string_view> items) {
  std::string out;
  for (auto item : items) {
    if (!out.empty()) out += ", ";
    out += '"';
    out += item;
    out += '"';
  }
  return out;
}

// Value as it appears in the file, shortened so an error about a big object stays one line.
std::string show(const nlohmann::json& value) {
  std::string text = value.dump();
  constexpr std::size_t kLimit = 60;
  if (text.size() > kLimit) text = text.substr(0, kLimit) + "...";
  return text;
}

// Small edits only: a suggestion three letters away from a five-letter key is noise, while a long
// key cut short ("gradient_clip") is still recognisable.
std::size_t suggestion_distance(std::string_view key) {
  return std::max<std::size_t>(2, key.size() / 3);
}

bool as_integer(const nlohmann::json& value, std::int64_t& out) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(kIntMax)) return false;
    out = static_cast<std::int64_t>(u);
    return true;
  }
  if (value.is_number_integer()) {
    out = value.get<std::int64_t>();
    return true;
  }
  // DeepSpeed configs often write sizes in exponent form ("reduce_bucket_size": 5e8).
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e18) return false;
    out = static_cast<std::int64_t>(d);
    return true;
  }
  return false;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  // Three rolling rows: the transposition case looks two rows back.
  std::vector<std::size_t> before(m + 1), previous(m + 1), current(m + 1);
  for (std::size_t j = 0; j <= m; ++j) previous[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        current[j] = std::min(current[j], before[j - 2] + 1);
    }
    before.swap(previous);
    previous.swap(current);
  }
  return previous[m];
}

JsonSection::JsonSection(const nlohmann::json& value, std::string path, std::string source)
    : value_(&value), path_(std::move(path)), source_(std::move(source)) {
  if (!value.is_object())
    throw ConfigError(
        source_, path_,
        "expected a JSON object {...}, got " + std::string(value.type_name()) + " " + show(value));
}

std::string JsonSection::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool JsonSection::is_known(std::string_view key) const {
  return std::find(known_.begin(), known_.end(), key) != known_.end() ||
         std::find(unlisted_.begin(), unlisted_.end(), key) != unlisted_.end();
}

const nlohmann::json* JsonSection::lookup(std::string_view key) const {
  auto it = value_->find(key);
  return it == value_->end() ? nullptr : &*it;
}

const nlohmann::json* JsonSection::get_unlisted(std::string_view key) {
  if (!is_known(key)) unlisted_.emplace_back(key);
  return lookup(key);
}

const nlohmann::json* JsonSection::find(std::string_view key) {
  if (!is_known(key)) known_.emplace_back(key);
  return lookup(key);
}

void JsonSection::fail(std::string_view key, const std::string& problem) const {
  std::string message = problem;
  if (const nlohmann::json* value = lookup(key)) message += " (got " + show(*value) + ")";
  throw ConfigError(source_, key_path(key), message);
}

void JsonSection::wrong_type(std::string_view key, const std::string& expected) const {
  const nlohmann::json& value = *lookup(key);
  std::string hint;
  if (value.is_string() && value.get<std::string>() == "auto")
    hint =
        "; \"auto\" is filled in by the Hugging Face Trainer integration, not by DeepSpeed: "
        "write the value";
  throw ConfigError(source_, key_path(key),
                    "expected " + expected + ", got " + std::string(value.type_name()) + " " +
                        show(value) + hint);
}

void JsonSection::missing(std::string_view key, const std::string& expected) const {
  std::string message = "required key is missing (" + expected + ")";
  // A missing required key is most often a misspelt one: point at it.
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    if (!is_known(it.key()) && edit_distance(it.key(), key) <= suggestion_distance(key))
      message += "; found \"" + it.key() + "\": a typo?";
  }
  throw ConfigError(source_, key_path(key), message);
}

bool JsonSection::contains(std::string_view key) {
  return find(key) != nullptr;
}

std::optional<JsonSection> JsonSection::section(std::string_view key) {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_object()) wrong_type(key, "a JSON object {...}");
  return JsonSection(*value, key_path(key), source_);
}

JsonSection JsonSection::required_section(std::string_view key, const std::string& example) {
  auto out = section(key);
  if (!out) missing(key, "a JSON object, e.g. " + example);
  return *std::move(out);
}

std::optional<std::int64_t> JsonSection::optional_integer(std::string_view key, std::int64_t min,
                                                          std::int64_t max) {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  std::int64_t out = 0;
  if (!as_integer(*value, out)) wrong_type(key, integer_range(min, max));
  if (out < min || out > max) fail(key, "must be " + integer_range(min, max));
  return out;
}

std::int64_t JsonSection::integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                                  std::int64_t max) {
  return optional_integer(key, min, max).value_or(fallback);
}

std::int64_t JsonSection::required_integer(std::string_view key, std::int64_t min,
                                           std::int64_t max) {
  auto out = optional_integer(key, min, max);
  if (!out) missing(key, integer_range(min, max));
  return *out;
}

std::optional<double> JsonSection::optional_number(std::string_view key, double min, double max,
                                                   bool min_exclusive) {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_number()) wrong_type(key, number_range(min, max, min_exclusive));
  const double out = value->get<double>();
  const bool below = min_exclusive ? !(out > min) : !(out >= min);
  if (below || !(out <= max)) fail(key, "must be " + number_range(min, max, min_exclusive));
  return out;
}

double JsonSection::number(std::string_view key, double fallback, double min, double max,
                           bool min_exclusive) {
  return optional_number(key, min, max, min_exclusive).value_or(fallback);
}

double JsonSection::required_number(std::string_view key, double min, double max,
                                    bool min_exclusive) {
  auto out = optional_number(key, min, max, min_exclusive);
  if (!out) missing(key, number_range(min, max, min_exclusive));
  return *out;
}

bool JsonSection::boolean(std::string_view key, bool fallback) {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  if (!value->is_boolean()) wrong_type(key, "true or false");
  return value->get<bool>();
}

std::string JsonSection::string(std::string_view key, const std::string& fallback) {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  if (!value->is_string()) wrong_type(key, "a string");
  return value->get<std::string>();
}

std::optional<std::string> JsonSection::optional_choice(
    std::string_view key, std::initializer_list<std::string_view> allowed, bool case_insensitive) {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  const std::string expected =
      "one of " + join_quoted(allowed) + (case_insensitive ? " (case-insensitive)" : "");
  if (!value->is_string()) wrong_type(key, expected);
  const std::string text = value->get<std::string>();
  for (auto option : allowed) {
    if (text == option || (case_insensitive && lower(text) == lower(option)))
      return std::string(option);
  }
  fail(key, "must be " + expected);
}

std::string JsonSection::choice(std::string_view key, std::string_view fallback,
                                std::initializer_list<std::string_view> allowed,
                                bool case_insensitive) {
  return optional_choice(key, allowed, case_insensitive).value_or(std::string(fallback));
}

std::string JsonSection::required_choice(std::string_view key,
                                         std::initializer_list<std::string_view> allowed,
                                         bool case_insensitive) {
  auto out = optional_choice(key, allowed, case_insensitive);
  if (!out) missing(key, "one of " + join_quoted(allowed));
  return *out;
}

std::vector<double> JsonSection::number_array(std::string_view key, std::vector<double> fallback,
                                              std::size_t count, double min, double max) {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  const std::string expected =
      "an array of " + std::to_string(count) + " numbers, each " + number_range(min, max, false);
  if (!value->is_array() || value->size() != count) wrong_type(key, expected);
  std::vector<double> out;
  for (std::size_t i = 0; i < count; ++i) {
    const nlohmann::json& item = (*value)[i];
    const std::string item_path = key_path(key) + "[" + std::to_string(i) + "]";
    if (!item.is_number())
      throw ConfigError(source_, item_path,
                        "expected " + number_range(min, max, false) + ", got " +
                            std::string(item.type_name()) + " " + show(item));
    const double d = item.get<double>();
    if (!(d >= min && d <= max))
      throw ConfigError(source_, item_path,
                        "must be " + number_range(min, max, false) + " (got " + show(item) + ")");
    out.push_back(d);
  }
  return out;
}

void JsonSection::forbid(std::string_view key, const std::string& reason) {
  if (find(key)) fail(key, reason);
}

void JsonSection::finish() const {
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    const std::string& key = it.key();
    if (is_known(key)) continue;
    std::string message = "unknown key";
    const std::string* best = nullptr;
    std::size_t best_distance = 0;
    // Suggestions come from every key this object takes, listed or not; the list shown below
    // keeps to the listed ones so that it stays short.
    std::vector<std::string> candidates = known_;
    candidates.insert(candidates.end(), unlisted_.begin(), unlisted_.end());
    for (const auto& candidate : candidates) {
      const std::size_t d = edit_distance(key, candidate);
      if (!best || d < best_distance) {
        best = &candidate;
        best_distance = d;
      }
    }
    if (best && best_distance <= suggestion_distance(key))
      message += "; did you mean \"" + *best + "\"?";
    std::string known_list;
    for (const auto& candidate : known_) known_list += (known_list.empty() ? "" : ", ") + candidate;
    message +=
        known_list.empty() ? "; this object takes no keys" : "; known keys here: " + known_list;
    throw ConfigError(source_, key_path(key), message);
  }
}

}  // namespace troupe
