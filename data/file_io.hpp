// Reading whole data files, gzip-compressed or not: zlib's gzread passes an uncompressed file
// through unchanged, so one reader serves "train-images-idx3-ubyte.gz" and its gunzipped twin.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

// The file's bytes (decompressed when it is gzip). Throws std::runtime_error naming the path when
// the file cannot be opened or is a truncated or corrupt gzip stream.
std::vector<std::uint8_t> read_file_bytes(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace troupe
