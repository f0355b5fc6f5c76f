// A CRC-32 that a safetensors file carries inside itself, so the file stays plain safetensors
// (other tools read it unchanged) and a reader can tell a damaged file from an intact one.
//
// Definition: the checksum is zlib's crc32 (CRC-32/ISO-HDLC, as in gzip and PNG) of every byte of
// the file in order — the 8-byte header length, the JSON header with its padding, the whole data
// section — where the value of `__metadata__[key]`, which is exactly 8 lowercase hexadecimal
// digits, is read as "00000000". The stored value is that CRC as 8 lowercase hex digits. Writing
// the placeholder first and the CRC after leaves every other byte, and the header length, as they
// were.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "memory/safetensors.hpp"

namespace troupe {

// `crc` as the 8 lowercase hex digits stored in the file.
std::string crc32_hex(std::uint32_t crc);
// Whether `text` is such a value: exactly 8 lowercase hexadecimal digits.
bool is_crc32_hex(const std::string& text);

// save_safetensors with `metadata[key]` set to the file's CRC as defined above (any value the
// caller put under `key` is replaced).
void save_safetensors_with_crc(const std::string& path, const NamedTensors& tensors,
                               SafetensorsMetadata metadata, const std::string& key,
                               const std::function<void()>& before_rename = {});

// Reads the file at `path` in blocks and checks its CRC. Throws std::runtime_error naming the
// file when it cannot be read, has no 8-hex-digit `__metadata__[key]`, or when the CRC of its
// bytes differs from the stored one (both values in the message); header errors as
// load_safetensors_metadata.
void verify_safetensors_crc(const std::string& path, const std::string& key);

}  // namespace troupe
