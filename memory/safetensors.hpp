// Reading and writing tensors in the safetensors format, the checkpoint format shared with the
// Hugging Face tooling:
//
//   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data section]
//
// The header maps each tensor name to {"dtype": "F32"|"F16"|"BF16"|"I32"|"I64", "shape": [...],
// "data_offsets": [begin, end]} (byte offsets into the data section) and may hold
// "__metadata__": {string: string}. The header is padded with spaces to a multiple of 8 bytes so
// the data section starts 8-byte aligned. The tensors' byte ranges must tile the data section
// exactly: no gaps, no overlaps, nothing after the last one. Data is stored little-endian, which
// is troupe's host byte order.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "memory/tensor.hpp"

namespace troupe {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  NamedTensors tensors;  // in the order of their data in the file
  SafetensorsMetadata metadata;

  // The tensor called `name`; throws std::out_of_range naming it when absent.
  const Tensor& at(const std::string& name) const;
};

// The bytes before the data section of the file save_safetensors writes for `tensors` and
// `metadata`: the 8-byte header length and the padded JSON header. Throws as save_safetensors.
std::string safetensors_header(const NamedTensors& tensors, const SafetensorsMetadata& metadata);

// Writes `tensors` (contiguous host tensors with distinct, non-empty names other than
// "__metadata__") in the given order, atomically (see write_atomically, which also runs
// `before_rename`). Metadata is written only when non-empty. Throws std::invalid_argument for a
// tensor it cannot write.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata = {},
                      const std::function<void()>& before_rename = {});

// Reads a whole file into fresh CPU tensors. Throws std::runtime_error when the file cannot be
// read, std::out_of_range when a tensor's data_offsets point past the data section, and
// std::invalid_argument for any other malformed content (truncated file, header that is not a
// JSON object, unknown dtype, a byte range that does not match the shape, overlapping or
// non-contiguous ranges); each message names the file and the offending entry.
SafetensorsFile load_safetensors(const std::string& path);

// Reads only the header's "__metadata__" (empty when absent): cheap for a large file. Throws as
// load_safetensors does for an unreadable or malformed header; the data section is not checked.
SafetensorsMetadata load_safetensors_metadata(const std::string& path);

}  // namespace troupe
