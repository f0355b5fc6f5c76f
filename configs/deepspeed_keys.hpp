// The one table of DeepSpeed config keys troupe knows, with what troupe does with each.
//
// troupe pins one DeepSpeed release (kDeepSpeedRelease). For the sections troupe implements (top
// level, optimizer, scheduler, fp16, bf16, zero_optimization with offload_optimizer and
// offload_param) every key of that release has a row here, and every DeepSpeed feature section
// troupe lacks has a row at the top level. A row's status says what a value of the key does:
//   honoured         the section's parser reads it and the run follows it;
//   no_op            accepted, and harmless: it cannot change this run (the row says why);
//   not_implemented  refused with "not implemented yet", except for the values in `accepted`
//                    (the default or a disabled form), which change nothing.
// A status may depend on the world size (one_rank / multi_rank). The loader (run_config.cpp)
// applies the rows of each section it reads; docs/CONFIG-KEYS.md is generated from this table
// (render_config_keys_markdown), and a CTest test fails when the committed doc is stale.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace troupe {

class JsonSection;

inline constexpr std::string_view kDeepSpeedRelease = "0.16.4";

enum class KeyStatus { honoured, no_op, not_implemented };

// The JSON type a no-op or refused key must have (null, DeepSpeed's None, is always allowed
// there). Honoured keys are type-checked by their parser.
enum class KeyType { boolean, integer, number, string, object, any };

struct KeyRule {
  std::string_view section;  // "" = top level; "zero_optimization.offload_optimizer", ...
  std::string_view key;
  KeyType type;
  KeyStatus one_rank;    // status when runtime.world_size is 1
  KeyStatus multi_rank;  // status when runtime.world_size > 1
  // For not_implemented: the values that are accepted because they change nothing: a JSON array
  // of values ("[false]", "[null, \"fp32\"]"), "disabled" (absent, false, {}, {"enabled": false}
  // or {"device": "none"}), or empty (every value is refused).
  std::string_view accepted;
  std::string_view reason;  // what troupe does with it, or why it is a no-op / refused
};

// Every row, grouped by section in document order.
std::span<const KeyRule> deepspeed_key_rules();

// The status of `rule` in a run of `world_size` ranks.
KeyStatus key_status(const KeyRule& rule, std::int64_t world_size);

// The row for section.key, or nullptr when the pinned release has no such key there.
const KeyRule* find_key_rule(std::string_view section, std::string_view key);

// Applies the table's rows for `section_path` to `section` (the JSON object at that path): a
// no-op key is type-checked and accepted, a not-implemented key is refused unless its value is
// one of the accepted ones. Every row's key becomes known to the section, so finish() never
// calls a valid DeepSpeed key unknown. Call it after the section's parser has read the honoured
// keys and before finish(): an honoured row the parser did not read is a bug (std::logic_error).
void apply_key_rules(JsonSection& section, std::string_view section_path, std::int64_t world_size);

// docs/CONFIG-KEYS.md: the table as Markdown.
std::string render_config_keys_markdown();

std::string_view to_string(KeyStatus status);

}  // namespace troupe
