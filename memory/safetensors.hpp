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

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "memory/tensor.hpp"

namespace troupe {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct SafetensorsFile {
  NamedTensors tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;

  // The tensor called `name`; throws std::out_of_range naming it when absent.
  const Tensor& at(const std::string& name) const;
};

// Writes `tensors` (contiguous host tensors with distinct, non-empty names other than
// "__metadata__") in the given order, atomically (see write_atomically). Metadata is written only
// when non-empty. Throws std::invalid_argument for a tensor it cannot write.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a whole file into fresh CPU tensors. Throws std::runtime_error when the file cannot be
// read, std::out_of_range when a tensor's data_offsets point past the data section, and
// std::invalid_argument for any other malformed content (truncated file, header that is not a
// JSON object, unknown dtype, a byte range that does not match the shape, overlapping or
// non-contiguous ranges); each message names the file and the offending entry.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace troupe
