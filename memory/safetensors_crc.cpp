// CRC-32 inside a safetensors file's metadata (definition in safetensors_crc.hpp).
#include "memory/safetensors_crc.hpp"

#include <zlib.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace troupe {
namespace {

constexpr std::size_t kDigits = 8;
const std::string kPlaceholder(kDigits, '0');

std::uint32_t crc_update(std::uint32_t crc, const void* data, std::size_t bytes) {
  return static_cast<std::uint32_t>(
      crc32_z(crc, static_cast<const Bytef*>(data), static_cast<z_size_t>(bytes)));
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("CRC-32 check of '" + path + "': " + what);
}

// Where the value of `key` starts in the JSON header text: after `"key"`, optional whitespace,
// ':', optional whitespace and '"'. Only the metadata object holds such a member: tensor names in
// this format carry a '/' or other text around them, and quotes inside JSON strings are escaped.
std::size_t find_value(const std::string& text, const std::string& key, const std::string& path) {
  const std::string quoted = "\"" + key + "\"";
  for (std::size_t at = text.find(quoted); at != std::string::npos;
       at = text.find(quoted, at + 1)) {
    std::size_t i = at + quoted.size();
    auto skip_space = [&] {
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    };
    skip_space();
    if (i >= text.size() || text[i] != ':') continue;
    ++i;
    skip_space();
    if (i >= text.size() || text[i] != '"') continue;
    return i + 1;
  }
  fail(path, "the header has no metadata value '" + key + "'");
}

}  // namespace

bool is_crc32_hex(const std::string& text) {
  if (text.size() != kDigits) return false;
  for (char c : text)
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  return true;
}

std::string crc32_hex(std::uint32_t crc) {
  char text[kDigits + 1];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(crc));
  return text;
}

void save_safetensors_with_crc(const std::string& path, const NamedTensors& tensors,
                               SafetensorsMetadata metadata, const std::string& key,
                               const std::function<void()>& before_rename) {
  metadata[key] = kPlaceholder;
  const std::string header = safetensors_header(tensors, metadata);
  std::uint32_t crc = crc_update(0, header.data(), header.size());
  for (const auto& [name, tensor] : tensors)
    crc = crc_update(crc, tensor.raw_data(), tensor.nbytes());
  metadata[key] = crc32_hex(crc);
  save_safetensors(path, tensors, metadata, before_rename);
}

void verify_safetensors_crc(const std::string& path, const std::string& key) {
  // Parsing the header first gives a truncated or malformed header its own clear error.
  const SafetensorsMetadata metadata = load_safetensors_metadata(path);
  const auto stored = metadata.find(key);
  if (stored == metadata.end()) fail(path, "the metadata has no '" + key + "'");
  if (!is_crc32_hex(stored->second))
    fail(path, "metadata '" + key + "' is \"" + stored->second +
                   "\", not 8 lowercase hexadecimal digits");

  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the file");
  std::array<unsigned char, 8> length{};
  in.read(reinterpret_cast<char*>(length.data()), length.size());
  std::uint64_t header_bytes = 0;
  for (std::size_t i = 0; i < length.size(); ++i)
    header_bytes |= static_cast<std::uint64_t>(length[i]) << (8 * i);
  std::string text(header_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (!in) fail(path, "reading the header failed");
  const std::size_t value = find_value(text, key, path);
  if (text.compare(value, kDigits, stored->second) != 0)
    fail(path, "the header's first '" + key + "' member is not the metadata's");
  text.replace(value, kDigits, kPlaceholder);

  std::uint32_t crc = crc_update(0, length.data(), length.size());
  crc = crc_update(crc, text.data(), text.size());
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    crc = crc_update(crc, block.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (!in.eof()) fail(path, "reading the data failed");
  if (crc32_hex(crc) != stored->second)
    fail(path, "the file says " + stored->second + " but its bytes give " + crc32_hex(crc) +
                   " (the file is damaged)");
}

}  // namespace troupe
